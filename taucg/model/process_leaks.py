"""Feeds the leak detector from what changed, not from every process.

A full feed adds each process's RSS to its series every tick (at most one
point per ``spacing``). Most processes are idle: their series are flat,
and a flat series can never be a suspect. Such a subject is *dormant*: no
points are added while its record does not change. When it changes, the
points a full feed would have added meanwhile are replayed from the tick
times kept here (the value was the same all along, or the sweep would have
reported a change), so its series is what a full feed would have built.
Per tick the work is the changed and exited processes plus the *active*
subjects (a series with some movement in it), never the idle rest.
"""

from __future__ import annotations

from collections import deque

from taucg.model.monitor import LeakDetector, LeakSuspect
from taucg.model.process_table import ProcessDelta, ProcessTable
from taucg.readers.samples import ProcessSample

ProcessKey = tuple[int, float]  # (pid, start_seconds)

# Tick times kept for replays: hours at 1 Hz, longer than any series spans
# (length x spacing; 120 x 27 s by default).
TICKS_KEPT = 16384


def subject_of(p: ProcessSample) -> str:
    # The start time keeps a reused PID from joining the old series.
    return f"process {p.pid} ({p.comm}, started {p.start_seconds:.2f}s after boot)"


class ProcessLeakFeed:
    def __init__(self, detector: LeakDetector) -> None:
        self.detector = detector
        self._ticks: deque[float] = deque(maxlen=TICKS_KEPT)
        self._subjects: dict[ProcessKey, str] = {}
        self._active: dict[str, int] = {}  # subject -> pid
        self._suspects: list[LeakSuspect] = []

    @property
    def active(self) -> int:
        return len(self._active)

    def update(self, now: float, delta: ProcessDelta, table: ProcessTable
               ) -> list[LeakSuspect]:
        """The leak suspects after this tick's delta."""
        d = self.detector
        self._ticks.append(now)
        for p in delta.gone:
            subject = self._subjects.pop((p.pid, p.start_seconds), None)
            if subject is not None:
                d.drop(subject)
                self._active.pop(subject, None)
        touched: set[str] = set()
        for p in delta.changed:
            key = (p.pid, p.start_seconds)
            subject = self._subjects.get(key)
            if subject is None:
                subject = self._subjects[key] = subject_of(p)
            elif subject not in self._active:
                self._replay(subject, now)
            touched.add(subject)
            self._add(subject, now, p.rss, p.pid)
        for subject, pid in list(self._active.items()):
            if subject not in touched:
                r = table.get(pid)
                if r is not None:
                    self._add(subject, now, r.rss, pid)
        return d.suspects(list(self._active))

    def process_of(self, subject: str, table: ProcessTable) -> ProcessSample | None:
        """A suspect's process now (suspects are always active subjects)."""
        pid = self._active.get(subject)
        return table.get(pid) if pid is not None else None

    def _add(self, subject: str, now: float, rss: int, pid: int) -> None:
        self.detector.add(subject, now, rss)
        if self.detector.flat_at(subject, rss):
            self._active.pop(subject, None)
        else:
            self._active[subject] = pid

    def _replay(self, subject: str, now: float) -> None:
        """The points a full feed would have added since the dormant
        subject's last one, at the value it kept (its last point's)."""
        d = self.detector
        point = d.last_point(subject)
        if point is None:
            return
        last, value = point[0], int(point[1])
        spacing = d.spacing
        later = []
        for t in reversed(self._ticks):
            if t <= last:
                break
            later.append(t)
        for t in reversed(later):
            if t >= now:
                continue
            if t - last >= spacing:
                d.add(subject, t, value)
                last = t
