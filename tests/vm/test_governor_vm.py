"""The governor (issue 13) against real systemd and cgroup v2: a CPU-bound
Critical probe under load from the tiers below, a last-resort freeze, a
daemon killed with -9 and one stopped cleanly, a real (i2c-stub + lm75)
temperature sensor, and a memory hog beside a Critical working set.

Each test runs its own `taucg daemon` (a child process it ends) on a private
config: its socket, logs, audit log and governor.json live under tmp_path.
Load comes from stress-ng (Debian's stress-ng on the host, which the guest
sees), with shell loops as the CPU fallback. The cgroup files of the
governed tiers are compared with what they were right after `taucg apply`,
captured once for the module."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import SystemdError
from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import Section, daemon_config, merged, private_paths, write_config

from .helpers import CGROUP_ROOT, Units, cgroup_dir, stop_process, unit_state, wait_for

GOVERNED = ("normal", "low", "background")
# Every cgroup file a governor lever shows up in.
FILES = ("cpu.weight", "cpu.max", "cpuset.cpus.effective", "io.weight", "memory.high")
STRESS = shutil.which("stress-ng") or "/usr/bin/stress-ng"
CPU_KEYS = ("cpu_weight", "cpu_quota", "allowed_cpus")
Snapshot = dict[str, dict[str, str | None]]  # tier -> cgroup file -> text

# What every governor test config shares: no pooling (cpu.max stays as
# configured unless pressure or heat moves it), no health checks or crash
# recovery (less emulated CPU spent by the daemon itself), no sensors
# unless the test is about heat, and a short relax period.
BASE: dict[str, Any] = {
    "resource_monitoring": {"interval_seconds": 5, "min_interval_seconds": 1,
                            "temperature_monitoring": False},
    "process_management": {"resource_pooling": False},
    "health_checking": {"enabled": False},
    "crash_recovery": {"auto_recovery": False},
    "governor": {"react_ticks": 2, "relax_seconds": 3.0},
}


# ------------------------------------------------------------ cgroups ---


def tier_dir(tier: str) -> Path:
    return CGROUP_ROOT / "tau.slice" / f"tau-{tier}.slice"


def read(tier: str, name: str) -> str | None:
    try:
        return (tier_dir(tier) / name).read_text().strip()
    except OSError:
        return None


def snapshot() -> Snapshot:
    """The governed files of the three governed tiers, and their freeze."""
    return {t: {f: read(t, f) for f in (*FILES, "cgroup.freeze")} for t in GOVERNED}


def frozen(tier: str) -> bool:
    return "frozen 1" in (read(tier, "cgroup.events") or "")


def differences(base: Snapshot) -> dict[str, dict[str, Any]]:
    now = snapshot()
    return {t: {f: (base[t][f], now[t][f]) for f in base[t] if base[t][f] != now[t][f]}
            for t in base if base[t] != now[t]}


# -------------------------------------------------------------- audit ---


def audits(root: Path, action: str, target: str | None = None) -> list[dict[str, Any]]:
    """The audit records of this action ("": any) on this target (None: any)."""
    log = root / "log" / "audit.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if action in ("", r.get("action")) and target in (None, r.get("target")):
            out.append(r)
    return out


def audited(root: Path, action: str, target: str,
            match: Callable[[dict[str, Any]], bool] = lambda _r: True,
            timeout: float = 60) -> list[dict[str, Any]]:
    """Waits for such records: the governor changes a file first and
    writes its audit record after, so a test that saw the file change may
    have to wait a moment for the record."""
    found: list[dict[str, Any]] = wait_for(
        lambda: [r for r in audits(root, action, target) if match(r)], timeout,
        f"a {action!r} audit record for {target}")
    return found


def audit_trail(root: Path, target: str) -> list[dict[str, Any]]:
    """The target's tighten and relax records, in the order they happened."""
    return [r for r in audits(root, "") if r.get("target") == target
            and r.get("action") in ("governor tighten", "governor relax")]


def keys_of(record: dict[str, Any]) -> set[str]:
    after = record.get("after")
    return set(after) if isinstance(after, dict) else set()


def governor_json(root: Path) -> dict[str, Any]:
    path = root / "state" / "governor.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ------------------------------------------------------------- daemon ---


class Daemon:
    """`taucg daemon` as a child of the test, its log in a file (a pipe
    nobody reads would stall it once full)."""

    def __init__(self, cfg: Path, root: Path) -> None:
        self.cfg = cfg
        self.root = root
        self.socket = root / "taucg.sock"
        self.log = root / "daemon.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(taucg_argv("daemon", config=self.cfg),
                                         stdout=subprocess.DEVNULL, stderr=err)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def ask(self, method: str, **params: Any) -> Any:
        return call(self.socket, method, params, timeout=60)

    def view(self) -> dict[str, Any] | None:
        """The governor's view, or None while the daemon does not serve one."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the daemon exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            v = self.ask("governor", count=500)
        except (DaemonNotRunning, DaemonError, OSError):
            return None
        return v if isinstance(v, dict) and v.get("running") else None

    def wait_ready(self, timeout: float = 240) -> dict[str, Any]:
        """Until the governor has taken its first step (imports under
        emulation take most of a minute)."""
        view: dict[str, Any] = wait_for(self.view, timeout, "the daemon's governor to run")
        return view

    def stop(self) -> None:
        """SIGTERM, as systemctl stop would; SIGKILL if it hangs."""
        if not stop_process(self.proc):
            pytest.fail(f"the daemon did not stop within 120 s of SIGTERM:\n{self.tail()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)  # the daemon this test started
        self.proc.wait(timeout=60)


class Rig:
    """One test's config, daemon and baseline."""

    def __init__(self, root: Path, baseline: Snapshot) -> None:
        self.root = root
        self.baseline = baseline
        self.cfg: Path | None = None
        self.daemon: Daemon | None = None

    def configure(self, **sections: Section) -> Daemon:
        self.cfg = daemon_config(self.root, **merged(BASE, sections))
        self.daemon = Daemon(self.cfg, self.root)
        return self.daemon

    def back_to_config(self) -> None:
        """Leaves the tiers as applied whatever the test left: daemon
        stopped, Background thawed, tiers re-applied if anything differs."""
        if self.daemon is not None:
            self.daemon.stop()
            print(f"--- daemon log (tail) ---\n{self.daemon.tail(60)}")
        for tier in GOVERNED:
            if read(tier, "cgroup.freeze") == "1":
                subprocess.run(["systemctl", "thaw", f"tau-{tier}.slice"], check=False)
        if differences(self.baseline) and self.cfg is not None:
            taucg("apply", config=self.cfg)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    """The tiers applied (the built-in tiers, audit into a private dir),
    and their governed files right after."""
    root = tmp_path_factory.mktemp("governor-apply")
    cfg = write_config(root / "taucg.toml", **private_paths(root))
    taucg("apply", config=cfg)
    base = snapshot()
    assert base["normal"]["cpu.weight"] == "100", base
    assert base["low"]["cpu.max"] == "max 100000", base
    assert base["background"]["cpu.max"] == "50000 100000", base
    yield base
    taucg("apply")


@pytest.fixture
def rig(baseline: Snapshot, tmp_path: Path) -> Iterator[Rig]:
    assert not differences(baseline), f"the tiers are not as applied: {differences(baseline)}"
    r = Rig(tmp_path, baseline)
    yield r
    r.back_to_config()


# -------------------------------------------------------------- load ---


def cpu_load(n: int) -> list[str]:
    if Path(STRESS).exists():
        return [STRESS, "--cpu", str(n), "--quiet"]
    return ["/bin/sh", "-c", f"for i in $(seq {n}); do (while :; do :; done) & done; wait"]


def start_service(systemd: BlockingSystemd, units: Units, label: str, tier: str,
                  argv: list[str], **props: Any) -> str:
    name = units.name(label)
    systemd.start_transient(name, {
        "Description": f"taucg governor test: {label} in {tier}",
        "Slice": f"tau-{tier}.slice",
        "ExecStart": [(argv[0], argv, False)],
        # SIGKILL: ends it at once, even inside a frozen slice.
        "KillSignal": signal.SIGKILL.value,
        **props,
    })
    return name


def under_cpu_load(rig: Rig, systemd: BlockingSystemd, units: Units, *,
                   tightened: bool = False) -> tuple[Daemon, str, str]:
    """A running daemon with a low CPU target, a Critical probe and Normal hogs:
    the pressure that makes the governor tighten Normal's weight (with
    tightened, once it has)."""
    d = rig.configure(governor={"cpu_pressure_percent": 5.0, "freeze_background": False,
                                "min_cpu_weight": 10, "min_cpu_quota": 50.0})
    d.start()
    d.wait_ready()
    probe = start_service(systemd, units, "probe", "critical", cpu_load(2))
    hogs = start_service(systemd, units, "hogs", "normal", cpu_load(4))
    if tightened:
        wait_for(tightened_normal, 180, "tau-normal.slice's cpu.weight to drop below 100")
    return d, probe, hogs


def stop_service(systemd: BlockingSystemd, name: str) -> None:
    for action in (systemd.stop, systemd.reset_failed):
        with contextlib.suppress(SystemdError):
            action(name)


def since(t0: float) -> float:
    return time.monotonic() - t0


def stall(view: dict[str, Any] | None, resource: str = "cpu") -> str:
    if not view:
        return "?"
    return f"{view.get('stall_percent', {}).get(resource, 0.0):.1f}%"


def tightened_normal() -> bool:
    return int(read("normal", "cpu.weight") or 100) < 100


# -------------------------------------------------------------- tests ---


def test_cpu_pressure_tightens_normal_then_gives_back_exactly(
        rig: Rig, systemd: BlockingSystemd, units: Units,
        report: Callable[[str], None]) -> None:
    d, probe, hogs = under_cpu_load(rig, systemd, units)
    t0 = time.monotonic()
    wait_for(tightened_normal, 180, "tau-normal.slice's cpu.weight to drop below 100")
    reacted = since(t0)
    seen = d.view()
    records = audited(rig.root, "governor tighten", "tau-normal.slice",
                      lambda r: bool(keys_of(r) & set(CPU_KEYS)))
    first = records[0]
    assert "cpu pressure" in first["reason"], first
    assert set(first["after"]) == {"cpu_weight"}, first
    assert int(first["after"]["cpu_weight"]) < 100, first

    # While the hogs run, what the CLI shows: running, the targets, and
    # normal's governed weight against its configured one.
    shown = json.loads(taucg("governor", "--format", "json", config=rig.cfg).stdout)
    assert shown["running"] is True
    assert shown["protect"] == ["critical", "high"]
    assert shown["targets_percent"]["cpu"] == 5.0
    assert shown["pooled"] is False and shown["celsius"] is None
    assert "cpu_weight" in shown["tiers"]["normal"]["governed"], shown["tiers"]
    assert shown["tiers"]["normal"]["configured"]["cpu_weight"] == 100
    assert isinstance(shown["tiers"]["normal"]["governed"]["cpu_weight"], int)
    assert any(a["kind"] == "tighten" and a["tier"] == "normal" for a in shown["actions"])
    assert "normal" in governor_json(rig.root).get("tiers", {})
    held = shown["tiers"]["normal"]["governed"]
    # An apply from the command line now leaves the governor's key alone:
    # the plan names it as held and does not set it back.
    plan = json.loads(taucg("apply", "--dry-run", "--format", "json", config=rig.cfg,
                            check=False).stdout)
    assert any(n.startswith("tau-normal.slice: ") and "CPUWeight" in n
               and "held by the governor" in n for n in plan["plan"]["notes"]), plan["plan"]
    assert not [p for p in plan["plan"]["properties"]
                if p["unit"] == "tau-normal.slice" and p["name"] == "CPUWeight"], plan

    stop_service(systemd, hogs)
    stop_service(systemd, probe)  # the daemon's own load would keep Critical stalled
    t1 = time.monotonic()
    wait_for(lambda: not differences(rig.baseline), 180,
             "every governed file of normal, low and background to be as applied")
    relaxed = since(t1)
    assert snapshot() == rig.baseline

    # Lowest first among the tiers that use CPU: low and background were
    # idle, so only normal's CPU was touched; the levers in order (up to
    # the first step back, should the pressure have dipped meanwhile).
    cpu_tightened = [r for r in audits(rig.root, "governor tighten") if keys_of(r) & set(CPU_KEYS)]
    assert {r["target"] for r in cpu_tightened} == {"tau-normal.slice"}, cpu_tightened
    steps = [r for r in audit_trail(rig.root, "tau-normal.slice") if keys_of(r) & set(CPU_KEYS)]
    first_relax = next((i for i, r in enumerate(steps) if r["action"] == "governor relax"),
                       len(steps))
    down = steps[:first_relax]
    order = [next(iter(keys_of(r))) for r in down]
    weights = [int(r["after"]["cpu_weight"]) for r in down if "cpu_weight" in keys_of(r)]
    assert weights == sorted(weights, reverse=True) and weights[-1] >= 10, weights
    if "cpu_quota" in order:
        assert weights[-1] == 10 and order.index("cpu_quota") > order.index("cpu_weight"), order
    if "allowed_cpus" in order:
        assert "cpu_quota" in order, order
        assert order.index("allowed_cpus") > max(i for i, k in enumerate(order)
                                                 if k == "cpu_quota"), order
    audited(rig.root, "governor relax", "tau-normal.slice")
    view = wait_for(lambda: (v := d.view()) and not v["tiers"]["normal"]["governed"] and v,
                    60, "the daemon to show normal as configured")
    assert not any(t["frozen"] for t in view["tiers"].values())
    assert governor_json(rig.root) == {"tiers": {}, "frozen": []}

    status = json.loads(taucg("status", "--format", "json", config=rig.cfg).stdout)
    for tier in ("all", "critical", "high", *GOVERNED):
        row = status["tiers"][tier]
        assert row["drift"] == [], (tier, row["drift"])
        assert not row.get("governed") and not row.get("frozen_by_governor"), (tier, row)
    report(f"\nGOVERNOR cpu: normal tightened {reacted:.1f} s after the hogs started "
           f"(stall {stall(seen)} against 5%), holding {held}; {len(cpu_tightened)} cpu steps "
           f"down ({', '.join(order)}); every file back as applied {relaxed:.1f} s after the "
           "load stopped (VM)")


def test_no_lever_left_freezes_background_then_thaws(
        rig: Rig, systemd: BlockingSystemd, units: Units,
        report: Callable[[str], None]) -> None:
    # Background's own config is already at every floor: CPUWeight 10,
    # CPUQuota 50%, and both CPUs are the fewest it may have.
    d = rig.configure(governor={"cpu_pressure_percent": 1.0, "freeze_background": True,
                                "min_cpu_weight": 10, "min_cpu_quota": 50.0,
                                "min_cores": 2})
    d.start()
    d.wait_ready()
    hogs = start_service(systemd, units, "bghogs", "background", cpu_load(4))
    probe = start_service(systemd, units, "probe", "critical", cpu_load(2))
    t0 = time.monotonic()
    try:
        wait_for(lambda: frozen("background"), 180, "tau-background.slice to be frozen")
        took = since(t0)
        assert read("background", "cgroup.freeze") == "1"
        records = audited(rig.root, "governor freeze", "tau-background.slice")
        assert "pressure" in records[0]["reason"], records[0]
        assert records[0]["after"] == {"freeze": "frozen"}, records[0]
        assert unit_state(systemd, hogs) == "active"  # frozen, not killed
        # No lever moved: every one was at its floor already.
        cpu_tightened = [r for r in audits(rig.root, "governor tighten")
                         if keys_of(r) & set(CPU_KEYS)]
        assert cpu_tightened == []
        assert read("background", "cpu.weight") == rig.baseline["background"]["cpu.weight"]
        assert read("background", "cpu.max") == rig.baseline["background"]["cpu.max"]
        assert governor_json(rig.root)["frozen"] == ["background"]

        stop_service(systemd, probe)
        t1 = time.monotonic()
        wait_for(lambda: not frozen("background"), 120, "tau-background.slice to be thawed")
        thawed = since(t1)
        assert read("background", "cgroup.freeze") == "0"
        audited(rig.root, "governor thaw", "tau-background.slice")
        # It stays thawed while its hogs run on: nothing protected is stalled.
        freezes = len(audits(rig.root, "governor freeze"))
        watch = time.monotonic()
        while since(watch) < 15:
            assert not frozen("background"), "tau-background.slice was frozen again"
            time.sleep(0.5)
        assert len(audits(rig.root, "governor freeze")) == freezes
        assert unit_state(systemd, hogs) == "active"
        assert governor_json(rig.root) == {"tiers": {}, "frozen": []}
    finally:
        if frozen("background"):
            subprocess.run(["systemctl", "thaw", "tau-background.slice"], check=False)
        stop_service(systemd, hogs)
        stop_service(systemd, probe)
    report(f"\nGOVERNOR freeze: background frozen {took:.1f} s after the load started, "
           f"thawed {thawed:.1f} s after the Critical probe stopped (VM)")


def test_kill_9_then_restart_gives_the_tightened_tier_back(
        rig: Rig, systemd: BlockingSystemd, units: Units,
        report: Callable[[str], None]) -> None:
    """A daemon killed while it holds a tier leaves governor.json behind;
    the next one gives the tier back from it at start."""
    d, probe, hogs = under_cpu_load(rig, systemd, units, tightened=True)
    wait_for(lambda: "cpu_weight" in governor_json(rig.root).get("tiers", {}).get("normal", {}),
             30, "governor.json to record normal's weight")
    d.kill9()
    stop_service(systemd, hogs)
    stop_service(systemd, probe)
    recorded = governor_json(rig.root)
    # Nobody gave it back: the weight stays where the dead daemon left it.
    assert tightened_normal(), snapshot()["normal"]
    r = taucg("governor", "--format", "json", config=rig.cfg, check=False)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "governor.json records governed settings" in r.stderr, r.stderr

    t0 = time.monotonic()
    d.start()
    wait_for(lambda: not differences(rig.baseline), 180,
             "the restarted daemon to give every governed file back")
    restored = since(t0)
    records = audited(rig.root, "governor restore", "tau-normal.slice")
    assert set(records[-1]["before"]) == set(recorded["tiers"]["normal"]), (records, recorded)
    d.wait_ready()
    assert governor_json(rig.root) == {"tiers": {}, "frozen": []}
    assert snapshot() == rig.baseline
    report(f"\nGOVERNOR restart: after kill -9 with {recorded['tiers']} on record, the "
           f"restarted daemon gave it back {restored:.1f} s after its start (VM)")


def test_clean_stop_gives_back_and_records_nothing(
        rig: Rig, systemd: BlockingSystemd, units: Units,
        report: Callable[[str], None]) -> None:
    d, probe, hogs = under_cpu_load(rig, systemd, units, tightened=True)
    try:
        t0 = time.monotonic()
        d.stop()  # SIGTERM while the load still runs
        stopped = since(t0)
        # The stop gave it back, with the hogs still running...
        assert not differences(rig.baseline), differences(rig.baseline)
    finally:
        stop_service(systemd, hogs)
        stop_service(systemd, probe)
    # ...and what is on record says so: nothing is governed any more, so
    # neither the next start nor `taucg status` believes otherwise.
    assert governor_json(rig.root) == {"tiers": {}, "frozen": []}, governor_json(rig.root)
    status = json.loads(taucg("status", "--format", "json", config=rig.cfg).stdout)
    assert status["tiers"]["normal"]["governed"] == {}, status["tiers"]["normal"]
    report(f"\nGOVERNOR clean stop: SIGTERM returned in {stopped:.1f} s with the tiers given "
           "back (VM)")


# ------------------------------------------------------------- thermal ---


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def lm75() -> Iterator[Callable[[int], None]]:
    """A real hwmon sensor (i2c-stub + lm75, see shared/VM-FACTS.md) and a
    setter of its temperature in whole degrees C."""
    missing = [tool for tool in ("modprobe", "i2cset") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} in the guest (i2c-tools, kmod)")
    for args in (("i2c-stub", "chip_addr=0x48"), ("i2c-dev",), ("lm75",)):
        r = _run("modprobe", *args)
        if r.returncode != 0:
            pytest.skip(f"modprobe {' '.join(args)} failed: {r.stderr.strip()}")
    buses = [p.parent for p in Path("/sys/bus/i2c/devices").glob("i2c-*/name")
             if "SMBus stub" in p.read_text()]
    assert buses, "i2c-stub loaded but no 'SMBus stub' bus appeared"
    bus = buses[0]
    n = bus.name.removeprefix("i2c-")
    device = bus / f"{n}-0048"

    def regs(reg: str, word: int, force: bool) -> None:
        r = _run("i2cset", *(["-f"] if force else []), "-y", n, "0x48", reg, f"0x{word:04x}",
                 "w")
        assert r.returncode == 0, f"i2cset {reg}: {r.stderr}"

    if not device.exists():
        regs("0x02", 75, False)  # hysteresis 75 C
        regs("0x03", 80, False)  # overtemperature 80 C
        regs("0x00", 40, False)  # 40 C (SMBus words go low byte first: 0x0028 is 40 C)
        (bus / "new_device").write_text("lm75 0x48\n")
    hwmon = wait_for(lambda: next((h for h in Path("/sys/class/hwmon").glob("hwmon*")
                                   if (h / "name").read_text().strip() == "lm75"), None),
                     30, "the lm75 hwmon device")
    sensor = hwmon / "temp1_input"

    def set_celsius(c: int) -> None:
        regs("0x00", c, True)  # -f: the driver holds the address
        # The driver caches a reading for about a second.
        wait_for(lambda: sensor.read_text().strip() == str(c * 1000), 30,
                 f"the lm75 to read {c} C")

    set_celsius(40)
    yield set_celsius
    with contextlib.suppress(OSError):
        set_celsius(40)
        (bus / "delete_device").write_text("0x48\n")


def test_heat_caps_the_governed_tiers_then_releases(
        rig: Rig, lm75: Callable[[int], None], report: Callable[[str], None]) -> None:
    base = rig.baseline
    d = rig.configure(resource_monitoring={"temperature_monitoring": True},
                      thermal={"throttle_celsius": 85.0, "critical_celsius": 95.0})
    d.start()
    view = d.wait_ready()
    assert view["celsius"] == 40.0, view
    assert not differences(base)

    # 2 CPUs: capacity 200%; 90 C is half way from 85 to 95: 100% for every
    # governed tier that had more (Background keeps its own 50%).
    lm75(90)
    t0 = time.monotonic()
    # The governor sets one slice after the other: wait for both.
    wait_for(lambda: read("low", "cpu.max") == read("normal", "cpu.max") == "100000 100000",
             120, "tau-low.slice's and tau-normal.slice's cpu.max to be capped at 100%")
    capped = since(t0)
    assert read("background", "cpu.max") == base["background"]["cpu.max"]
    records = audited(rig.root, "governor thermal", "tau-low.slice")
    assert records[-1]["after"] == {"cpu_quota": "100%"}, records
    assert "temperature 90.0" in records[-1]["reason"], records[-1]
    assert wait_for(lambda: (v := d.view()) and v["celsius"] == 90.0, 30,
                    "the daemon to show 90 C")

    # At critical: the floor (min_cpu_quota 5%) everywhere, Background frozen.
    lm75(97)
    t1 = time.monotonic()
    wait_for(lambda: frozen("background"), 120, "tau-background.slice to be frozen at 97 C")
    wait_for(lambda: all(read(t, "cpu.max") == "5000 100000" for t in GOVERNED), 60,
             "every governed tier's cpu.max at the 5% floor")
    critical = since(t1)
    freeze = audited(rig.root, "governor freeze", "tau-background.slice")
    assert "critical" in freeze[-1]["reason"], freeze
    audited(rig.root, "governor thermal", "tau-low.slice",
            lambda r: r["after"] == {"cpu_quota": "5%"})

    lm75(40)
    t2 = time.monotonic()
    wait_for(lambda: not differences(base), 120, "every governed file back as applied")
    released = since(t2)
    assert not frozen("background")
    audited(rig.root, "governor thaw", "tau-background.slice")
    audited(rig.root, "governor thermal", "tau-low.slice",
            lambda r: r["after"] == {"cpu_quota": "none"})
    assert governor_json(rig.root) == {"tiers": {}, "frozen": []}
    report(f"\nGOVERNOR thermal: 90 C capped the tiers in {capped:.1f} s, 97 C froze "
           f"Background and floored the caps in {critical:.1f} s, 40 C gave all back in "
           f"{released:.1f} s (VM)")


# -------------------------------------------------------------- memory ---


@pytest.fixture
def zram_swap() -> Iterator[None]:
    """A zram swap device, so the tiers' anonymous memory can be reclaimed
    (the VM has no swap of its own)."""
    missing = [tool for tool in ("modprobe", "mkswap", "swapon", "swapoff")
               if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} in the guest for a zram swap")
    if "/dev/zram0" in Path("/proc/swaps").read_text():
        yield
        return
    r = _run("modprobe", "zram", "num_devices=1")
    if r.returncode != 0:
        pytest.skip(f"modprobe zram failed: {r.stderr.strip()}")
    dev = Path("/sys/block/zram0")
    wait_for(dev.exists, 30, "/sys/block/zram0")
    (dev / "disksize").write_text("4G\n")
    for argv in (("mkswap", "/dev/zram0"), ("swapon", "-p", "100", "/dev/zram0")):
        r = _run(*argv)
        assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    yield
    _run("swapoff", "/dev/zram0")
    with contextlib.suppress(OSError):
        (dev / "reset").write_text("1\n")


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


# A Critical service that holds a working set and keeps asking for more:
# 384 MiB touched page by page, and a 32 MiB block allocated and freed on
# every pass (memory.low protects 256M of it; the rest must compete).
WORKING_SET = """
import time
held = bytearray(384 << 20)
while True:
    for i in range(0, len(held), 4096):
        held[i] = (held[i] + 1) & 0xff
    block = bytearray(32 << 20)
    del block
"""


def test_memory_pressure_squeezes_the_hog_not_the_critical_service(
        rig: Rig, systemd: BlockingSystemd, units: Units, zram_swap: None,
        report: Callable[[str], None]) -> None:
    if not Path(STRESS).exists():
        pytest.skip(f"needs stress-ng ({STRESS}) for the memory hog")
    d = rig.configure(governor={"memory_pressure_percent": 1.0, "cpu_pressure_percent": 100.0,
                                "io_pressure_percent": 100.0, "freeze_background": False})
    d.start()
    d.wait_ready()
    probe = start_service(systemd, units, "workingset", "critical",
                          [sys.executable, "-S", "-c", WORKING_SET])
    probe_cg = cgroup_dir(systemd, probe)
    # More than is free: with swap, the kernel must reclaim from someone.
    hog_bytes = meminfo("MemAvailable") + (768 << 20)
    hog = start_service(systemd, units, "memhog", "normal",
                        [STRESS, "--vm", "1", "--vm-bytes", f"{hog_bytes >> 20}M",
                         "--vm-keep", "--vm-method", "rand-set", "--quiet"])
    t0 = time.monotonic()
    try:
        wait_for(lambda: read("normal", "memory.high") not in (None, "max"), 300,
                 "tau-normal.slice's memory.high to be lowered")
        squeezed = since(t0)
        seen = d.view()
        high = int(read("normal", "memory.high") or 0)
        tightened = audited(rig.root, "governor tighten", "tau-normal.slice",
                            lambda r: "memory_high" in keys_of(r))
        assert "memory pressure" in tightened[0]["reason"], tightened
        audited(rig.root, "governor reclaim", "tau-normal.slice")
        # The Critical service is squeezed by nobody and killed by nothing.
        assert unit_state(systemd, probe) == "active"
        events = (probe_cg / "memory.events").read_text()
        assert "oom_kill 0" in events, events
        assert read("critical", "memory.high") == "max"
    finally:
        stop_service(systemd, hog)
    t1 = time.monotonic()
    assert unit_state(systemd, probe) == "active"
    assert "oom_kill 0" in (probe_cg / "memory.events").read_text()
    stop_service(systemd, probe)
    wait_for(lambda: not differences(rig.baseline), 180,
             "memory.high of every governed tier back as applied")
    relaxed = since(t1)
    report(f"\nGOVERNOR memory: hog of {hog_bytes >> 20} MiB; normal's memory.high lowered "
           f"to {high >> 20} MiB {squeezed:.1f} s after it started (memory stall "
           f"{stall(seen, 'memory')} against 1%); back as applied {relaxed:.1f} s after the "
           "hog stopped (VM)")
