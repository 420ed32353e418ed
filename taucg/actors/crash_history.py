"""The crash history: one row per crash event in SQLite (history.db).

Each row: when, which unit, systemd's Result, the exit code or signal, the
attempt number, the action taken and its outcome. Retention is bounded by
row count and age; MTBF per unit comes from the rows. A daemon restart
finds everything where it left it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from taucg.actors.sqlite_db import Database

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS crashes (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    unit TEXT NOT NULL,
    result TEXT NOT NULL,
    exit_code INTEGER,
    signal INTEGER,
    attempt INTEGER NOT NULL,
    action TEXT NOT NULL,
    delay REAL NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crashes_unit_time ON crashes (unit, time);
"""


@dataclass(frozen=True, slots=True)
class CrashEvent:
    time: float
    unit: str
    result: str  # systemd's Result: exit-code, signal, core-dump, oom-kill, watchdog, ...
    exit_code: int | None
    signal: int | None
    attempt: int
    action: str  # the strategy acted on: restart, restart_with_delay, ...
    outcome: str  # pending, restarted, failed, timeout, ...
    delay: float = 0.0  # seconds waited before acting
    id: int | None = None


@dataclass(frozen=True, slots=True)
class UnitStats:
    unit: str
    failures: int
    first: float
    last: float
    last_result: str
    mtbf_seconds: float | None  # mean time between failures; None with one failure


class CrashHistory(Database):
    SCHEMA = SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "crash history"

    def __init__(self, path: Path, max_rows: int = 100_000, max_age_days: float = 90) -> None:
        self.max_rows = max_rows
        self.max_age_seconds = max_age_days * 86400
        super().__init__(path)

    def record(self, e: CrashEvent) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO crashes (time, unit, result, exit_code, signal, attempt, action,"
                " outcome, delay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e.time, e.unit, e.result, e.exit_code, e.signal, e.attempt, e.action,
                 e.outcome, e.delay))
            self._prune(db, e.time)
            return int(cur.lastrowid or 0)

    def set_outcome(self, event_id: int, outcome: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE crashes SET outcome = ? WHERE id = ?", (outcome, event_id))

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM crashes WHERE time < ?", (now - self.max_age_seconds,))
        db.execute("DELETE FROM crashes WHERE id <= (SELECT id FROM crashes ORDER BY id DESC "
                   "LIMIT 1 OFFSET ?)", (self.max_rows,))

    def events(self, unit: str | None = None, since: float | None = None,
               limit: int | None = None) -> list[CrashEvent]:
        """Oldest first; with a limit, the newest ``limit`` events."""
        sql = ("SELECT time, unit, result, exit_code, signal, attempt, action, outcome, delay,"
               " id FROM crashes WHERE 1=1")
        args: list[object] = []
        if unit is not None:
            sql += " AND unit = ?"
            args.append(unit)
        if since is not None:
            sql += " AND time >= ?"
            args.append(since)
        sql += " ORDER BY time DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = [CrashEvent(*row) for row in self._query(sql, args)]
        rows.reverse()
        return rows

    def stats(self, unit: str | None = None) -> list[UnitStats]:
        sql = ("SELECT unit, COUNT(*), MIN(time), MAX(time), "
               "(SELECT result FROM crashes c2 WHERE c2.unit = c.unit "
               " ORDER BY time DESC, id DESC LIMIT 1) "
               "FROM crashes c")
        args: list[object] = []
        if unit is not None:
            sql += " WHERE unit = ?"
            args.append(unit)
        sql += " GROUP BY unit ORDER BY unit"
        out = []
        for name, count, first, last, last_result in self._query(sql, args):
            mtbf = (last - first) / (count - 1) if count > 1 else None
            out.append(UnitStats(name, count, first, last, last_result, mtbf))
        return out

    def attempts_since(self, unit: str, since: float) -> int:
        rows = self._query("SELECT COUNT(*) FROM crashes WHERE unit = ? AND time >= ?",
                           (unit, since))
        return int(rows[0][0])
