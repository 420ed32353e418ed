"""The model: meaning from two samples. Pure functions over sampler records;
nothing here touches a file."""

from __future__ import annotations

from dataclasses import dataclass

from taucg.sampler import CpuTimes, SystemSample


def cpu_percent(prev: CpuTimes, cur: CpuTimes) -> float:
    """Busy share of the time that passed between two readings, 0-100.

    A counter that went backwards (CPU hot-unplug resets its row) yields 0
    rather than a negative or absurd value."""
    total = cur.total - prev.total
    if total <= 0:
        return 0.0
    busy = cur.busy - prev.busy
    return max(0.0, min(100.0, 100.0 * busy / total))


@dataclass(frozen=True, slots=True)
class SystemRates:
    cpu_percent: float | None
    per_cpu_percent: dict[int, float]
    context_switches_per_second: float | None
    forks_per_second: float | None


def _rate(a: int | None, b: int | None, seconds: float) -> float | None:
    if a is None or b is None or seconds <= 0:
        return None
    return max(0.0, (b - a) / seconds)


def system_rates(prev: SystemSample, cur: SystemSample) -> SystemRates:
    elapsed = cur.monotonic - prev.monotonic
    per_cpu: dict[int, float] = {}
    before = {c.cpu: c for c in prev.cpus}
    for c in cur.cpus:
        old = before.get(c.cpu)
        if old is not None and c.cpu is not None:
            per_cpu[c.cpu] = cpu_percent(old, c)
    return SystemRates(
        cpu_percent=cpu_percent(prev.cpu, cur.cpu) if prev.cpu and cur.cpu else None,
        per_cpu_percent=per_cpu,
        context_switches_per_second=_rate(prev.context_switches, cur.context_switches, elapsed),
        forks_per_second=_rate(prev.forks, cur.forks, elapsed),
    )
