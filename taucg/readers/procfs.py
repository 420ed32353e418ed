"""Process -> tier classification by the config's [[rules]], explainably.

Precedence: rules are tried in the order they appear in the config file,
and the first rule whose every given key matches wins. Within a rule the
keys are ANDed. A process no rule matches stays where it is.

Keys: comm (exact, or a glob with * ? [ ]), exe (glob on the executable's
path), cmdline (regular expression searched in the space-joined command
line), user (a name or a numeric uid), unit (the unit the process runs in,
e.g. "cron.service" or "session-3.scope"; globs allowed).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from taucg.config.values import UNIT_SUFFIXES


class ProcessGone(Exception):
    """The process exited while it was being looked at."""


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    ppid: int
    comm: str
    exe: str | None  # None: a kernel thread, or not readable by this user
    cmdline: str
    uid: int
    cgroup: str | None  # "/system.slice/cron.service"

    @property
    def unit(self) -> str | None:
        """The innermost unit in the cgroup path (services may nest cgroups)."""
        if not self.cgroup:
            return None
        for part in reversed(self.cgroup.strip("/").split("/")):
            if part.endswith(UNIT_SUFFIXES):
                return part
        return None

    @property
    def user(self) -> str:
        return _user_name(self.uid)

    @property
    def is_kernel_thread(self) -> bool:
        return self.pid == 2 or self.ppid == 2


@lru_cache(maxsize=1024)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=1024)
def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def facts(pid: int, proc: Path = Path("/proc")) -> ProcessFacts:
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_bytes()
        rp = stat.rindex(b")")
        comm = stat[stat.index(b"(") + 1:rp].decode(errors="replace")
        ppid = int(stat[rp + 2:].split()[1])
        cmdline = (base / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(
            errors="replace")
        uid = os.stat(base).st_uid
        cgroup = None
        for line in (base / "cgroup").read_text().splitlines():
            if line.startswith("0::"):
                cgroup = line[3:]
    except (FileNotFoundError, ProcessLookupError, ValueError) as exc:
        raise ProcessGone(f"process {pid} is gone") from exc
    try:
        exe: str | None = os.readlink(base / "exe")
    except OSError:
        exe = None
    return ProcessFacts(pid, ppid, comm, exe, cmdline, uid, cgroup)
