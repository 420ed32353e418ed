"""The sample store: the daemon's metric history persisted in SQLite
(samples.db), so trends and `taucg history` survive a daemon restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from taucg.actors.sqlite_db import Database


class SampleStore(Database):
    """The daemon's metric history (system and per tier), so that trends and
    `taucg history` survive a daemon restart. Rows older than keep_seconds
    are pruned as new ones arrive."""

    SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    time REAL NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_time ON samples (time);
"""
    WHAT = "sample history"

    def __init__(self, path: Path, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        super().__init__(path)

    def add(self, now: float, values: Mapping[str, float]) -> None:
        with self._tx() as db:
            db.executemany("INSERT INTO samples (time, metric, value) VALUES (?, ?, ?)",
                           [(now, k, v) for k, v in values.items()])
            db.execute("DELETE FROM samples WHERE time < ?", (now - self.keep_seconds,))

    def load(self, since: float | None = None) -> dict[str, list[tuple[float, float]]]:
        """metric -> [(wall time, value)], oldest first."""
        out: dict[str, list[tuple[float, float]]] = {}
        rows = self._query("SELECT time, metric, value FROM samples WHERE time >= ? "
                           "ORDER BY time", (since or 0.0,))
        for t, metric, value in rows:
            out.setdefault(metric, []).append((t, value))
        return out
