"""The files taucg writes: atomically, so that a reader or a crash sees the
old file or the new one and never half of either; their removal; the
temp files a killed writer leaves behind; and a machine-wide lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".taucg-"  # in every temp file's name, so leftovers can be found
# Logs and state hold what the socket keeps to root and its group: 0640
# files and 0750 directories, never readable by every user.
PRIVATE_MODE = 0o640
PRIVATE_DIR_MODE = 0o750


def private_dir(path: Path) -> None:
    """Creates a directory (and its parents) 0750; an existing one is left."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def open_private(path: Path, flags: int) -> int:
    """os.open for taucg's own logs and state: never through a symbolic link
    (a user who could plant one would redirect root's writes), only a
    regular file, created 0640 and tightened to it if it was wider."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{path} is a symbolic link, and taucg does not "
                          "follow links for its own files; remove the link", str(path)
                          ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file", str(path))
        if stat.S_IMODE(st.st_mode) & 0o027:
            os.fchmod(fd, PRIVATE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


class LockBusy(Exception):
    """Another process holds the lock; names it and the lock file."""


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """temp file in the same directory, fsync, rename, fsync the directory.
    The temp file is created 0600 and gets ``mode`` before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(d: Path) -> None:
    """Makes a rename or unlink in ``d`` survive a crash."""
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_file(path: Path) -> None:
    """Removes ``path`` durably, and its directory if that leaves it empty
    (a drop-in directory taucg emptied)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def clean_leftovers(directory: Path) -> list[Path]:
    """Temp files from a writer killed between write and rename, in
    ``directory`` and its drop-in directories."""
    found = (list(directory.glob(f".*{TEMP_MARK}*"))
             + list(directory.glob(f"*.d/.*{TEMP_MARK}*")))
    for p in found:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return found


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """One holder at a time, machine-wide; the holder's PID is in the file.
    Raises LockBusy at once rather than waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockBusy(f"another {what} is running (pid {holder} holds {path}); "
                           "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
