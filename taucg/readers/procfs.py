"""The one Python view of /proc/PID, off the sampler's hot path: the facts
rules match on, a process's cgroup and owner, and which unit a cgroup
path belongs to.

A process can exit between any two reads. Every function here says so the
same way, by raising ProcessGone; nothing returns None or an empty value
for "it went away". (The C sampler, on the hot path, drops a vanished
process from its sweep instead: ESRCH and ENOENT are its normal case.)
"""

from __future__ import annotations

import errno
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from taucg.config.values import UNIT_SUFFIXES

PROC = Path("/proc")
# What the kernel answers for a PID that exited while we read its files.
_GONE_ERRNOS = (errno.ENOENT, errno.ESRCH)


class ProcessGone(LookupError):
    """The process exited while it was being looked at."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        super().__init__(f"process {pid} is gone")


def _gone(exc: OSError) -> bool:
    return exc.errno in _GONE_ERRNOS


def unit_of_cgroup(path: str | None) -> str | None:
    """The systemd unit a cgroup path belongs to, as systemd itself decides
    (cg_path_get_unit): leading slices are skipped, and the first component
    after them that is a unit name is the unit. Everything below it is that
    unit's own (delegated) subtree: "/system.slice/foo.service/worker.scope"
    belongs to foo.service, and a user's applications under
    "user@1000.service/app.slice/..." belong to user@1000.service."""
    if not path:
        return None
    for part in path.strip("/").split("/"):
        if part.endswith(".slice"):
            continue
        return part if part.endswith(UNIT_SUFFIXES) else None
    return None


def process_names(proc: Path = PROC) -> Iterator[tuple[int, str]]:
    """(PID, comm) of every process, in PID order. One that exits during the
    listing is left out: a listing is a moment's view, not a promise."""
    pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    for pid in pids:
        try:
            comm = (proc / str(pid) / "comm").read_bytes()
        except OSError as exc:
            if _gone(exc):
                continue
            raise
        yield pid, comm.rstrip(b"\n").decode(errors="replace")


def read_cgroup(pid: int, proc: Path = PROC) -> str:
    """The cgroup v2 path of a process ("/system.slice/foo.service"); "" when
    it has none (a hybrid host's process outside the unified hierarchy)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError as exc:
        if _gone(exc):
            raise ProcessGone(pid) from None
        raise
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def owner_uid(pid: int, proc: Path = PROC) -> int:
    try:
        return os.stat(proc / str(pid)).st_uid
    except OSError as exc:
        if _gone(exc):
            raise ProcessGone(pid) from None
        raise


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    """The user's name, or the uid as text for a uid with no passwd entry."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=1024)
def uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What the placement rules match on, read once."""

    pid: int
    ppid: int
    comm: str
    exe: str | None  # None: a kernel thread, or not readable by this user
    cmdline: str
    uid: int
    cgroup: str | None  # "/system.slice/cron.service"; None outside cgroup v2

    @property
    def unit(self) -> str | None:
        return unit_of_cgroup(self.cgroup)

    @property
    def user(self) -> str:
        return user_name(self.uid)

    @property
    def is_kernel_thread(self) -> bool:
        return self.pid == 2 or self.ppid == 2


def facts(pid: int, proc: Path = PROC) -> ProcessFacts:
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_bytes()
        cmdline = (base / "cmdline").read_bytes()
    except OSError as exc:
        if _gone(exc):
            raise ProcessGone(pid) from None
        raise
    rp = stat.rfind(b")")
    if rp < 0:  # an empty read: the process was reaped mid-read
        raise ProcessGone(pid)
    comm = stat[stat.index(b"(") + 1:rp].decode(errors="replace")
    ppid = int(stat[rp + 2:].split()[1])
    args = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    uid = owner_uid(pid, proc)
    cgroup = read_cgroup(pid, proc) or None
    try:
        exe: str | None = os.readlink(base / "exe")
    except OSError:
        exe = None
    return ProcessFacts(pid, ppid, comm, exe, args, uid, cgroup)
