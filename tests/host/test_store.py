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


def damage_a_page(path: Path, table: str = "crashes") -> None:
    """Overwrites the B-tree page header of the table's root page with
    garbage, as a bad sector or a torn write would; the file header
    (page 1) stays valid, so opening still works."""
    with sqlite3.connect(path) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                          (table,)).fetchone()[0]
    with path.open("r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xde\xad\xbe\xef" * (size // 8))


def filled_history(path: Path) -> None:
    h = CrashHistory(path)
    for i in range(3000):  # enough rows for several pages
        h.record(ev(1000.0 + i, unit=f"u{i % 7}.service"))
    h.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_damaged_page_is_a_store_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    filled_history(path)
    damage_a_page(path)
    with pytest.raises(StoreError, match=r"crash history .* is damaged") as err:
        CrashHistory(path).stats()
    assert err.value.damaged


def test_recovery_history_on_a_damaged_file_says_so(tmp_path: Path) -> None:
    from tests.support.cli import taucg
    from tests.support.configs import write_config

    state = tmp_path / "state"
    state.mkdir()
    filled_history(state / "history.db")
    damage_a_page(state / "history.db")
    cfg = write_config(tmp_path / "taucg.toml", crash_recovery={"state_directory": state})
    r = taucg("recovery", "history", config=cfg, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "history.db" in r.stderr and "damaged" in r.stderr
    assert "Traceback" not in r.stderr
