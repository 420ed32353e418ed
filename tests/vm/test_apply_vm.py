"""`taucg apply` and `taucg status` against real systemd and real controllers."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taucg.actors.apply import desired_files
from taucg.actors.systemd_dbus import SERVICE, SystemdError
from taucg.config import loading
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg
from tests.support.configs import write_config

from .helpers import CGROUP_ROOT, Units, cgroup_dir, unit_state, wait_for

UNIT_DIR = Path("/etc/systemd/system")
TAU = CGROUP_ROOT / "tau.slice"
TIERS = ("critical", "high", "normal", "low", "background")


def tier_cg(tier: str) -> Path:
    return TAU / f"tau-{tier}.slice"


def read(tier: str, name: str) -> str:
    return (tier_cg(tier) / name).read_text().strip()


def total_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def unit_files() -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in UNIT_DIR.glob("tau*.slice")}


@pytest.fixture(scope="module", autouse=True)
def applied_default(systemd: BlockingSystemd, report: Callable[[str], None]
                    ) -> Iterator[float]:
    """The built-in default applied once; every test leaves it that way."""
    # From nothing: a daemon of an earlier module may have applied the tiers
    # (started slices leave no "apply start" to audit, and the first apply is
    # what the tests below look at).
    remove_tiers(systemd)
    t0 = time.monotonic()
    r = taucg("apply")
    elapsed = time.monotonic() - t0
    report(f"\nBENCH full apply of the default config: {elapsed:.2f} s (VM, emulated)\n"
           f"{r.stdout}")
    yield elapsed
    remove_tiers(systemd)


def remove_tiers(systemd: BlockingSystemd) -> None:
    for p in list(UNIT_DIR.glob("tau*.slice")):
        p.unlink()
    systemd.reload()
    with contextlib.suppress(SystemdError):  # never started, or already gone
        systemd.stop("tau.slice")


AUDIT = Path("/var/log/tau/audit.log")


def audit_records() -> list[dict[str, object]]:
    return [json.loads(line) for line in AUDIT.read_text().splitlines()] if AUDIT.exists() \
        else []


def test_apply_is_audited() -> None:
    records = audit_records()
    actions = {(r["action"], r["target"]) for r in records}
    assert ("apply start", "tau-low.slice") in actions
    assert ("apply create", str(UNIT_DIR / "tau-critical.slice")) in actions
    prop = next(r for r in records if r["action"] == "apply set-property"
                and r["target"] == "tau-low.slice" and "CPUWeight" in r["after"])  # type: ignore[operator]
    assert prop["after"] == {"CPUWeight": "30"}
    assert prop["who"] == "root (uid 0)"


def test_default_config_reaches_every_tier() -> None:
    weights = {"critical": "1000", "high": "400", "normal": "100", "low": "30",
               "background": "10"}
    for tier, w in weights.items():
        assert read(tier, "cpu.weight") == w, tier
        assert read(tier, "io.weight") == f"default {w}", tier
    assert read("critical", "memory.min") == str(128 << 20)
    assert read("critical", "memory.low") == str(256 << 20)
    assert read("high", "memory.low") == str(128 << 20)
    assert (TAU / "memory.low").read_text().strip() == str(384 << 20)  # the tiers' sum
    assert (TAU / "memory.min").read_text().strip() == str(128 << 20)
    mem = total_memory()
    assert abs(int(read("background", "memory.max")) - mem * 0.40) < mem * 0.01
    assert abs(int(read("low", "memory.high")) - mem * 0.60) < mem * 0.01
    assert read("background", "cpu.max") == "50000 100000"
    assert read("normal", "cpu.max") == "max 100000"
    assert read("background", "pids.max") == "1024"
    assert read("low", "pids.max") == "4096"
    assert read("critical", "memory.max") == "max"


def test_second_apply_changes_nothing(report: Callable[[str], None]) -> None:
    before = {p: p.stat().st_mtime_ns for p in unit_files()}
    audited = len(audit_records())
    control = Path("/run/systemd/system.control")
    control_before = {p: p.stat().st_mtime_ns for p in control.rglob("*.conf")}
    t0 = time.monotonic()
    r = taucg("apply", "--format", "json")
    report(f"\nBENCH no-op apply: {time.monotonic() - t0:.2f} s (VM, emulated)")
    out = json.loads(r.stdout)
    assert out["plan"]["changed"] is False
    assert out["plan"]["files"] == [] and out["plan"]["properties"] == []
    assert out["plan"]["start"] == []
    assert out["drift"] == []
    assert {p: p.stat().st_mtime_ns for p in unit_files()} == before
    # SetUnitProperties(runtime) writes these drop-ins; none was touched.
    assert {p: p.stat().st_mtime_ns for p in control.rglob("*.conf")} == control_before
    assert len(audit_records()) == audited  # nothing changed, nothing to audit
    dry = taucg("apply", "--dry-run", check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "nothing would change" in dry.stdout


def test_dry_run_shows_exactly_the_changed_keys(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "taucg.toml", tiers={"low": {"cpu_weight": 25}})
    r = taucg("apply", "--dry-run", "--format", "json", config=cfg, check=False)
    assert r.returncode == 10, r.stdout + r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert [(p["unit"], p["name"], p["before"], p["after"]) for p in plan["properties"]] == [
        ("tau-low.slice", "CPUWeight", "30", "25")]
    assert [(f["path"], f["action"]) for f in plan["files"]] == [
        (str(UNIT_DIR / "tau-low.slice"), "update")]
    diff = set(plan["files"][0]["after"].splitlines()) ^ set(
        plan["files"][0]["before"].splitlines())
    assert diff == {"CPUWeight=30", "CPUWeight=25"}
    assert read("low", "cpu.weight") == "30"  # a dry run changes nothing


def _cpu_hog(systemd: BlockingSystemd, units: Units, tier: str) -> str:
    svc = units.name(f"spin-{tier}")
    systemd.start_transient(svc, {
        "Description": f"taucg test CPU hog in {tier}",
        "Slice": f"tau-{tier}.slice",
        "AllowedCPUs": [0],
        "ExecStart": [("/bin/sh", ["/bin/sh", "-c", "while :; do :; done"], False)],
    })
    return svc


def _usage(path: Path) -> float:
    for line in (path / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec"):
            return int(line.split()[1]) / 1e6
    raise AssertionError("no usage_usec")


def test_cpu_weight_divides_one_cpu(systemd: BlockingSystemd, units: Units,
                                    report: Callable[[str], None]) -> None:
    hi = _cpu_hog(systemd, units, "critical")
    lo = _cpu_hog(systemd, units, "background")
    hi_cg, lo_cg = cgroup_dir(systemd, hi), cgroup_dir(systemd, lo)
    # Measured over an amount of work, not of wall time: both running first,
    # then until the two together have had 8 CPU seconds of CPU 0.
    wait_for(lambda: _usage(hi_cg) > 0 and _usage(lo_cg) > 0, 120, "both hogs to run")
    a = (_usage(hi_cg), _usage(lo_cg))
    wait_for(lambda: _usage(hi_cg) + _usage(lo_cg) - sum(a) >= 8.0, 300,
             "8 CPU seconds between the two hogs")
    b = (_usage(hi_cg), _usage(lo_cg))
    hi_s, lo_s = b[0] - a[0], b[1] - a[1]
    report(f"\nCPUWeight 1000:10 on one CPU over {hi_s + lo_s:.1f} CPU s: critical "
           f"{hi_s:.2f} s, background {lo_s:.2f} s, ratio {hi_s / max(lo_s, 1e-6):.1f}:1")
    assert hi_s > 5 * lo_s


def test_memory_max_kills_background_not_critical(systemd: BlockingSystemd, units: Units,
                                                  tmp_path: Path) -> None:
    # No MemoryHigh: with it the kernel throttles the hog for minutes before
    # MemoryMax is reached, and this test is about the kill.
    cfg = write_config(tmp_path / "taucg.toml",
                       tiers={"background": {"memory_high": "infinity", "memory_max": "128M"}})
    taucg("apply", config=cfg)
    try:
        assert read("background", "memory.max") == str(128 << 20)
        code = "import signal\nx = b'x' * (200 << 20)\nwhile True:\n    signal.pause()"
        hog, keeper = units.name("hog-bg"), units.name("keeper-crit")
        for svc, tier in ((keeper, "critical"), (hog, "background")):
            systemd.start_transient(svc, {
                "Description": f"taucg test 200M in {tier}",
                "Slice": f"tau-{tier}.slice",
                "MemorySwapMax": 0,
                "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", code], False)],
            })
        wait_for(lambda: unit_state(systemd, hog) == "failed", 180, f"{hog} to be OOM-killed")
        assert systemd.get_property(hog, "Result", SERVICE) == "oom-kill"
        assert unit_state(systemd, keeper) == "active"
    finally:
        taucg("apply")


def test_allowed_cpus_is_the_affinity_and_tasks_max_refuses_forks(
        systemd: BlockingSystemd, units: Units, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "taucg.toml",
                       tiers={"low": {"allowed_cpus": "1", "tasks_max": 8}})
    taucg("apply", config=cfg)
    try:
        assert read("low", "cpuset.cpus.effective") == "1"
        assert read("low", "pids.max") == "8"
        report = tmp_path / "forks.txt"
        code = ("import os, signal, sys\nok = fail = 0\nkids = []\n"
                "for _ in range(20):\n"
                "    try:\n        pid = os.fork()\n    except OSError:\n        fail += 1\n"
                "        continue\n"
                "    if pid == 0:\n        while True:\n            signal.pause()\n"
                "    kids.append(pid)\n    ok += 1\n"
                "aff = sorted(os.sched_getaffinity(0))\n"
                "open(sys.argv[1], 'w').write(f'{ok} {fail} {aff}')\n"
                "while True:\n    signal.pause()\n")
        svc = units.name("forker")
        systemd.start_transient(svc, {
            "Description": "taucg test fork past TasksMax",
            "Slice": "tau-low.slice",
            "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", code, str(report)],
                           False)],
        })
        wait_for(lambda: report.exists() and len(report.read_text().split(" ", 2)) == 3, 180,
                 "the forker's report")
        ok, fail, aff = report.read_text().split(" ", 2)
        assert int(fail) > 0, "no fork was refused"
        assert int(ok) <= 7  # 8 tasks in the tier, one of them the forker itself
        assert aff == "[1]"
    finally:
        taucg("apply")


@pytest.mark.parametrize("step", ["file", "reload", "properties", "start"])
def test_kill_9_at_each_step_then_converge(step: str, systemd: BlockingSystemd,
                                           tmp_path: Path) -> None:
    old = unit_files()
    cfg = write_config(tmp_path / "taucg.toml",
                       tiers={"normal": {"cpu_weight": 150, "io_weight": 150},
                              "high": {"cpu_weight": 450}})
    new = {path: text.encode() for path, text in desired_files(
        loading.load(cfg), UNIT_DIR, total_memory()).items()}
    r = taucg("apply", config=cfg, env={"TAUCG_APPLY_KILL_AT": step}, check=False)
    assert r.returncode == -9, (r.returncode, r.stdout, r.stderr)
    now = unit_files()
    for path, content in now.items():
        # Every unit file is the old one or the new one, whole; never half.
        assert content in (old.get(path), new.get(path)), path
    if step != "file":
        assert now == {p: new[p] for p in now}  # all files were written before the kill
    taucg("apply", config=cfg)
    assert read("normal", "cpu.weight") == "150"
    assert read("high", "cpu.weight") == "450"
    assert not list(UNIT_DIR.glob(".*.taucg-*"))
    taucg("apply")
    assert read("normal", "cpu.weight") == "100"


def test_failure_halfway_restores_the_files(tmp_path: Path) -> None:
    old = unit_files()
    cfg = write_config(tmp_path / "taucg.toml", tiers={"normal": {"cpu_weight": 175}})
    r = taucg("apply", config=cfg, env={"TAUCG_APPLY_FAIL_AT": "properties"}, check=False)
    assert r.returncode == 1
    assert "failed while setting live properties" in r.stderr
    assert "Restored 1 file(s)" in r.stderr
    assert "live properties were already set" in r.stderr
    assert "Traceback" not in r.stderr
    assert unit_files() == old
    taucg("apply")  # converges back, including the live property
    assert read("normal", "cpu.weight") == "100"


def test_service_moves_only_with_restart_moved(systemd: BlockingSystemd,
                                                 tmp_path: Path) -> None:
    unit = "taucg-test-web.service"
    (UNIT_DIR / unit).write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    systemd.reload()
    systemd.start(unit)
    try:
        cfg = write_config(tmp_path / "taucg.toml", tiers={"high": {"units": ["taucg-test-web"]}})
        first = taucg("apply", config=cfg)
        assert "restart needed to change tier: taucg-test-web.service" in first.stdout
        assert cgroup_dir(systemd, unit).parent.name == "system.slice"
        again = taucg("apply", config=cfg)  # still listed until restarted
        assert "restart needed to change tier: taucg-test-web.service" in again.stdout
        taucg("apply", "--restart-moved", config=cfg)
        assert unit_state(systemd, unit) == "active"
        assert cgroup_dir(systemd, unit).parent == tier_cg("high")
        back = taucg("apply", "--format", "json")  # the default: no longer placed
        plan = json.loads(back.stdout)["plan"]
        assert [(f["action"], Path(f["path"]).name) for f in plan["files"]] == [
            ("remove", "50-taucg-tier.conf")]
        assert plan["moves"] == [{"unit": unit, "from": "tau-high.slice", "to": "system.slice",
                                  "active": True}]
    finally:
        systemd.stop(unit)
        (UNIT_DIR / unit).unlink()
        systemd.reload()


def test_second_apply_waits_for_none(tmp_path: Path) -> None:
    from taucg.actors.apply import apply_lock

    with apply_lock():
        r = taucg("apply", check=False)
    assert r.returncode == 1
    assert "another taucg apply is running" in r.stderr
    assert f"pid {os.getpid()}" in r.stderr


def test_status_shows_members_and_limits(systemd: BlockingSystemd, units: Units) -> None:
    svc = units.name("member")
    systemd.start_transient(svc, {
        "Description": "taucg status member",
        "Slice": "tau-high.slice",
        "ExecStart": [("/bin/sleep", ["/bin/sleep", "600"], False)],
    })
    data = json.loads(taucg("status", "--format", "json", "--interval", "0.2").stdout)
    high = data["tiers"]["high"]
    assert high["applied"] is True
    assert {"unit": svc, "tasks": 1} in high["members"]
    assert high["effective_files"]["cpu.weight"] == "400"
    assert high["configured"]["cpu_weight"] == 400
    assert high["directives"]["CPUWeight"] == "400"
    assert high["drift"] == []
    assert high["zombies"] == 0
    assert data["tiers"]["all"]["applied"] is True
