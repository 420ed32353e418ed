"""The crash history: one row per crash event in SQLite (history.db).

Each row: when, which unit, systemd's Result, the exit code or signal, the
attempt number, the action taken and its outcome; whether it was a drill
(`taucg recovery test --crash`), and the flight recorder's frozen ring of
the minutes before it (zlib-compressed, see model/flight.py). Retention is
bounded by row count and age; MTBF and failure counts per unit come from
the rows that are not drills. A daemon restart finds everything where it
left it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from taucg.actors.sqlite_db import Database

SCHEMA_VERSION = 2
# 1 -> 2: drills are marked, and a crash carries its flight record.
MIGRATIONS: Mapping[int, str] = {
    1: "ALTER TABLE crashes ADD COLUMN drill INTEGER NOT NULL DEFAULT 0;"
       "ALTER TABLE crashes ADD COLUMN flight BLOB"}
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
    outcome TEXT NOT NULL,
    drill INTEGER NOT NULL DEFAULT 0,
    flight BLOB
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
    drill: bool = False  # caused by `taucg recovery test --crash`: left out of the stats
    flight_bytes: int = 0  # the size of its stored flight record (0: none)


@dataclass(frozen=True, slots=True)
class UnitStats:
    unit: str
    failures: int
    first: float
    last: float
    last_result: str
    mtbf_seconds: float | None  # mean time between failures; None with one failure
    drills: int = 0  # drills recorded for the unit, not counted in failures


class CrashHistory(Database):
    SCHEMA = SCHEMA
    SCHEMA_VERSION = SCHEMA_VERSION
    MIGRATIONS = MIGRATIONS
    WHAT = "crash history"

    def __init__(self, path: Path, max_rows: int = 100_000, max_age_days: float = 90) -> None:
        self.max_rows = max_rows
        self.max_age_seconds = max_age_days * 86400
        super().__init__(path)

    def record(self, e: CrashEvent, flight: bytes | None = None) -> int:
        """Stores one event, with its compressed flight record if any."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO crashes (time, unit, result, exit_code, signal, attempt, action,"
                " outcome, delay, drill, flight) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e.time, e.unit, e.result, e.exit_code, e.signal, e.attempt, e.action,
                 e.outcome, e.delay, int(e.drill), flight))
            self._prune(db, e.time)
            return int(cur.lastrowid or 0)

    def flight(self, event_id: int) -> bytes | None:
        """The stored flight record of one event (compressed), or None."""
        rows = self._query("SELECT flight FROM crashes WHERE id = ?", (event_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

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
               " id, drill, COALESCE(LENGTH(flight), 0) FROM crashes WHERE 1=1")
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
        rows = [CrashEvent(t, u, result, code, sig, attempt, action, outcome, delay, row_id,
                           bool(drill), int(size))
                for t, u, result, code, sig, attempt, action, outcome, delay, row_id, drill, size
                in self._query(sql, args)]
        rows.reverse()
        return rows

    def stats(self, unit: str | None = None) -> list[UnitStats]:
        """Failures and MTBF per unit, from the crashes that were not drills
        (a unit with drills only is not listed); each row counts its drills."""
        sql = ("SELECT unit, COUNT(*), MIN(time), MAX(time), "
               "(SELECT result FROM crashes c2 WHERE c2.unit = c.unit AND c2.drill = 0 "
               " ORDER BY time DESC, id DESC LIMIT 1), "
               "(SELECT COUNT(*) FROM crashes c3 WHERE c3.unit = c.unit AND c3.drill != 0) "
               "FROM crashes c WHERE drill = 0")
        args: list[object] = []
        if unit is not None:
            sql += " AND unit = ?"
            args.append(unit)
        sql += " GROUP BY unit ORDER BY unit"
        out = []
        for name, count, first, last, last_result, drills in self._query(sql, args):
            mtbf = (last - first) / (count - 1) if count > 1 else None
            out.append(UnitStats(name, count, first, last, last_result, mtbf, drills))
        return out

    def drills(self, unit: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM crashes WHERE drill != 0", []
        if unit is not None:
            sql += " AND unit = ?"
            args.append(unit)
        return int(self._query(sql, args)[0][0])

    def attempts_since(self, unit: str, since: float) -> int:
        rows = self._query("SELECT COUNT(*) FROM crashes WHERE unit = ? AND time >= ?",
                           (unit, since))
        return int(rows[0][0])
