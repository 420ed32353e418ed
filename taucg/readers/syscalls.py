"""The syscalls Python 3.11's os module lacks: unshare(2), setns(2), mount(2)
and ioprio_set(2), through the C extension's thin wrappers.

The wrappers return -errno; here a failure becomes an OSError (so EPERM
arrives as PermissionError) whose message names the call and its
arguments, because "Operation not permitted" alone does not say which of
several namespace steps failed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from taucg.readers._sampler import ffi, lib

# Namespaces, for unshare() and setns(). Values come from the C headers at
# build time, not from a Python copy that could drift.
CLONE_NEWNS: Final[int] = int(lib.CLONE_NEWNS)
CLONE_NEWNET: Final[int] = int(lib.CLONE_NEWNET)
CLONE_NEWPID: Final[int] = int(lib.CLONE_NEWPID)
CLONE_NEWIPC: Final[int] = int(lib.CLONE_NEWIPC)
CLONE_NEWUTS: Final[int] = int(lib.CLONE_NEWUTS)

# Mount flags, for mount().
MS_REC: Final[int] = int(lib.MS_REC)
MS_PRIVATE: Final[int] = int(lib.MS_PRIVATE)
MS_NOSUID: Final[int] = int(lib.MS_NOSUID)
MS_NODEV: Final[int] = int(lib.MS_NODEV)
MS_NOEXEC: Final[int] = int(lib.MS_NOEXEC)

# IO scheduling classes (linux/ioprio.h), for ioprio_set().
IOPRIO_CLASS_NONE: Final = 0
IOPRIO_CLASS_RT: Final = 1
IOPRIO_CLASS_BE: Final = 2
IOPRIO_CLASS_IDLE: Final = 3
IOPRIO_LEVELS: Final = 8  # levels 0 (highest) .. 7

_CLONE_NAMES: Final[Mapping[int, str]] = {
    CLONE_NEWNS: "CLONE_NEWNS", CLONE_NEWNET: "CLONE_NEWNET", CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWIPC: "CLONE_NEWIPC", CLONE_NEWUTS: "CLONE_NEWUTS",
}
_MS_NAMES: Final[Mapping[int, str]] = {
    MS_REC: "MS_REC", MS_PRIVATE: "MS_PRIVATE", MS_NOSUID: "MS_NOSUID",
    MS_NODEV: "MS_NODEV", MS_NOEXEC: "MS_NOEXEC",
}
_IOPRIO_CLASS_NAMES: Final[Mapping[int, str]] = {
    IOPRIO_CLASS_NONE: "none", IOPRIO_CLASS_RT: "realtime",
    IOPRIO_CLASS_BE: "best-effort", IOPRIO_CLASS_IDLE: "idle",
}


def flag_names(flags: int, names: Mapping[int, str]) -> str:
    """``CLONE_NEWNET|CLONE_NEWNS`` for a message; bits without a name stay
    visible as hex, so a message never hides what was really passed."""
    parts = [name for bit, name in names.items() if flags & bit]
    unnamed = flags & ~sum(names)
    if unnamed:
        parts.append(hex(unnamed))
    return "|".join(parts) or "0"


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


def _c_str(value: str | None) -> object:
    return ffi.NULL if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Moves this process into new namespaces (CLONE_NEW* bits)."""
    _check(lib.tau_unshare(flags), f"unshare({flag_names(flags, _CLONE_NAMES)})")


def setns(fd: int, nstype: int) -> None:
    """Joins the namespace open at fd; nstype is one CLONE_NEW* bit, or 0
    for whatever kind fd is."""
    _check(lib.tau_setns(fd, nstype), f"setns(fd {fd}, {flag_names(nstype, _CLONE_NAMES)})")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2); None passes NULL (no fstype for a propagation change)."""
    _check(lib.tau_mount(_c_str(source), _c_str(target), _c_str(fstype), flags, _c_str(data)),
           f"mount({source!r} on {target!r}, type {fstype!r}, "
           f"{flag_names(flags, _MS_NAMES)})")


def ioprio_set(pid: int, io_class: int, level: int) -> None:
    """Sets the IO priority of one process (0: the caller)."""
    # Checked here because the kernel cannot see a bad level: it would spill
    # into the class bits and set another priority than the one asked for.
    if io_class not in _IOPRIO_CLASS_NAMES:
        raise ValueError(f"IO priority class {io_class} is not one of "
                         f"{sorted(_IOPRIO_CLASS_NAMES)}")
    if not 0 <= level < IOPRIO_LEVELS:
        raise ValueError(f"IO priority level {level} is outside 0..{IOPRIO_LEVELS - 1}")
    ioprio = (io_class << lib.TAU_IOPRIO_CLASS_SHIFT) | level
    _check(lib.tau_ioprio_set(lib.TAU_IOPRIO_WHO_PROCESS, pid, ioprio),
           f"ioprio_set(process {pid}, class {_IOPRIO_CLASS_NAMES[io_class]}, level {level})")
