"""The flight recorder's ring and record (model/flight.py): bounded,
oldest overwritten first, frozen to the last N minutes, and stored
compressed; the size of a typical crash's record is printed."""

from __future__ import annotations

import math

import pytest

from taucg.model.flight import (
    FIELDS,
    POINT,
    FlightRecord,
    Recorder,
    Ring,
    point,
    ring_capacity,
)
from taucg.readers.samples import (
    CgroupCpu,
    CgroupMemoryEvents,
    CgroupSample,
    MemInfo,
    Pressure,
    PressureLine,
    SystemSample,
)

MiB = 1 << 20


def psi(avg10: float) -> Pressure:
    return Pressure(PressureLine(avg10, 0.0, 0.0, 1.0), PressureLine(avg10 / 2, 0.0, 0.0, 0.5))


def cgroup(t: float, memory: int, oom_kill: int = 0, cpu: float = 0.0,
           limit: int | str = 64 * MiB) -> CgroupSample:
    return CgroupSample("/x", t, CgroupCpu(cpu, cpu, 0.0, 0, 0, 0.0), memory, limit, "max",  # type: ignore[arg-type]
                        None, CgroupMemoryEvents(0, 0, 3, 1 if oom_kill else 0, oom_kill), 4,
                        "max", None, psi(1.5), psi(12.0), psi(0.0), True, False)


def system(available: int) -> SystemSample:
    mem = MemInfo(2048 * MiB, 0, available, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return SystemSample(0.0, None, (), None, None, None, None, None, mem, None, psi(2.0),
                        psi(3.0), psi(0.5))


def test_the_ring_keeps_its_capacity_and_the_newest_samples() -> None:
    ring = Ring(5)
    assert ring.nbytes == 5 * POINT.size
    for i in range(12):
        ring.push([float(i)] + [0.0] * (len(FIELDS) - 1))
    assert len(ring) == 5 and ring.nbytes == 5 * POINT.size
    assert [p[0] for p in ring.points()] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert [p[0] for p in ring.points(since=9.5)] == [10.0, 11.0]
    assert [p[0] for p in ring.resized(3).points()] == [9.0, 10.0, 11.0]


def test_capacity_spans_the_minutes_at_the_fastest_tick() -> None:
    assert ring_capacity(10, 1) == 601
    assert ring_capacity(10, 30) == 21
    assert ring_capacity(0.01, 30) == 2


def test_point_marks_what_is_unknown_as_nan() -> None:
    p = dict(zip(FIELDS, point(5.0, None, None, None), strict=True))
    assert p["time"] == 5.0
    assert all(math.isnan(v) for k, v in p.items() if k != "time")
    q = dict(zip(FIELDS, point(5.0, cgroup(5.0, 10 * MiB, 1), None, system(MiB)), strict=True))
    assert q["memory_bytes"] == 10 * MiB and q["events_oom_kill"] == 1
    assert q["memory_pressure_percent"] == 12.0 and q["memory_pressure_full_percent"] == 6.0
    assert q["system_available_bytes"] == MiB and math.isnan(q["slice_oom_kill"])
    unlimited = dict(zip(FIELDS, point(0, cgroup(0, 1, limit="max"), None, None), strict=True))
    assert math.isnan(unlimited["memory_max_bytes"])


def crash(rec: Recorder, unit: str, seconds: int, step: float, grow: int) -> None:
    for i in range(seconds):
        t = 1000.0 + i * step
        rec.add(unit, point(t, cgroup(t, 8 * MiB + i * grow, cpu=i * 0.3),
                            cgroup(t, 0, 0), system(1500 * MiB - i * grow)))


def test_a_frozen_record_keeps_the_window_and_round_trips() -> None:
    rec = Recorder(0, 2)
    rec.watch(["a.service", "b.service"], 2.0, ring_capacity(2.0, 1.0))
    crash(rec, "a.service", 300, 1.0, MiB // 4)  # 5 minutes at 1 s: only 2 are kept
    rec.action({"time": 1290.0, "kind": "tighten", "tier": "low", "key": "cpu_weight"})
    rec.action({"time": 1100.0, "kind": "old", "tier": "low", "key": "cpu_weight"})
    final = point(1300.0, None, cgroup(1300.0, 0, oom_kill=1), system(MiB))
    frozen = rec.freeze("a.service", 1300.0, final)
    assert frozen is not None
    assert frozen.points[0][0] >= 1300.0 - 120 and len(frozen.points) == 121
    assert [a["kind"] for a in frozen.actions] == ["tighten"]
    back = FlightRecord.decode(frozen.encode())
    assert back.unit == "a.service" and len(back.points) == len(frozen.points)
    assert back.column("memory_bytes")[:-1] == frozen.column("memory_bytes")[:-1]
    assert back.column("memory_bytes")[-1] is None  # gone at the failure: unknown
    s = back.summary()
    assert s["memory_growth_bytes"] is not None and s["memory_growth_bytes"] > 20 * MiB
    assert s["slice_oom_kills"] == 1 and s["oom_kills"] == 0
    assert rec.freeze("nobody.service", 1300.0) is None
    assert rec.nbytes == 2 * ring_capacity(2.0, 1.0) * POINT.size


def test_watching_keeps_rings_of_units_still_watched() -> None:
    rec = Recorder(0, 2)
    rec.watch(["a.service"], 1.0, 61)
    crash(rec, "a.service", 10, 1.0, MiB)
    rec.watch(["a.service", "c.service"], 1.0, 31)
    assert len(rec.rings["a.service"]) == 10 and rec.rings["a.service"].capacity == 31
    assert len(rec.rings["c.service"]) == 0
    rec.watch([], 1.0, 31)
    assert rec.nbytes == 0


def test_the_stored_size_of_a_typical_crash() -> None:
    """Printed, not asserted on a threshold: 10 minutes at the 30 s default
    tick, at 1 s (the fastest), and a 1 s idle unit."""
    sizes = {}
    for label, step, n, grow in (("10 min @30s, growing", 30.0, 21, MiB),
                                 ("10 min @1s, growing", 1.0, 601, MiB // 8),
                                 ("10 min @1s, idle", 1.0, 601, 0)):
        rec = Recorder(0, 2)
        rec.watch(["a.service"], 10.0, ring_capacity(10.0, step))
        crash(rec, "a.service", n, step, grow)
        frozen = rec.freeze("a.service", 1000.0 + n * step)
        assert frozen is not None
        blob = frozen.encode()
        raw = len(frozen.points) * POINT.size
        sizes[label] = (len(frozen.points), raw, len(blob))
        back = FlightRecord.decode(blob).points  # rounded to 1/1000 in the stored form
        assert len(back) == len(frozen.points)
        assert all(b == pytest.approx(a, abs=1e-3, nan_ok=True)
                   for a, b in zip(frozen.points, back, strict=True))
    for label, (n, raw, stored) in sizes.items():
        print(f"flight record {label}: {n} samples, ring {raw} B, stored {stored} B "
              f"(zlib JSON), ratio {stored / raw:.2f}")
