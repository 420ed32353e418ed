"""Shell completion from live state, through click's own machinery
(tests/support/completion.py runs it as a shell does). Bash's format is
checked once; the others read fish's, which carries the help text. This
host has no systemd, so unit completion shows the no-bus paths: a missing
bus, and a bus that accepts the connection and never answers
(tests/vm/test_completion_vm.py covers live units)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import taucg
from taucg.config.schema import TIER_NAMES
from taucg.model.monitor import metric_names
from taucg.readers.procfs import process_names
from tests.support.completion import HANG, complete, values
from tests.support.configs import write_config
from tests.support.private_bus import ListingSystemd, private_system_bus


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No admin file on the lookup path: the built-in config unless a test says."""
    monkeypatch.setenv("TAUCG_CONFIG", str(tmp_path / "absent.toml"))
    return tmp_path


# ------------------------------------------------------------------ tiers ---


def test_tiers_complete_with_the_limits_the_config_gives_them(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "t.toml", tiers={"low": {"cpu_weight": 77}})
    items, err = complete(f"taucg run --config {cfg} --tier ")
    assert values(items) == list(TIER_NAMES)
    helps = {v: h for _, v, h in items}
    assert helps["low"].startswith("tau-low.slice ")
    assert "cpu_weight=77" in helps["low"]
    assert "cpu_weight=77" not in helps["normal"]
    assert err == ""
    items, _ = complete(f"taucg processes --config {cfg} --tier b")
    assert values(items) == ["background"]


def test_tiers_still_complete_when_the_config_is_broken(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tiers.low]\ncpu_weight = 'lots'\n")
    items, err = complete("taucg processes --tier ", env={"TAUCG_CONFIG": str(bad)})
    assert values(items) == list(TIER_NAMES)
    assert err == ""  # no config error in the middle of the command line


def test_bash_gets_type_and_value(no_config: Path) -> None:
    items, err = complete("taucg run --tier cr", shell="bash")
    assert items == [("plain", "critical", "")]
    assert err == ""


# ---------------------------------------------------------------- metrics ---


def test_custom_metrics_complete_from_the_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "t.toml", metrics={"custom": [
        {"name": "ups_load", "file": "/run/ups", "help": "UPS load"}]})
    items, err = complete(f"taucg history --config {cfg} --metric custom.")
    assert values(items) == ["custom.ups_load"] and err == ""


def test_metrics_complete_from_the_monitors_names(no_config: Path) -> None:
    items, err = complete("taucg history --metric ")
    assert values(items) == list(metric_names(TIER_NAMES))
    assert ("plain", "memory_percent", "RAM in use, percent of total") in items
    items, _ = complete("taucg history --metric tier.low.")
    assert values(items) == ["tier.low.cpu_percent", "tier.low.memory_bytes"]
    assert err == ""


# ------------------------------------------------------------------- PIDs ---


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()  # our own child, by PID
        proc.wait()


def test_pids_complete_with_their_command_name(no_config: Path,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    items, err = complete(f"taucg processes --why {sleeper.pid}")
    assert ("plain", str(sleeper.pid), "sleep") in items
    assert all(v.startswith(str(sleeper.pid)) for v in values(items))
    items, _ = complete("taucg processes --why ")
    offered = values(items)
    assert "1" in offered and str(os.getpid()) in offered
    assert offered == sorted(offered, key=int)
    assert err == ""


def test_process_names_skips_a_process_that_exits_midway(tmp_path: Path) -> None:
    for pid, comm in ((1, "init"), (30, "gone"), (200, "worker")):
        (tmp_path / str(pid)).mkdir()
        if comm != "gone":
            (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    assert list(process_names(tmp_path)) == [(1, "init"), (200, "worker")]


# ------------------------------------------------------------------ units ---


def test_units_without_a_bus_are_the_configs_critical_units(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml",
                       crash_recovery={"critical_processes": ["nginx", "pg.service"]})
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    items, err = complete(f"taucg recovery history --config {cfg} --unit ", env=env)
    assert values(items) == ["nginx.service", "pg.service"]
    assert items[0][2] == "critical unit (crash recovery)"
    items, _ = complete(f"taucg recovery save-state --config {cfg} p", env=env)
    assert values(items) == ["pg.service"]
    assert err == ""


class SilentBus:
    """A unix socket that accepts connections and never says a word: a
    system bus that hangs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(10)
        for conn in self.accepted:
            conn.close()


def test_a_bus_that_never_answers_leaves_the_configs_units(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", crash_recovery={"critical_processes": ["app"]})
    bus = SilentBus(tmp_path / "bus")
    try:
        items, err = complete(f"taucg recovery --config {cfg} --unit ",
                              env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={bus.path}"})
    finally:
        bus.close()
    assert bus.accepted, "completion never tried the bus"
    assert values(items) == ["app.service"]
    assert err == ""


def test_units_come_from_systemd_on_the_bus(tmp_path: Path) -> None:
    """A private bus with a stand-in systemd: the listing is asked for
    services only, and each unit comes with its state and description."""
    cfg = write_config(tmp_path / "c.toml", crash_recovery={"critical_processes": ["db"]})
    listed = [("web.service", "Web server", "active", "running"),
              ("db.service", "Database", "failed", "failed"),
              ("worker.service", "Queue worker", "inactive", "dead"),
              ("tau-low.slice", "taucg low tier", "active", "active")]
    with private_system_bus(tmp_path) as address, ListingSystemd(address, listed) as fake:
        # The data path is tested here, not the deadline (the silent bus
        # below does that): a loaded machine must not turn it into a flake.
        env = {"DBUS_SYSTEM_BUS_ADDRESS": address, "TAUCG_COMPLETION_TIMEOUT": "30"}
        items, err = complete(f"taucg recovery history --config {cfg} --unit ", env=env)
        some, _ = complete(f"taucg recovery save-state --config {cfg} w", env=env)
    assert fake.asked == [["*.service"], ["*.service"]]
    # The config's critical unit first, with the config's word for it.
    assert items == [("plain", "db.service", "critical unit (crash recovery)"),
                     ("plain", "web.service", "active: Web server"),
                     ("plain", "worker.service", "inactive: Queue worker")]
    assert values(some) == ["web.service", "worker.service"]
    assert err == ""


def test_a_bus_without_systemd_leaves_the_configs_units(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", crash_recovery={"critical_processes": ["app"]})
    with private_system_bus(tmp_path) as address:
        items, err = complete(f"taucg recovery --config {cfg} --unit ",
                              env={"DBUS_SYSTEM_BUS_ADDRESS": address})
    assert values(items) == ["app.service"]
    assert err == ""


# ----------------------------------------------------------- config files ---


def test_config_paths_offer_the_known_file_then_the_shells_files(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    items, err = complete("taucg status --config ", env={"TAUCG_CONFIG": str(mine)})
    assert items[0][0] == "file"  # first: bash's script clears its list at a file item
    assert ("plain", str(mine), "config file") in items
    items, _ = complete(f"taucg config check {tmp_path}/m", env={"TAUCG_CONFIG": str(mine)})
    assert values(items) == [str(mine)]
    items, _ = complete("taucg config check ./x", env={"TAUCG_CONFIG": str(mine)})
    assert items == [("file", "./x", "")]  # nothing known matches: the shell lists files
    assert err == ""


def test_the_deadline_can_be_raised_but_not_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    from taucg.faces.cli import completion

    monkeypatch.setenv(completion.DEADLINE_ENV, "5")
    assert completion._deadline() == 5.0
    for junk in ("soon", "0", "-1", "nan", "1e9"):
        monkeypatch.setenv(completion.DEADLINE_ENV, junk)
        assert completion._deadline() == completion.UNITS_DEADLINE, junk


# ------------------------------------------------------- the shell script ---


def test_bash_completes_through_the_script_taucg_generates(tmp_path: Path) -> None:
    """The script an installer writes (`_TAUCG_COMPLETE=bash_source taucg`),
    sourced by a real bash, fills COMPREPLY from taucg's answer."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash")
    root = Path(taucg.__file__).resolve().parents[1]
    wrapper = tmp_path / "taucg"  # `taucg` on PATH, running this checkout
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={root} exec {sys.executable} -m taucg "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}",
           "TAUCG_CONFIG": str(tmp_path / "absent.toml")}
    script = subprocess.run(["taucg"], env={**env, "_TAUCG_COMPLETE": "bash_source"},
                            capture_output=True, text=True, check=True, timeout=HANG).stdout
    assert "complete -o nosort -F _taucg_completion taucg" in script
    probe = (f"{script}\nCOMP_WORDS=(taucg processes --tier l); COMP_CWORD=3\n"
             "_taucg_completion taucg\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run([bash, "--norc", "--noprofile", "-c", probe], env=env,
                       capture_output=True, text=True, timeout=HANG, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["low"]
    assert r.stderr == ""
