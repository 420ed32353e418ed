"""`taucg install --enable --now` on a real systemd, then `taucg uninstall`:
the tiers are applied and the daemon READY, the units pass
`systemd-analyze verify`, `man taucg` works, and uninstalling leaves the
machine as it was (but the config and the history)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from taucg.actors.install import MANIFEST, tier_leftovers
from taucg.actors.systemd_dbus import SERVICE, UNIT, SystemdError
from taucg.config.schema import TIER_NAMES
from taucg.faces.socket_client import call
from taucg.model.tiers import PARENT, slice_name
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg

from .helpers import CGROUP_ROOT, ROOT, cgroup_dir, wait_for

SERVICES = ("taucg.service", "taucg-apply.service")
UNIT_DIR = Path("/usr/local/lib/systemd/system")
CONFIG = Path("/etc/taucg/taucg.toml")
SOCKET = Path("/run/taucg/taucg.sock")
# The checkout may live under /tmp, which PrivateTmp=yes hides from the
# daemon: the test binds it back in with a drop-in of its own, removed after.
TEST_DROPIN = Path("/etc/systemd/system/taucg.service.d/50-install-test.conf")
MANIFEST_PATH = Path(str(MANIFEST))
WATCHED = (Path("/etc/systemd/system"), Path("/usr/local"), Path("/run/systemd/system"),
           Path("/run/systemd/system.control"), Path("/etc/taucg"))


def snapshot() -> dict[str, str]:
    """Files and links under the directories install and apply touch."""
    out: dict[str, str] = {}
    for top in WATCHED:
        if not top.exists():
            continue
        for p in sorted(top.rglob("*")):
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = "file"
            elif p.is_dir():
                out[str(p) + "/"] = "dir"
    return out


def load_state(systemd: BlockingSystemd, unit: str) -> str:
    return str(systemd.get_property(unit, "LoadState", UNIT))


def active(systemd: BlockingSystemd, unit: str) -> str:
    return str(systemd.get_property(unit, "ActiveState", UNIT))


@pytest.fixture
def clean_machine(systemd: BlockingSystemd) -> Iterator[dict[str, str]]:
    """Tier state an earlier test left is set aside (uninstall removes it)
    and given back after; so are the config, when install created it."""
    for unit in SERVICES:
        assert load_state(systemd, unit) != "loaded" or active(systemd, unit) == "inactive", \
            f"{unit} is already running here; this test installs its own"
    assert not MANIFEST_PATH.exists(), f"{MANIFEST_PATH} exists: taucg is installed already"
    kept = {p: Path(str(p)).read_text() for p in tier_leftovers(Path("/"))}
    for path in kept:
        Path(str(path)).unlink()
        # Its drop-in directory too, once empty: uninstall removes those.
        with contextlib.suppress(OSError):
            Path(str(path)).parent.rmdir()
    if kept:
        systemd.reload()
    config_before = CONFIG.read_text() if CONFIG.exists() else None
    TEST_DROPIN.parent.mkdir(parents=True, exist_ok=True)
    TEST_DROPIN.write_text(f"[Service]\nBindReadOnlyPaths={ROOT}\n")
    before = snapshot()
    try:
        yield before
    finally:
        if MANIFEST_PATH.exists():  # the test failed before its uninstall
            taucg("uninstall", check=False)
        TEST_DROPIN.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            TEST_DROPIN.parent.rmdir()
        if config_before is None:
            CONFIG.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                CONFIG.parent.rmdir()
        for path, text in kept.items():
            Path(str(path)).parent.mkdir(parents=True, exist_ok=True)
            Path(str(path)).write_text(text)
        systemd.reload()
        for unit in SERVICES:
            with contextlib.suppress(SystemdError):
                systemd.reset_failed(unit)


def test_install_enable_now_then_uninstall(systemd: BlockingSystemd,
                                           clean_machine: dict[str, str]) -> None:
    before = clean_machine
    out = taucg("install", "--enable", "--now").stdout
    assert "start     taucg.service" in out, out

    # The daemon is READY: active, its status text, and the socket answers.
    assert active(systemd, "taucg.service") == "active"
    assert str(systemd.get_property("taucg.service", "StatusText", SERVICE)) == "started"
    ping = wait_for(_ping, 120, "the daemon's socket to answer ping")
    assert ping["pid"] == int(systemd.get_property("taucg.service", "MainPID", SERVICE))
    assert active(systemd, "taucg-apply.service") == "active"
    assert str(systemd.get_property("taucg-apply.service", "Result", SERVICE)) == "success"
    # The tiers are applied: the built-in weights are in the cgroup files.
    assert (cgroup_dir(systemd, "tau-critical.slice") / "cpu.weight").read_text().strip() \
        == "1000"
    assert (cgroup_dir(systemd, "tau-background.slice") / "cpu.weight").read_text().strip() \
        == "10"
    for unit in SERVICES:
        assert str(systemd.get_property(unit, "UnitFileState", UNIT)) == "enabled"

    verify = subprocess.run(["systemd-analyze", "verify", *(str(UNIT_DIR / u) for u in SERVICES)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "not executable" not in verify.stderr

    man = subprocess.run(["man", "-P", "cat", "taucg"], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "MANWIDTH": "100"})
    assert man.returncode == 0, man.stderr
    assert "taucg - cgroup v2 resource tiers on systemd" in man.stdout.replace("\u2010", "-")

    manifest = json.loads(MANIFEST_PATH.read_text())
    out = taucg("uninstall").stdout
    assert "uninstalled:" in out, out

    for unit in SERVICES:
        assert active(systemd, unit) == "inactive"
        assert load_state(systemd, unit) in ("not-found", "stub"), \
            f"{unit} is still {load_state(systemd, unit)}"
    for path in [*manifest["files"], *manifest["links"]]:
        assert not os.path.lexists(path), f"{path} was installed and is still there"
    assert not tier_leftovers(Path("/")), "tier state left behind"
    # The tiers are back to systemd's defaults: no tier slice, no cgroup.
    for unit in [*(slice_name(t) for t in TIER_NAMES), PARENT]:
        assert active(systemd, unit) == "inactive", f"{unit} still {active(systemd, unit)}"
    assert not (CGROUP_ROOT / PARENT).exists()
    # Everything else is as it was, but the config install created (kept).
    after = snapshot()
    created = {k for k in set(after) - set(before) if not k.startswith(str(CONFIG.parent))}
    gone = set(before) - set(after)
    assert not created and not gone, f"created {sorted(created)}, removed {sorted(gone)}"
    assert CONFIG.exists(), "uninstall must keep the config"

    again = taucg("uninstall").stdout
    assert "nothing to remove" in again


def _ping() -> dict[str, object] | None:
    try:
        answer = call(SOCKET, "ping", {}, timeout=60)
    except Exception:
        return None
    return answer if isinstance(answer, dict) else None
