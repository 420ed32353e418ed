"""The crash history's schema 2 on real SQLite (a schema 1 file migrated in
place), drills left out of the stats, and the CLI's faces of the flight
record and of the dry-run drill (`recovery history --detail`, `recovery
test --dry-run`) against their JSON schemas. The recording itself, on
real units, is tests/vm/test_flight_recorder_vm.py."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.recovery_watcher import history_path
from taucg.config.loading import load
from taucg.model.flight import Recorder, point, ring_capacity
from tests.support.cli import taucg
from tests.support.configs import private_paths, write_config
from tests.support.json_contract import one_document

V1 = """
CREATE TABLE crashes (id INTEGER PRIMARY KEY, time REAL NOT NULL, unit TEXT NOT NULL,
    result TEXT NOT NULL, exit_code INTEGER, signal INTEGER, attempt INTEGER NOT NULL,
    action TEXT NOT NULL, delay REAL NOT NULL DEFAULT 0, outcome TEXT NOT NULL);
CREATE INDEX crashes_unit_time ON crashes (unit, time);
INSERT INTO crashes (time, unit, result, exit_code, signal, attempt, action, outcome)
    VALUES (100.0, 'a.service', 'signal', NULL, 11, 1, 'restart', 'restarted');
PRAGMA user_version=1;
"""


def test_a_schema_1_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.close()
    h = CrashHistory(path)
    (old,) = h.events()
    assert (old.time, old.signal, old.drill, old.flight_bytes) == (100.0, 11, False, 0)
    h.record(CrashEvent(200.0, "a.service", "signal", None, 11, 2, "restart", "restarted",
                        drill=True), b"x" * 10)
    h.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    again = CrashHistory(path)
    assert [(e.drill, e.flight_bytes) for e in again.events()] == [(False, 0), (True, 10)]
    (stats,) = again.stats()
    assert (stats.failures, stats.drills, stats.last) == (1, 1, 100.0)


def test_drills_are_left_out_of_failures_and_mtbf(tmp_path: Path) -> None:
    h = CrashHistory(tmp_path / "h.db")
    for t in (0.0, 100.0, 300.0):
        h.record(CrashEvent(t, "a.service", "exit-code", 1, None, 1, "restart", "restarted"))
    for t in (50.0, 60.0, 400.0):
        h.record(CrashEvent(t, "a.service", "signal", None, 11, 1, "restart", "restarted",
                            drill=True))
    h.record(CrashEvent(70.0, "b.service", "signal", None, 11, 1, "restart", "restarted",
                        drill=True))
    (a,) = h.stats()
    assert (a.unit, a.failures, a.mtbf_seconds, a.last, a.drills) == (
        "a.service", 3, 150.0, 300.0, 3)
    assert a.last_result == "exit-code"
    assert h.drills() == 4 and h.drills("b.service") == 1
    assert h.stats("b.service") == []


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    sections = private_paths(tmp_path)
    sections["crash_recovery"]["critical_processes"] = ["grow.service"]
    return write_config(tmp_path / "taucg.toml", **sections,
                        recovery={"services": {"grow.service": {"strategy": "restart",
                                                                "max_attempts": 2}}})


def record_crash(cfg: Path) -> int:
    """A growing unit's record, as the daemon would store it at its failure."""
    from tests.unit.test_flight import cgroup, system

    rec = Recorder(0, 2)
    rec.watch(["grow.service"], 10.0, ring_capacity(10.0, 1.0))
    now = time.time()
    for i in range(60):
        t = now - 60 + i
        rec.add("grow.service", point(t, cgroup(t, (8 + i) << 20, cpu=i * 0.2),
                                      cgroup(t, 0), system(1 << 30)))
    final = point(now, None, cgroup(now, 0, oom_kill=1), system(1 << 30))
    frozen = rec.freeze("grow.service", now, final)
    assert frozen is not None
    history = CrashHistory(history_path(load(str(cfg))))
    try:
        return history.record(CrashEvent(now, "grow.service", "oom-kill", None, 9, 1,
                                         "restart", "restarted"), frozen.encode())
    finally:
        history.close()


def test_history_detail_shows_the_growth_as_text_and_json(cfg: Path) -> None:
    event = record_crash(cfg)
    text = taucg("recovery", "--history", "--unit", "grow", "--detail", "-o", "table",
                 config=cfg, timeout=60).stdout
    assert f"event {event}" in text and "OOM kills: unit 0, slice 1" in text
    assert "at failure" in text and "-60s" in text
    doc = one_document(taucg("recovery", "history", "--unit", "grow", "--detail", "-o", "json",
                             config=cfg, timeout=60), "recovery-history")
    (detail,) = doc["details"]
    assert detail["event_id"] == event and detail["flight_bytes"] > 0
    samples = detail["flight"]["samples"]
    memory = [s["memory_bytes"] for s in samples if s["memory_bytes"] is not None]
    assert len(memory) == 60 and memory == sorted(memory) and memory[-1] > memory[0]
    assert samples[-1]["slice_oom_kill"] == 1
    assert detail["flight"]["summary"]["memory_growth_bytes"] == 59 << 20
    plain = one_document(taucg("recovery", "history", "-o", "json", config=cfg, timeout=60),
                         "recovery-history")
    assert "details" not in plain and plain["events"][0]["flight_bytes"] > 0


def test_dry_run_follows_the_persisted_attempts(cfg: Path) -> None:
    fresh = one_document(taucg("recovery", "test", "grow", "--dry-run", "-o", "json",
                               config=cfg, timeout=60), "recovery-test")
    assert fresh["watched"] and fresh["strategy_now"] == "restart"
    assert [(s["strategy"], s["attempt"]) for s in fresh["steps"]][:3] == [
        ("restart", 1), ("restart", 2), ("restart_with_delay", 1)]
    assert fresh["repeats"] == "notify_admin"
    history = CrashHistory(history_path(load(str(cfg))))
    now = time.time()
    for i, t in enumerate((now - 30, now - 20)):
        history.record(CrashEvent(t, "grow.service", "signal", None, 11, i + 1, "restart",
                                  "restarted"))
    history.close()
    after = one_document(taucg("recovery", "test", "grow", "--dry-run", "-o", "json",
                               config=cfg, timeout=60), "recovery-test")
    assert after["attempts_in_window"] == 2
    first = after["steps"][0]
    assert (first["strategy"], first["attempt"], first["escalated_from"]) == (
        "restart_with_delay", 1, "restart")
    text = taucg("recovery", "test", "grow", "--dry-run", "-o", "table", config=cfg,
                 timeout=60).stdout
    assert "restart_with_delay" in text and "every further failure: notify_admin" in text


def test_crash_needs_root_and_one_mode(cfg: Path) -> None:
    both = taucg("recovery", "test", "grow", config=cfg, check=False, timeout=60)
    assert both.returncode == 2 and "--dry-run or --crash" in both.stderr
    bad = taucg("recovery", "test", "grow", "--crash", "--signal", "SIGNOPE", config=cfg,
                check=False, timeout=60)
    assert bad.returncode == 2 and "SIGSEGV" in bad.stderr
