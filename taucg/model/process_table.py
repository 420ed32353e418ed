"""Every process's latest record, kept from changed-only sweeps.

The daemon's sweep (``Sampler.process_changes``) reports only the processes
whose /proc/PID/stat line changed and the ones that exited; this table
applies that to pid -> record, so work above it follows what changed. Each
apply leaves ``last_delta``: the records that are new or changed, and the
last records of the processes that left (a reused PID's old process
included), for consumers that keep per-process state (the leak feed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, ValuesView
from dataclasses import dataclass, field

from taucg.readers.samples import ProcessChanges, ProcessSample

ZOMBIE = b"Z"


@dataclass(frozen=True, slots=True)
class ProcessDelta:
    changed: list[ProcessSample] = field(default_factory=list)  # new or changed, as now
    gone: list[ProcessSample] = field(default_factory=list)  # exited, as last seen


class ProcessTable:
    """pid -> the latest ProcessSample, and the zombies among them."""

    def __init__(self) -> None:
        self._by_pid: dict[int, ProcessSample] = {}
        self._zombies: dict[int, ProcessSample] = {}
        self.last_delta = ProcessDelta()

    def __len__(self) -> int:
        return len(self._by_pid)

    def __iter__(self) -> Iterator[ProcessSample]:
        return iter(self._by_pid.values())

    def records(self) -> ValuesView[ProcessSample]:
        return self._by_pid.values()

    def get(self, pid: int) -> ProcessSample | None:
        return self._by_pid.get(pid)

    def zombies(self) -> list[ProcessSample]:
        return list(self._zombies.values())

    def apply(self, changes: ProcessChanges) -> ProcessDelta:
        """One changed-only sweep's report; O(what changed)."""
        gone: list[ProcessSample] = []
        for pid, start in changes.gone:
            old = self._by_pid.get(pid)
            # The start time tells an exit of the recorded process from an
            # exit of an earlier holder of the PID reported late.
            if old is not None and old.start_seconds == start:
                gone.append(self._drop(pid))
        for r in changes.changed:
            old = self._by_pid.get(r.pid)
            if old is not None and old.start_seconds != r.start_seconds:
                gone.append(old)  # the PID was reused
            self._put(r)
        self.last_delta = ProcessDelta(list(changes.changed), gone)
        return self.last_delta

    def replace_all(self, records: Iterable[ProcessSample]) -> ProcessDelta:
        """A full sweep's records, diffed against the table: O(all), for
        callers that still sweep everything."""
        changed: list[ProcessSample] = []
        gone: list[ProcessSample] = []
        seen: set[int] = set()
        for r in records:
            seen.add(r.pid)
            old = self._by_pid.get(r.pid)
            if old == r:
                continue
            if old is not None and old.start_seconds != r.start_seconds:
                gone.append(old)
            self._put(r)
            changed.append(r)
        for pid in [p for p in self._by_pid if p not in seen]:
            gone.append(self._drop(pid))
        self.last_delta = ProcessDelta(changed, gone)
        return self.last_delta

    def _put(self, r: ProcessSample) -> None:
        self._by_pid[r.pid] = r
        if r.state_raw == ZOMBIE:
            self._zombies[r.pid] = r
        else:
            self._zombies.pop(r.pid, None)

    def _drop(self, pid: int) -> ProcessSample:
        self._zombies.pop(pid, None)
        return self._by_pid.pop(pid)
