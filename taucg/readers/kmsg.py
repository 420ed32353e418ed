"""The kernel log (/dev/kmsg), read for one thing: who the OOM killer killed.

memory.events counts OOM kills per cgroup but names no process; the kernel's
one-line summary of each kill does, with the victim's cgroup:

    oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/tau.slice/x.service,task=stress,pid=42,uid=0

That line is printed before the kill is counted, so a reader that sees the
counter rise finds the line already logged. Reading needs CAP_SYSLOG
(dmesg_restrict); without it the log is unavailable and says why.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

KMSG = "/dev/kmsg"
_SUMMARY = re.compile(r"oom-kill:.*task_memcg=(?P<memcg>[^,]*),task=(?P<task>.*),"
                      r"pid=(?P<pid>\d+),uid=(?P<uid>\d+)")
_RECORD_MAX = 8192  # a read returns one record; the kernel caps them below this


@dataclass(frozen=True, slots=True)
class OomKill:
    pid: int
    task: str  # the victim's comm
    cgroup: str  # its memory cgroup, from the cgroup root: /tau.slice/...
    uid: int


def parse_text(text: str) -> OomKill | None:
    """One kernel message's text -> the kill it reports, or None."""
    m = _SUMMARY.search(text)
    if m is None:
        return None
    return OomKill(int(m["pid"]), m["task"], m["memcg"], int(m["uid"]))


def parse_record(record: bytes) -> OomKill | None:
    """One /dev/kmsg record ("PRI,SEQ,USEC,FLAGS;text" and continuation
    lines) -> the kill it reports, or None for any other message."""
    _, sep, rest = record.partition(b";")
    if not sep:
        return None
    return parse_text(rest.split(b"\n", 1)[0].decode("utf-8", "replace"))


class KernelMessages(Protocol):
    """Where the daemon finds the OOM killer's victims."""

    unavailable: str | None

    def oom_kills(self) -> list[OomKill]: ...

    def close(self) -> None: ...


class KernelLog:
    """A non-blocking reader positioned at the log's end when opened, so
    kills from before the daemon started are not reported as new."""

    def __init__(self, path: str = KMSG) -> None:
        self.fd: int | None = None
        self.unavailable: str | None = None
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.lseek(self.fd, 0, os.SEEK_END)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:  # a pipe (tests) reads from where it is
                    raise
        except OSError as exc:
            self.close()
            self.unavailable = f"{path}: {exc.strerror} (reading it needs CAP_SYSLOG)"

    def oom_kills(self) -> list[OomKill]:
        """The kills logged since the last call."""
        out: list[OomKill] = []
        while self.fd is not None:
            try:
                record = os.read(self.fd, _RECORD_MAX)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # the ring overwrote records we had not read: go on
                self.unavailable = f"{KMSG}: {exc.strerror}"
                self.close()
                break
            if not record:
                break
            kill = parse_record(record)
            if kill is not None:
                out.append(kill)
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class JournalKernelLog:
    """The kernel's messages as journald keeps them (_TRANSPORT=kernel).

    Under the hardened unit /dev/kmsg is out of reach (PrivateDevices=,
    ProtectKernelLogs=), but journald has read it for everyone. Positioned
    at the end when opened, like KernelLog. journald copies a line a moment
    after the kernel logs it, so a kill counted in the same instant may be
    named a sweep late or not at all; the alert then says so. ``journal`` is
    systemd.journal, handed in so that one module imports systemd-python."""

    def __init__(self, journal: ModuleType) -> None:
        self.unavailable: str | None = None
        self._reader: Any = None
        try:
            reader = journal.Reader()
            reader.this_boot()
            reader.add_match(_TRANSPORT="kernel")
            reader.seek_tail()
            reader.get_previous()  # the next read is the first message after now
            self._reader = reader
        except (OSError, ValueError) as exc:
            self.unavailable = f"the journal's kernel messages: {exc}"

    def oom_kills(self) -> list[OomKill]:
        out: list[OomKill] = []
        if self._reader is None:
            return out
        try:
            self._reader.process()  # see what journald appended since the last read
            for entry in self._reader:
                message = entry.get("MESSAGE", "")
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                kill = parse_text(str(message))
                if kill is not None:
                    out.append(kill)
        except OSError as exc:
            self.unavailable = f"the journal's kernel messages: {exc.strerror or exc}"
            self.close()
        return out

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
