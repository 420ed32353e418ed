"""The SQLite files taucg keeps (standard library, WAL): opening with a
schema version, and one clear StoreError naming the file and the fix for
a database that cannot be used. WAL lets the CLI read while the daemon
writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StoreError(Exception):
    """The state database cannot be used; names the file and the fix."""


class Database:
    """One SQLite file in WAL mode with a versioned schema."""

    SCHEMA = ""
    SCHEMA_VERSION = 1
    WHAT = "database"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > self.SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer taucg (schema {version}); "
                                 "upgrade taucg or move the file aside")
            self._db.executescript(self.SCHEMA)
            self._db.execute(f"PRAGMA user_version={self.SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the {self.WHAT} {path}: {exc}; check the state "
                             "directory's permissions, or move a damaged file aside") from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
