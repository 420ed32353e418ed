"""The crash flight recorder's data, without I/O: a fixed-size ring of
samples per watched unit, the controller's recent actions, and the frozen
record of the minutes before a crash, encoded compactly for the crash
history.

One sample is FIELDS packed as little-endian doubles (POINT.size = 152
bytes), NaN where a value is unknown (a controller off, the cgroup gone).
A unit's ring is one preallocated bytearray of ``capacity`` samples, so
its memory is capacity x 152 bytes whatever happens: with the daemon's
fastest tick (min_interval_seconds) and flight_recorder_minutes it is
``ring_capacity`` samples; 10 minutes at 1 s is 601 samples, 89 KiB per
unit. The controller's actions are one bounded deque for all units
(ACTIONS_KEPT).

The frozen record is columnar JSON (one list per field, rounded), zlib
level 9: a few hundred bytes to a few KiB for a typical crash.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taucg.readers.samples import CgroupSample, Pressure, SystemSample

FORMAT_VERSION = 1
# Each sample, in order. Cumulative counters (cpu_seconds, the events) are
# kept as the kernel gives them; a reader takes differences.
FIELDS: tuple[str, ...] = (
    "time",  # wall clock, seconds
    "cpu_seconds",  # the unit's cpu.stat usage_usec, in seconds
    "memory_bytes",  # memory.current
    "memory_max_bytes",  # memory.max (NaN: no limit)
    "events_high", "events_max", "events_oom", "events_oom_kill",  # the unit's memory.events
    "tasks",  # pids.current
    # avg10 of the unit's pressure files ("some", and memory's "full"), percent
    "cpu_pressure_percent", "memory_pressure_percent", "memory_pressure_full_percent",
    "io_pressure_percent",
    # memory.events of the unit's parent slice: hierarchical, so an OOM kill
    # that ends the unit (and removes its cgroup before anyone reads it) is
    # still counted here.
    "slice_oom_kill",
    "system_available_bytes",
    "system_cpu_pressure_percent", "system_memory_pressure_percent",
    "system_memory_pressure_full_percent", "system_io_pressure_percent",
)
POINT = struct.Struct("<" + "d" * len(FIELDS))
ACTIONS_KEPT = 256
_NAN = float("nan")


def ring_capacity(minutes: float, fastest_tick_seconds: float) -> int:
    """Samples a ring must hold to span ``minutes`` at the fastest tick."""
    return max(2, math.ceil(minutes * 60 / max(fastest_tick_seconds, 0.1)) + 1)


def _avg10(p: Pressure | None, full: bool = False) -> float:
    if p is None:
        return _NAN
    line = p.full if full else p.some
    return _NAN if line is None else line.avg10


def _num(v: int | str | None) -> float:
    return float(v) if isinstance(v, int) else _NAN


def point(time: float, unit: CgroupSample | None, parent: CgroupSample | None,
          system: SystemSample | None) -> tuple[float, ...]:
    """One sample of FIELDS from what was read (any part may be missing)."""
    ev = unit.memory_events if unit is not None else None
    pev = parent.memory_events if parent is not None else None
    mem = system.memory if system is not None else None
    return (
        time,
        unit.cpu.usage_seconds if unit is not None and unit.cpu is not None else _NAN,
        _num(unit.memory_current) if unit is not None else _NAN,
        _num(unit.memory_max) if unit is not None else _NAN,
        _num(ev.high) if ev else _NAN, _num(ev.max) if ev else _NAN,
        _num(ev.oom) if ev else _NAN, _num(ev.oom_kill) if ev else _NAN,
        _num(unit.pids_current) if unit is not None else _NAN,
        _avg10(unit.pressure_cpu) if unit is not None else _NAN,
        _avg10(unit.pressure_memory) if unit is not None else _NAN,
        _avg10(unit.pressure_memory, full=True) if unit is not None else _NAN,
        _avg10(unit.pressure_io) if unit is not None else _NAN,
        _num(pev.oom_kill) if pev else _NAN,
        _num(mem.available) if mem is not None else _NAN,
        _avg10(system.pressure_cpu) if system is not None else _NAN,
        _avg10(system.pressure_memory) if system is not None else _NAN,
        _avg10(system.pressure_memory, full=True) if system is not None else _NAN,
        _avg10(system.pressure_io) if system is not None else _NAN,
    )


class Ring:
    """A fixed number of packed samples, the oldest overwritten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buf = bytearray(capacity * POINT.size)
        self._next = 0  # where the next sample goes
        self._count = 0

    @property
    def nbytes(self) -> int:
        return len(self._buf)

    def __len__(self) -> int:
        return self._count

    def push(self, values: Sequence[float]) -> None:
        POINT.pack_into(self._buf, self._next * POINT.size, *values)
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def points(self, since: float = -math.inf) -> list[tuple[float, ...]]:
        """Oldest first, those at or after ``since``."""
        start = (self._next - self._count) % self.capacity
        out = []
        for i in range(self._count):
            values = POINT.unpack_from(self._buf, ((start + i) % self.capacity) * POINT.size)
            if values[0] >= since:
                out.append(values)
        return out

    def resized(self, capacity: int) -> Ring:
        """A ring of another capacity holding the newest samples of this one."""
        ring = Ring(capacity)
        for values in self.points()[-capacity:]:
            ring.push(values)
        return ring


@dataclass(slots=True)
class Recorder:
    """The rings of the watched units and the controller's actions."""

    minutes: float
    capacity: int
    rings: dict[str, Ring] = field(default_factory=dict)
    actions: deque[Mapping[str, Any]] = field(default_factory=lambda: deque(maxlen=ACTIONS_KEPT))

    def watch(self, units: Iterable[str], minutes: float, capacity: int) -> None:
        """Keeps the rings of units still watched (resized if need be) and
        starts empty ones for new units."""
        self.minutes = minutes
        wanted = list(units)
        kept = {}
        for unit in wanted:
            ring = self.rings.get(unit)
            if ring is None:
                kept[unit] = Ring(capacity)
            else:
                kept[unit] = ring if ring.capacity == capacity else ring.resized(capacity)
        self.rings = kept
        self.capacity = capacity

    @property
    def nbytes(self) -> int:
        """The rings' memory: the bound, reached once every ring is full."""
        return sum(r.nbytes for r in self.rings.values())

    def add(self, unit: str, values: Sequence[float]) -> None:
        ring = self.rings.get(unit)
        if ring is not None:
            ring.push(values)

    def action(self, action: Mapping[str, Any]) -> None:
        self.actions.append(action)

    def freeze(self, unit: str, now: float, final: Sequence[float] | None = None
               ) -> FlightRecord | None:
        """The last ``minutes`` of the unit's ring (plus ``final``, a sample
        taken at the failure) and the controller's actions in that span."""
        ring = self.rings.get(unit)
        if ring is None:
            return None
        since = now - self.minutes * 60
        points = ring.points(since)
        if final is not None:
            points.append(tuple(final))
        acts = tuple(dict(a) for a in self.actions if float(a.get("time", 0)) >= since)
        return FlightRecord(unit, now, self.minutes, tuple(points), acts)


@dataclass(frozen=True, slots=True)
class FlightRecord:
    """What the recorder held for one unit when it failed."""

    unit: str
    frozen_at: float
    minutes: float
    points: tuple[tuple[float, ...], ...]  # FIELDS each, oldest first
    actions: tuple[Mapping[str, Any], ...] = ()

    def column(self, name: str) -> list[float | None]:
        i = FIELDS.index(name)
        return [None if math.isnan(p[i]) else p[i] for p in self.points]

    def encode(self) -> bytes:
        """Columnar JSON, zlib-compressed; NaN is null."""
        cols = {name: [_round(v) for v in self.column(name)] for name in FIELDS}
        doc = {"v": FORMAT_VERSION, "unit": self.unit, "frozen_at": self.frozen_at,
               "minutes": self.minutes, "columns": cols,
               "actions": [dict(a) for a in self.actions]}
        text = json.dumps(doc, separators=(",", ":"), default=str, allow_nan=False)
        return zlib.compress(text.encode(), 9)

    @classmethod
    def decode(cls, blob: bytes) -> FlightRecord:
        """The record from encode(); ValueError for what is not one."""
        try:
            doc = json.loads(zlib.decompress(blob))
            cols = doc["columns"]
            n = len(cols["time"])
            points = tuple(tuple(_NAN if cols.get(name, [None] * n)[i] is None
                                 else float(cols[name][i]) for name in FIELDS)
                           for i in range(n))
            return cls(str(doc["unit"]), float(doc["frozen_at"]), float(doc["minutes"]),
                       points, tuple(doc.get("actions", ())))
        except (zlib.error, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a flight record: {exc}") from None

    def summary(self) -> dict[str, Any]:
        """What a reader wants first: how memory moved, and the OOM kills
        and limit hits the unit (or its slice, for the kill that ended it)
        counted over the span."""
        mem = [v for v in self.column("memory_bytes") if v is not None]
        return {
            "samples": len(self.points),
            "first_at": self.points[0][0] if self.points else None,
            "memory_first_bytes": mem[0] if mem else None,
            "memory_last_bytes": mem[-1] if mem else None,
            "memory_peak_bytes": max(mem) if mem else None,
            "memory_growth_bytes": mem[-1] - mem[0] if len(mem) > 1 else None,
            "oom_kills": _spread(self.column("events_oom_kill")),
            "slice_oom_kills": _spread(self.column("slice_oom_kill")),
            "memory_max_events": _spread(self.column("events_max")),
            "governor_actions": len(self.actions),
        }


def _spread(values: list[float | None]) -> int | None:
    """How much a cumulative counter rose over the span; a unit's counters
    restart with its cgroup, so the last value counts when it is lower."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    rise = known[-1] - known[0]
    return int(rise if rise >= 0 else known[-1])


def _round(v: float | None) -> float | int | None:
    if v is None:
        return None
    if v == int(v) and abs(v) < 2**53:
        return int(v)
    return round(v, 3)
