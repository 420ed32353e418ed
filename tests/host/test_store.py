"""The crash history on a real SQLite file (WAL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.sqlite_db import StoreError


def ev(t: float, unit: str = "a.service", result: str = "exit-code", attempt: int = 1
       ) -> CrashEvent:
    return CrashEvent(t, unit, result, 1 if result == "exit-code" else None,
                      11 if result == "signal" else None, attempt, "restart", "pending")


def test_rows_survive_reopening_and_outcomes_update(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.db"
    h = CrashHistory(path)
    first = h.record(ev(100.0))
    h.record(ev(160.0, result="signal", attempt=2))
    h.set_outcome(first, "restarted")
    h.close()
    again = CrashHistory(path)
    rows = again.events("a.service")
    assert [(r.time, r.result, r.signal, r.attempt, r.outcome) for r in rows] == [
        (100.0, "exit-code", None, 1, "restarted"), (160.0, "signal", 11, 2, "pending")]
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_stats_count_mtbf_and_last_failure(tmp_path: Path) -> None:
    h = CrashHistory(tmp_path / "h.db")
    for t in (0.0, 100.0, 400.0):
        h.record(ev(t))
    h.record(ev(500.0, unit="b.service", result="oom-kill"))
    stats = {s.unit: s for s in h.stats()}
    assert stats["a.service"].failures == 3
    assert stats["a.service"].mtbf_seconds == 200.0
    assert stats["a.service"].last == 400.0
    assert stats["b.service"].mtbf_seconds is None
    assert stats["b.service"].last_result == "oom-kill"
    assert [s.unit for s in h.stats("b.service")] == ["b.service"]
    assert h.attempts_since("a.service", 100.0) == 2


def test_retention_by_count_and_age(tmp_path: Path) -> None:
    h = CrashHistory(tmp_path / "h.db", max_rows=5, max_age_days=1)
    for i in range(12):
        h.record(ev(1000.0 + i))
    assert [r.time for r in h.events()] == [1007.0, 1008.0, 1009.0, 1010.0, 1011.0]
    h.record(ev(1011.0 + 2 * 86400))
    assert [r.time for r in h.events()] == [1011.0 + 2 * 86400]
    assert [r.time for r in h.events(limit=1)] == [1011.0 + 2 * 86400]


def test_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "h.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"cannot open the crash history .*move a damaged"):
        CrashHistory(bad)
