"""Every command this machine can run, with -o json, against its shipped
JSON Schema: empty, populated and error cases. The systemd-backed ones
(status on real slices, apply, recovery's units) are in tests/vm/test_json_vm.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.recovery_state import snapshot
from taucg.actors.recovery_watcher import history_path
from taucg.config.loading import load
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import private_paths, write_config
from tests.support.fake_systemd import FakeSystemd
from tests.support.json_contract import UTC_TIME, error_document, one_document, validate
from tests.support.waiting import wait_for

# tau-monitor from this checkout (the venv's script may belong to another one).
TAU_MONITOR = [sys.executable, "-c", "import sys; sys.argv[0] = 'tau-monitor'\n"
               "from taucg.faces.cli.main import tau_monitor_main; tau_monitor_main()"]


def epoch(stamp: str) -> float:
    assert UTC_TIME.fullmatch(stamp), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config whose every file (logs, state, session, socket) is under tmp_path."""
    sections = private_paths(tmp_path)
    sections["crash_recovery"]["critical_processes"] = ["sshd", "cron"]
    return write_config(tmp_path / "taucg.toml", **sections)


def lines_of(args: list[str], count: int, config: Path | None = None) -> list[dict[str, Any]]:
    """The first ``count`` lines of a --watch stream, then the stream is stopped."""
    p = subprocess.Popen(taucg_argv(*args, config=config), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        got = [json.loads(p.stdout.readline()) for _ in range(count)]
    finally:
        p.terminate()  # our own child, by its Popen
        p.wait(timeout=60)
    return got


# ------------------------------------------------------------- config ---


def test_config_and_config_check(tmp_path: Path) -> None:
    f = write_config(tmp_path / "admin.toml", tiers={"low": {"cpu_weight": 25}})
    doc = one_document(taucg("config", "--tiers", "-o", "json", "-c", f, timeout=60), "config")
    assert doc["config"]["tiers"]["low"]["cpu_weight"] == 25
    assert doc["sources"]["tiers.low.cpu_weight"] == str(f)

    doc = one_document(taucg("config", "check", f, "-o", "json", timeout=60), "config-check")
    assert doc["file"] == str(f) and doc["keys"] == ["tiers.low.cpu_weight"]

    bad = tmp_path / "bad.toml"
    bad.write_text("[tiers.low]\ncpu_weight = 0\n")
    err = error_document(taucg("config", "check", bad, "-o", "json", check=False, timeout=60), 2)
    assert any(str(bad) in p and "cpu_weight" in p for p in err["error"]["problems"]), err


def test_usage_errors_are_json_too() -> None:
    for args in (["status", "-o", "json", "--no-such-flag"], ["resources", "--format=json",
                                                                "--watch", "nan"],
                 ["--no-such-flag", "status", "-o", "json"], ["no-such-command", "-o", "json"],
                 ["config", "check", "-o", "json"]):
        err = error_document(taucg(*args, check=False, timeout=60), 2)
        assert err["error"]["message"], err
    # Without -o json a usage error stays click's text on stderr.
    r = taucg("status", "--no-such-flag", check=False, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and "No such option" in r.stderr


# ---------------------------------------------------------- resources ---


def test_resources_every_section_and_the_watch_stream() -> None:
    doc = one_document(taucg("resources", "-o", "json", "--interval", "0.1", timeout=60),
                       "resources")
    assert {"cpu", "memory", "disk", "network", "temperature", "pressure"} <= set(doc)
    assert doc["memory"]["total_bytes"] > 0
    assert abs(epoch(doc["sampled_at"]) - time.time()) < 600

    first, second = lines_of(["resources", "--cpu", "-w", "0.2", "-o", "json"], 2)
    for d in (first, second):
        validate(d, "resources")
        assert set(d) == {"schema", "cpu", "sampled_at"}
    assert epoch(second["sampled_at"]) > epoch(first["sampled_at"])


# ---------------------------------------------------------- processes ---


def test_processes_flat_nested_empty_and_why() -> None:
    flat = one_document(taucg("processes", "-o", "json", timeout=120), "processes")
    me = [p for p in flat["processes"] if p["pid"] == os.getpid()]
    assert len(me) == 1 and me[0]["rss_bytes"] > 0 and "children" not in me[0]

    tree = one_document(taucg("processes", "--tree", "-o", "json", timeout=120), "processes")
    seen: dict[int, dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]], parent: int | None) -> None:
        for n in nodes:
            if parent is not None:
                assert n["ppid"] == parent, (n["pid"], n["ppid"], parent)
            seen[n["pid"]] = n
            walk(n["children"], n["pid"])

    walk(tree["processes"], None)
    # This test's own process hangs under its parent, not at the top.
    assert os.getpid() in seen and os.getppid() in seen
    assert any(c["pid"] == os.getpid() for c in seen[os.getppid()]["children"])
    assert len(tree["processes"]) < len(seen)

    # Nothing runs in the tiers on this host (no systemd): an empty list, exit 0.
    empty = one_document(taucg("processes", "--tier", "background", "-o", "json", timeout=60),
                         "processes")
    assert empty["processes"] == []

    why = one_document(taucg("processes", "--why", str(os.getpid()), "-o", "json",
                             timeout=60), "processes-why")
    assert why["pid"] == os.getpid() and why["explanation"]
    err = error_document(taucg("processes", "--why", "999999999", "-o", "json", check=False,
                               timeout=60), 1)
    assert "no process 999999999" in err["error"]["message"]


def test_classify_dry_run_on_a_host_without_units(tmp_path: Path) -> None:
    """No process here runs in a systemd unit, so a matching rule places
    none (the VM test places one); --why says so for the match."""
    f = write_config(tmp_path / "taucg.toml", **private_paths(tmp_path),
                     rules=[{"comm": "sleep", "user": os.getuid(), "tier": "low"}])
    child = subprocess.Popen(["sleep", "300"])
    try:
        doc = one_document(taucg("classify", "--dry-run", "-o", "json", config=f, timeout=120),
                           "classify")
        why = one_document(taucg("processes", "--why", str(child.pid), "-o", "json", config=f,
                                 timeout=60), "processes-why")
    finally:
        child.kill()
        child.wait()
    assert doc["dry_run"] is True and doc["placements"] == []
    assert why["tier"] == "low" and why["rule"] == 1 and why["movable"] is False
    assert why["reason"] == "not in a systemd unit"


# ------------------------------------------------------ status, health ---


def test_status_on_a_host_without_the_slices() -> None:
    doc = one_document(taucg("status", "-o", "json", "--interval", "0.1", timeout=120),
                       "status")
    assert set(doc["tiers"]) == {"all", "critical", "high", "normal", "low", "background"}
    low = doc["tiers"]["low"]
    # Numbers, with their units in the keys: not "MemoryHigh=60%".
    assert low["configured"]["memory_high_ram_percent"] == 60
    assert low["configured"]["tasks_max"] == 4096

    lines = lines_of(["status", "-w", "0.2", "-o", "json", "--interval", "0.05"], 2)
    for d in lines:
        validate(d, "status")


def test_health_and_tau_monitor_check() -> None:
    r = taucg("health", "-o", "json", check=False, timeout=120)
    doc = one_document(r, "health")
    assert doc["healthy"] == (r.returncode == 0)
    memory = next(c for c in doc["checks"] if c["name"] == "memory_usage")
    assert isinstance(memory["measured"]["usage_percent"], float)
    disk = next(c for c in doc["checks"] if c["name"] == "disk_usage")
    assert disk["measured"]["mountpoint"].startswith("/")

    check = subprocess.run([*TAU_MONITOR, "--check", "-o", "json"],
                           capture_output=True, text=True, timeout=120, check=False)
    doc = one_document(check, "health")
    assert doc["healthy"] == (check.returncode == 0)
    bad = subprocess.run([*TAU_MONITOR, "-o", "json"], capture_output=True,
                         text=True, timeout=60, check=False)
    error_document(bad, 2)


# ------------------------------------------------------------ recovery ---


def test_recovery_history_empty_then_populated(cfg: Path) -> None:
    empty = one_document(taucg("recovery", "--history", "-o", "json", config=cfg, timeout=60),
                         "recovery-history")
    assert empty["units"] == [] and empty["events"] == []

    t0 = time.time() - 100
    history = CrashHistory(history_path(load(str(cfg))))
    for i, t in enumerate((t0, t0 + 60)):
        history.record(CrashEvent(t, "cron.service", "exit-code", 1, None, i + 1, "restart",
                                  "restarted", delay=2.5))
    doc = one_document(taucg("recovery", "history", "-o", "json", config=cfg, timeout=60),
                       "recovery-history")
    (unit,) = doc["units"]
    assert unit["unit"] == "cron.service" and unit["failures"] == 2
    assert unit["mtbf_seconds"] == pytest.approx(60, abs=0.01)
    assert epoch(unit["first_failure_at"]) == pytest.approx(t0, abs=0.001)
    assert [e["delay_seconds"] for e in doc["events"]] == [2.5, 2.5]
    other = one_document(taucg("recovery", "--history", "--unit", "sshd", "-o", "json",
                               config=cfg, timeout=60), "recovery-history")
    assert other["units"] == []


def test_recovery_session_empty_then_populated(cfg: Path) -> None:
    empty = one_document(taucg("recovery", "--session", "-o", "json", config=cfg, timeout=60),
                         "recovery-session")
    assert empty["snapshot"] is None

    fake = FakeSystemd()
    fake.add_service("sshd.service", "active")
    fake.add_service("cron.service", "failed")
    before = time.time()
    asyncio.run(snapshot(load(str(cfg)), fake))  # type: ignore[arg-type]
    doc = one_document(taucg("recovery", "session", "-o", "json", config=cfg, timeout=60),
                       "recovery-session")
    snap = doc["snapshot"]
    assert epoch(snap["taken_at"]) >= before - 0.001
    assert {u["unit"]: u["active_state"] for u in snap["units"]} == {
        "sshd.service": "active", "cron.service": "failed"}


def test_recovery_without_systemd(cfg: Path, tmp_path: Path) -> None:
    doc = one_document(taucg("recovery", "-o", "json", config=cfg, timeout=60), "recovery")
    assert doc["systemd_reachable"] is False
    assert [u["unit"] for u in doc["units"]][:2] == ["sshd.service", "cron.service"]

    blob = tmp_path / "state.bin"
    blob.write_bytes(b"12345")
    saved = one_document(taucg("recovery", "save-state", "cron", blob, "-o", "json",
                               config=cfg, timeout=60), "recovery-save-state")
    assert saved["size_bytes"] == 5 and Path(saved["saved_to"]).read_bytes() == b"12345"

    err = error_document(taucg("recovery", "leave-safe-mode", "-o", "json", config=cfg,
                               check=False, timeout=60), 1)
    assert "systemd" in err["error"]["message"].lower()


def test_apply_dry_run_on_this_host(tmp_path: Path) -> None:
    units = tmp_path / "units"
    r = taucg("apply", "--dry-run", "-o", "json", "--unit-dir", units, check=False, timeout=120)
    # 10: something would change; 2: preflight found this host unfit (shown in the document).
    assert r.returncode in (2, 10), (r.returncode, r.stderr)
    doc = one_document(r, "apply")
    assert doc["dry_run"] is True and doc["plan"]["changed"] is True
    assert {Path(f["path"]).name for f in doc["plan"]["files"]} >= {"tau-low.slice"}
    assert bool(doc["problems"]) == (r.returncode == 2)


# ------------------------------------------------- commands of the daemon ---


def test_daemon_commands_without_a_daemon(cfg: Path) -> None:
    for args in (["logs"], ["alerts"], ["history"], ["governor"]):
        err = error_document(taucg(*args, "-o", "json", config=cfg, check=False, timeout=60), 3)
        assert "not running" in err["error"]["message"], (args, err)


@pytest.fixture
def daemon(start_daemon: Any) -> Any:
    # Every memory sample is over a 0% threshold: alerts to show.
    return start_daemon(resource_monitoring={"interval_seconds": 1,
                                            "memory_threshold_percent": 0.0})


def test_daemon_commands_with_a_daemon(daemon: Any) -> None:
    def ask(*args: str) -> subprocess.CompletedProcess[str]:
        return taucg(*args, "-o", "json", config=daemon.config, timeout=60)

    alerts = wait_for(lambda: (d := one_document(ask("alerts"), "alerts"))["recent"] and d,
                      120, "a memory alert")
    assert "memory_percent" in alerts["active"], alerts
    history = wait_for(lambda: (d := one_document(ask("history"), "history"))["metrics"].get(
        "memory_percent", {}).get("points", [])[1:] and d, 120, "two memory points")
    points = history["metrics"]["memory_percent"]["points"]
    assert epoch(points[-1]["sampled_at"]) >= epoch(points[0]["sampled_at"])

    logs = one_document(ask("logs", "--stats", "--recent", "-n", "5"), "logs")
    assert {s["log"] for s in logs["stats"]} >= {"main", "audit"}
    assert logs["recent"] and all(r["logged_at"] for r in logs["recent"]), logs["recent"]
    only_stats = one_document(ask("logs"), "logs")
    assert only_stats["recent"] is None

    governor = one_document(ask("governor"), "governor")
    assert governor["running"] is False and governor["why"]
