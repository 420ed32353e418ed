"""A rotating log file that any number of processes may write, and that a
full disk cannot wipe.

Why not RotatingFileHandler: each process rotated on its own, so two
writers renamed the file under each other (a record written after the
other's rotation went into a deleted file), and a rotation that failed
half way (no space for the compressed copy) had already shifted .N to
.N+1 and dropped the oldest.

Here every record is appended under an exclusive flock of ``<log>.lock``,
after checking that the file is still the one this process has open (an
outside logrotate may have moved it). Rotation happens under the same
lock and is built before anything moves: the current file is copied
(compressed) to a temp file first; only when that copy is complete are the
rotated files shifted, the copy renamed to ``.1`` and the current file
truncated in place, which every other writer sees at once because they
share its inode. A rotation that fails leaves every existing file as it
was, and writing goes on into the current file. A record that cannot be
written (ENOSPC) waits in a bounded backlog and is written first when
space returns. Each kind of failure is said once on stderr, not as a
traceback per record. (concurrent-log-handler does the locking part; it is
not in the project's dependencies, and the full-disk and backlog behaviour
is what the audit trail needs most.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import logging
import os
import re
import shutil
import sys
import time
from collections import deque
from pathlib import Path

from taucg.actors.files import TEMP_MARK, open_private, private_dir

BACKLOG_RECORDS = 10_000  # held in memory while the disk is full


def rotated_files(path: Path) -> list[Path]:
    """path.1[.gz], path.2[.gz], ... newest first."""
    found = []
    for p in path.parent.glob(f"{path.name}.*"):
        m = re.fullmatch(re.escape(path.name) + r"\.(\d+)(\.gz)?", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def prune(path: Path, retention_days: float, now: float | None = None) -> list[Path]:
    """Removes rotated files older than the retention (the count limit is
    the handler's backups)."""
    cutoff = (now if now is not None else time.time()) - retention_days * 86400
    removed = []
    for p in rotated_files(path):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            continue
    return removed


class SharedRotatingFileHandler(logging.Handler):
    def __init__(self, path: Path, max_bytes: int, backups: int, compress: bool,
                 retention_days: float) -> None:
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.compress = compress
        self.retention_days = retention_days
        private_dir(path.parent)
        self._lock_fd = open_private(path.with_name(path.name + ".lock"),
                                     os.O_RDWR | os.O_CREAT)
        self._fd: int | None = None
        self._ino: int | None = None
        self._backlog: deque[bytes] = deque(maxlen=BACKLOG_RECORDS)
        self._said: set[str] = set()
        self._open()  # fail now, at setup, on a bad path
        prune(self.path, self.retention_days)

    # ------------------------------------------------------------ files ---

    def _open(self) -> None:
        fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._close_file()
        self._fd, self._ino = fd, os.fstat(fd).st_ino

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _ensure_current(self) -> int:
        """The fd of the file now at ``path`` (reopened if it was moved)."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = None
        if self._fd is None or ino != self._ino:
            self._open()
        assert self._fd is not None
        return self._fd

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}" + (".gz" if self.compress else ""))

    # ------------------------------------------------------------ write ---

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        self._backlog.append(data)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError as exc:
            self._say("lock", f"cannot lock {self.path}.lock: {exc.strerror}")
            return
        try:
            fd = self._ensure_current()
            while self._backlog:
                chunk = self._backlog[0]
                size = os.fstat(fd).st_size
                if self.max_bytes and size and size + len(chunk) > self.max_bytes:
                    self._rotate(fd)
                    size = os.fstat(fd).st_size
                written = os.write(fd, chunk)
                if written < len(chunk):
                    # Half a record is worse than none: take it back, keep it queued.
                    os.ftruncate(fd, size)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                self._backlog.popleft()
            if "write" in self._said:
                self._said.discard("write")
                print(f"taucg: writing {self.path} again; no record was lost",
                      file=sys.stderr, flush=True)
        except OSError as exc:
            self._say("write", f"cannot write {self.path}: {exc.strerror}; keeping up to "
                               f"{BACKLOG_RECORDS} records in memory until it can")
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _rotate(self, fd: int) -> None:
        """Under the lock. Builds the rotated copy first; on any failure every
        existing file stays as it was and the current one keeps growing."""
        tmp = self.path.with_name(f".{self.path.name}.rotating{TEMP_MARK}{os.getpid()}")
        try:
            out = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with open(self.path, "rb") as src, os.fdopen(out, "wb") as raw:
                if self.compress:
                    with gzip.GzipFile(fileobj=raw, mode="wb") as dst:
                        shutil.copyfileobj(src, dst)
                else:
                    shutil.copyfileobj(src, raw)
                raw.flush()
                os.fsync(raw.fileno())
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            self._say("rotate", f"cannot rotate {self.path}: {exc.strerror}; every rotated "
                                "file is kept and the current one grows until it can")
            return
        self._said.discard("rotate")
        if self.backups:
            with contextlib.suppress(FileNotFoundError):
                self.rotated(self.backups).unlink()
        for n in range(self.backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.rotated(n), self.rotated(n + 1))
        if self.backups:
            os.rename(tmp, self.rotated(1))
        else:
            tmp.unlink()
        os.ftruncate(fd, 0)
        prune(self.path, self.retention_days)

    def _say(self, kind: str, message: str) -> None:
        """One line per kind of failure until it clears, not a traceback a record."""
        if kind not in self._said:
            self._said.add(kind)
            print(f"taucg: {message}", file=sys.stderr, flush=True)

    def flush(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    def close(self) -> None:
        self._close_file()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        super().close()

    def handleError(self, record: logging.LogRecord) -> None:
        self._say("format", f"a record for {self.path} could not be formatted")
