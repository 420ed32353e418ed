"""The SQLite files taucg keeps (standard library, WAL): opening with a
schema version, and one clear StoreError naming the file and the fix for
a database that cannot be used. WAL lets the CLI read while the daemon
writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import MappingProxyType
from typing import Any

from taucg.actors.files import open_private, private_dir


class StoreError(Exception):
    """The state database cannot be used; names the file and the fix.
    ``damaged``: SQLite says the file itself is broken (not a permission or
    a newer schema), so moving it aside is the cure."""

    def __init__(self, message: str, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


class Database:
    """One SQLite file in WAL mode with a versioned schema."""

    SCHEMA = ""
    SCHEMA_VERSION = 1
    WHAT = "database"
    # Version N -> the SQL that brings a file of version N to N + 1; run in
    # order, in one transaction, before SCHEMA (whose CREATE ... IF NOT
    # EXISTS makes a fresh file at the current version directly).
    MIGRATIONS: Mapping[int, str] = MappingProxyType({})

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dir(path.parent)
            # Created (or checked) by us first: 0640 and no symbolic link. SQLite
            # gives the -wal and -shm files the database's own mode.
            os.close(open_private(path, os.O_RDWR | os.O_CREAT))
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > self.SCHEMA_VERSION:
                raise StoreError(f"{path} was written by a newer taucg (schema {version}); "
                                 "upgrade taucg or move the file aside")
            if 0 < version < self.SCHEMA_VERSION:
                self._migrate(version)
            self._db.executescript(self.SCHEMA)
            self._db.execute(f"PRAGMA user_version={self.SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the {self.WHAT} {path}: {exc}; check the state "
                             "directory's permissions, or move a damaged file aside",
                             damaged=isinstance(exc, sqlite3.DatabaseError)) from exc

    def _migrate(self, version: int) -> None:
        """Brings an older file up to SCHEMA_VERSION; all steps or none."""
        steps = [self.MIGRATIONS[v] for v in range(version, self.SCHEMA_VERSION)]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql in steps:
                for statement in filter(str.strip, sql.split(";")):
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={self.SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()

    def _damaged(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"the {self.WHAT} {self.path} cannot be read ({exc}); it is "
                          "damaged: move it aside (the daemon does so itself) and a new "
                          "one is started", damaged=isinstance(exc, sqlite3.DatabaseError))

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """All rows of a query; any SQLite error (a damaged page) is a
        StoreError naming the file."""
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise self._damaged(exc) from exc
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def move_aside(self) -> Path:
        """Closes the file and renames it (with its WAL and SHM) to
        <name>.damaged-<time>, so the next open starts afresh and nothing is
        lost that an admin might still recover."""
        with suppress(sqlite3.Error):
            self._db.close()
        return move_aside(self.path)


def move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            os.rename(f"{path}{suffix}", f"{dest}{suffix}")
    return dest
