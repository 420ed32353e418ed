"""Zombie cleanup: SIGCHLD to the parents in the tiers that left zombies,
once per grace period, and a report of the parents that still do not
reap (their unit is a candidate for a restart). Never signals PID 1, nor
any parent outside its scope.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from taucg.model.tiers import tier_of
from taucg.readers.procfs import ProcessGone, read_cgroup, unit_of_cgroup
from taucg.readers.samples import ProcessSample

# -------------------------------------------------------------- zombies ---


@dataclass(frozen=True, slots=True)
class Zombie:
    pid: int
    ppid: int
    comm: str


def find_zombies(records: Iterable[ProcessSample]) -> list[Zombie]:
    return [Zombie(r.pid, r.ppid, r.comm) for r in records if r.state_raw == b"Z"]


@dataclass(frozen=True, slots=True)
class StubbornParent:
    pid: int
    zombies: int
    signaled_for: float  # seconds since the first SIGCHLD
    unit: str | None


@dataclass(slots=True)
class ZombieReaper:
    """Asks parents to reap by sending them SIGCHLD, once per grace period,
    and reports the ones that still have not after the grace period (their
    unit is a candidate for a restart through recovery).

    Never signals PID 1, nor any parent outside ``in_scope``."""

    grace_seconds: float = 30.0
    in_scope: Callable[[int], bool] = lambda pid: False
    _first_signal: dict[int, float] = field(default_factory=dict)
    _last_signal: dict[int, float] = field(default_factory=dict)

    def sweep(self, records: Iterable[ProcessSample], now: float | None = None
              ) -> tuple[list[int], list[StubbornParent]]:
        now = time.monotonic() if now is None else now
        by_parent: dict[int, int] = {}
        for z in find_zombies(records):
            by_parent[z.ppid] = by_parent.get(z.ppid, 0) + 1
        signaled, stubborn = [], []
        for ppid, count in sorted(by_parent.items()):
            if ppid <= 1 or not self.in_scope(ppid):
                continue
            first = self._first_signal.setdefault(ppid, now)
            if now - self._last_signal.get(ppid, -1e18) >= self.grace_seconds or first == now:
                try:
                    os.kill(ppid, signal.SIGCHLD)
                except ProcessLookupError:
                    continue
                self._last_signal[ppid] = now
                signaled.append(ppid)
            if now - first >= self.grace_seconds:
                stubborn.append(StubbornParent(ppid, count, now - first,
                                               _unit_of(ppid)))
        for gone in set(self._first_signal) - set(by_parent):
            self._first_signal.pop(gone, None)
            self._last_signal.pop(gone, None)
        return signaled, stubborn


def _unit_of(pid: int) -> str | None:
    try:
        return unit_of_cgroup(read_cgroup(pid))
    except ProcessGone:
        return None


def in_tiers(pid: int) -> bool:
    """The default scope for zombie cleanup: processes inside taucg's tiers."""
    try:
        return tier_of(read_cgroup(pid)) is not None
    except ProcessGone:
        return False
