"""The Resource Monitor: meaning from samples.

Pure logic over sampler records: rates from two samples, per-tier totals,
thresholds that raise and clear alerts with hysteresis, a bounded history
with trends, and memory-leak suspicion. Nothing here touches a file; the
readers (sampler.py, sysinfo.py) feed it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from taucg.model.process_table import ProcessTable
from taucg.readers.kmsg import OomKill
from taucg.readers.samples import (
    CgroupSample,
    CpuTimes,
    DiskStats,
    NetDevice,
    ProcessSample,
    SystemSample,
)

if TYPE_CHECKING:
    from taucg.config.schema import Forecast as ForecastConfig
    from taucg.model.forecast import Forecast, Forecaster

# ------------------------------------------------------------------ rates ---


def cpu_percent(prev: CpuTimes, cur: CpuTimes) -> float:
    """Busy share of the time that passed between two readings, 0-100.

    A counter that went backwards (CPU hot-unplug resets its row) yields 0
    rather than a negative or absurd value."""
    total = cur.total - prev.total
    if total <= 0:
        return 0.0
    busy = cur.busy - prev.busy
    return max(0.0, min(100.0, 100.0 * busy / total))


def _rate(a: float | None, b: float | None, seconds: float) -> float | None:
    if a is None or b is None or seconds <= 0:
        return None
    return max(0.0, (b - a) / seconds)


@dataclass(frozen=True, slots=True)
class SystemRates:
    cpu_percent: float | None
    per_cpu_percent: dict[int, float]
    context_switches_per_second: float | None
    forks_per_second: float | None


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


ProcessKey = tuple[int, float]  # (pid, start_seconds): PIDs are reused, this pair is not


def process_key(p: ProcessSample) -> ProcessKey:
    return (p.pid, p.start_seconds)


def process_cpu_percent(prev: Iterable[ProcessSample], cur: Iterable[ProcessSample],
                        elapsed: float) -> dict[ProcessKey, float]:
    """CPU% per process as top(1) shows it: 100 is one full CPU."""
    if elapsed <= 0:
        return {}
    before = {process_key(p): p.cpu_seconds for p in prev}
    out: dict[ProcessKey, float] = {}
    for p in cur:
        key = process_key(p)
        old = before.get(key)
        if old is not None:
            out[key] = max(0.0, 100.0 * (p.cpu_seconds - old) / elapsed)
    return out


def cgroup_cpu_percent(prev: CgroupSample, cur: CgroupSample) -> float | None:
    """CPU% of a cgroup (100 = one full CPU) from cpu.stat usage."""
    elapsed = cur.monotonic - prev.monotonic
    if prev.cpu is None or cur.cpu is None or elapsed <= 0:
        return None
    return max(0.0, 100.0 * (cur.cpu.usage_seconds - prev.cpu.usage_seconds) / elapsed)


@dataclass(frozen=True, slots=True)
class DiskRates:
    name: str
    read_bytes_per_second: float
    write_bytes_per_second: float
    busy_percent: float


Named = TypeVar("Named", DiskStats, NetDevice)


def _by_name(prev: Sequence[Named], cur: Sequence[Named], elapsed: float
             ) -> Iterator[tuple[Named, Named]]:
    """(old, new) for every device present in both samples."""
    if elapsed <= 0:
        return
    before = {d.name: d for d in prev}
    for d in cur:
        old = before.get(d.name)
        if old is not None:
            yield old, d


def disk_rates(prev: Sequence[DiskStats], cur: Sequence[DiskStats], elapsed: float
               ) -> list[DiskRates]:
    out = []
    for old, d in _by_name(prev, cur, elapsed):
        out.append(DiskRates(
            d.name,
            max(0.0, (d.read_bytes - old.read_bytes) / elapsed),
            max(0.0, (d.write_bytes - old.write_bytes) / elapsed),
            min(100.0, max(0.0, 100.0 * (d.busy_seconds - old.busy_seconds) / elapsed)),
        ))
    return out


@dataclass(frozen=True, slots=True)
class NetRates:
    name: str
    rx_bytes_per_second: float
    tx_bytes_per_second: float
    rx_errors: int
    tx_errors: int


def net_rates(prev: Sequence[NetDevice], cur: Sequence[NetDevice], elapsed: float
              ) -> list[NetRates]:
    out = []
    for old, d in _by_name(prev, cur, elapsed):
        out.append(NetRates(
            d.name,
            max(0.0, (d.rx_bytes - old.rx_bytes) / elapsed),
            max(0.0, (d.tx_bytes - old.tx_bytes) / elapsed),
            d.rx_errors - old.rx_errors,
            d.tx_errors - old.tx_errors,
        ))
    return out


# ------------------------------------------------------------ tier totals ---


@dataclass(frozen=True, slots=True)
class TierUsage:
    tier: str
    cpu_percent: float | None
    memory_bytes: int | None
    tasks: int | None
    io_read_bytes: int | None
    io_write_bytes: int | None
    memory_pressure_avg10: float | None
    cpu_pressure_avg10: float | None
    io_pressure_avg10: float | None
    # Limit hits, counted since the slice's cgroup was created.
    oom_kills: int | None = None
    memory_high_events: int | None = None
    memory_max_events: int | None = None
    throttled_seconds: float | None = None


def tier_usage(tier_paths: Mapping[str, str], prev: Mapping[str, CgroupSample | None],
               cur: Mapping[str, CgroupSample | None]) -> dict[str, TierUsage]:
    """Totals per tier from the tier slices' own cgroups, which the kernel
    already sums over every unit and scope below them."""
    out: dict[str, TierUsage] = {}
    for tier, path in tier_paths.items():
        c = cur.get(path)
        p = prev.get(path)
        if c is None:
            continue
        out[tier] = TierUsage(
            tier=tier,
            cpu_percent=cgroup_cpu_percent(p, c) if p is not None else None,
            memory_bytes=c.memory_current,
            tasks=c.pids_current,
            io_read_bytes=c.io.read_bytes if c.io else None,
            io_write_bytes=c.io.write_bytes if c.io else None,
            memory_pressure_avg10=c.pressure_memory.some.avg10 if c.pressure_memory else None,
            cpu_pressure_avg10=c.pressure_cpu.some.avg10 if c.pressure_cpu else None,
            io_pressure_avg10=c.pressure_io.some.avg10 if c.pressure_io else None,
            oom_kills=c.memory_events.oom_kill if c.memory_events else None,
            memory_high_events=c.memory_events.high if c.memory_events else None,
            memory_max_events=c.memory_events.max if c.memory_events else None,
            throttled_seconds=c.cpu.throttled_seconds if c.cpu else None,
        )
    return out


# ----------------------------------------------------------------- alerts ---


@dataclass(frozen=True, slots=True)
class Alert:
    metric: str
    state: Literal["raised", "cleared"]
    value: float
    threshold: float
    time: float
    text: str | None = None  # a message of its own, where the generic one says too little
    severity: str = "warning"  # what a raise means to a notifier; critical pages

    def message(self) -> str:
        if self.text is not None:
            return self.text
        if self.state == "raised":
            return f"{self.metric} at {self.value:.1f} crossed the threshold {self.threshold:g}"
        return f"{self.metric} back to {self.value:.1f}, below {self.threshold:g}"


@dataclass(slots=True)
class Threshold:
    """Edge-triggered with hysteresis: one alert on crossing, one on
    clearing, none in between however long the value stays high. It clears
    only below ``threshold - hysteresis``, so a value hovering at the line
    does not flap."""

    metric: str
    threshold: float
    hysteresis: float
    raised: bool = False

    def update(self, value: float, now: float) -> Alert | None:
        if not self.raised and value >= self.threshold:
            self.raised = True
            return Alert(self.metric, "raised", value, self.threshold, now)
        if self.raised and value < self.threshold - self.hysteresis:
            self.raised = False
            return Alert(self.metric, "cleared", value, self.threshold, now)
        return None


# ---------------------------------------------------------------- history ---


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope (units per second) of (time, value) points."""
    n = len(points)
    if n < 2:
        return None
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var


class MetricSeries:
    """A bounded ring of (time, value) per metric."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._series: dict[str, deque[tuple[float, float]]] = {}

    def add(self, metric: str, now: float, value: float) -> None:
        series = self._series.get(metric)
        if series is None:
            series = self._series[metric] = deque(maxlen=self.length)
        series.append((now, value))

    def series(self, metric: str) -> list[tuple[float, float]]:
        return list(self._series.get(metric, ()))

    def metrics(self) -> list[str]:
        return sorted(self._series)

    def trend(self, metric: str, window_seconds: float) -> float | None:
        """Slope over the last window_seconds, in units per second."""
        points = self._series.get(metric)
        if not points:
            return None
        end = points[-1][0]
        return slope([p for p in points if p[0] >= end - window_seconds])

    def forget(self, keep: Iterable[str]) -> None:
        """Drops series not in keep (e.g. processes that exited)."""
        wanted = set(keep)
        for metric in list(self._series):
            if metric not in wanted:
                del self._series[metric]


# ------------------------------------------------------------------- leaks ---


@dataclass(frozen=True, slots=True)
class LeakSuspect:
    subject: str  # "process 1234 (comm)" or a cgroup path
    growth_bytes: int
    bytes_per_second: float
    window_seconds: float


@dataclass(slots=True)
class LeakDetector:
    """Suspects a leak when memory grew steadily over a window: at least
    ``min_samples`` readings spanning ``min_seconds``, most steps up
    (``min_rising`` share), a positive least-squares slope and at least
    ``min_growth`` bytes of growth, no single step carrying half of it.
    Steady growth is the signal; a single jump (a cache fill, a burst) is not."""

    min_samples: int = 10
    min_seconds: float = 300.0
    min_rising: float = 0.8
    min_growth: int = 32 << 20
    length: int = 120
    _series: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    @property
    def spacing(self) -> float:
        # Points closer than a tenth of the window add nothing to a slope but
        # would push the window's start out of a bounded series: under smart
        # sampling (1 s ticks) 120 points would span 2 minutes, never 5.
        return 0.9 * self.min_seconds / self.min_samples

    def add(self, subject: str, now: float, rss: int) -> None:
        series = self._series.get(subject)
        if series is None:
            series = self._series[subject] = deque(maxlen=self.length)
        if series and now - series[-1][0] < self.spacing:
            return
        series.append((now, float(rss)))

    def series(self, subject: str) -> list[tuple[float, float]]:
        return list(self._series.get(subject, ()))

    def last_point(self, subject: str) -> tuple[float, float] | None:
        series = self._series.get(subject)
        return series[-1] if series else None

    def flat_at(self, subject: str, rss: int) -> bool:
        """Every point is ``rss``: while it stays so the subject cannot be
        a suspect, so a feed may stop adding its points (see process_leaks)."""
        series = self._series.get(subject)
        value = float(rss)
        return (self.min_growth > 0 and series is not None
                and all(v == value for _, v in series))

    def drop(self, subject: str) -> None:
        self._series.pop(subject, None)

    def forget(self, keep: Iterable[str]) -> None:
        wanted = set(keep)
        for s in list(self._series):
            if s not in wanted:
                del self._series[s]

    def suspects(self, among: Iterable[str] | None = None) -> list[LeakSuspect]:
        """``among``: only these subjects (the rest known to be flat)."""
        out = []
        pairs = (self._series.items() if among is None else
                 ((s, self._series[s]) for s in among if s in self._series))
        for subject, series in pairs:
            if len(series) < self.min_samples:
                continue
            span = series[-1][0] - series[0][0]
            growth = series[-1][1] - series[0][1]
            if span < self.min_seconds or growth < self.min_growth:
                continue
            steps = [b[1] - a[1] for a, b in zip(series, list(series)[1:], strict=False)]
            rising = sum(1 for d in steps if d >= 0) / len(steps)
            # Growth spread over many steps, not one jump (a cache fill, a burst).
            spread = max(steps) <= growth / 2
            rate = slope(list(series))
            if rising >= self.min_rising and spread and rate is not None and rate > 0:
                out.append(LeakSuspect(subject, int(growth), rate, span))
        return sorted(out, key=lambda s: -s.bytes_per_second)


@dataclass(slots=True)
class LeakAlarm:
    """Edge-triggered like Threshold: one alert when a process starts to look
    like it leaks, one when it stops (or exits), none in between."""

    leaking: set[str] = field(default_factory=set)

    def update(self, suspects: Sequence[LeakSuspect], now: float) -> list[Alert]:
        alerts = []
        current = {s.subject: s for s in suspects}
        for subject, s in current.items():
            if subject not in self.leaking:
                mib = s.growth_bytes / (1 << 20)
                alerts.append(Alert(
                    f"leak {subject}", "raised", s.bytes_per_second, 0.0, now,
                    f"{subject} grew {mib:.0f} MiB steadily over {s.window_seconds:.0f} s "
                    f"({s.bytes_per_second / 1024:.0f} KiB/s): a memory leak is likely"))
        for subject in sorted(self.leaking - set(current)):
            alerts.append(Alert(f"leak {subject}", "cleared", 0.0, 0.0, now,
                                f"{subject} no longer grows steadily"))
        self.leaking = set(current)
        return alerts


# ----------------------------------------------------------------- monitor ---


# The series Monitor.update records, each with what it measures. Tier
# series are per tier: TIER_METRICS names the part after "tier.<tier>.".
SYSTEM_METRICS = {
    "cpu_percent": "busy share of all CPUs, percent",
    "memory_percent": "RAM in use, percent of total",
    "load1": "one-minute load average",
}
TIER_METRICS = {
    "cpu_percent": "CPU use of the tier's slice, percent of one CPU",
    "memory_bytes": "memory charged to the tier's slice, bytes",
}


def metric_names(tiers: Iterable[str]) -> dict[str, str]:
    """Every metric name the monitor can record for these tiers, with its
    meaning: what `taucg history --metric` and the socket API accept."""
    names = dict(SYSTEM_METRICS)
    for tier in tiers:
        for attr, meaning in TIER_METRICS.items():
            names[f"tier.{tier}.{attr}"] = f"{tier}: {meaning}"
    return names


@dataclass(frozen=True, slots=True)
class Thresholds:
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    hysteresis: float = 5.0


@dataclass(frozen=True, slots=True)
class Update:
    """One tick's meaning: the rates, every metric value added to the
    history this tick, the alerts raised or cleared (thresholds and leaks),
    and the per-tier totals."""

    rates: SystemRates | None
    memory_percent: float | None
    alerts: list[Alert]
    values: dict[str, float] = field(default_factory=dict)
    tiers: dict[str, TierUsage] = field(default_factory=dict)
    # model/forecast.py: when a tier, filesystem or leaking process reaches its limit.
    forecasts: list[Forecast] = field(default_factory=list)


class Monitor:
    """Keeps the previous sample, the history and the alarms between updates."""

    def __init__(self, thresholds: Thresholds, history_length: int = 120,
                 forecast: ForecastConfig | None = None,
                 locate: Callable[[int], str | None] = lambda _pid: None) -> None:
        self.thresholds = thresholds
        self.history = MetricSeries(history_length)
        self.leaks = LeakDetector(length=history_length)
        self._prev: SystemSample | None = None
        self._prev_tiers: Mapping[str, CgroupSample | None] = {}
        self._alarms: dict[str, Threshold] = {}
        self._leak_alarm = LeakAlarm()
        from taucg.model.limits import OomAlarm  # limits builds on this module's Alert

        self._oom_alarm = OomAlarm()
        self.forecaster: Forecaster | None = None
        if forecast is not None and forecast.enabled:
            from taucg.model.forecast import Forecaster  # it builds on this module too

            self.forecaster = Forecaster(forecast, locate)
        from taucg.model.process_leaks import ProcessLeakFeed  # builds on LeakDetector

        self._leak_feed = ProcessLeakFeed(self.leaks)
        self._table = ProcessTable()

    def _alarm(self, metric: str, threshold: float) -> Threshold:
        alarm = self._alarms.get(metric)
        if alarm is None:
            alarm = self._alarms[metric] = Threshold(metric, threshold,
                                                     self.thresholds.hysteresis)
        return alarm

    def update(self, sample: SystemSample, disk_percent: Mapping[str, float] | None = None,
               processes: Sequence[ProcessSample] | ProcessTable | None = None,
               tiers: Mapping[str, CgroupSample | None] | None = None,
               oom_kills: Sequence[OomKill] = (), kernel_log: str | None = None,
               filesystems: Mapping[str, tuple[int, int]] | None = None) -> Update:
        """``tiers``: each tier's slice cgroup sample (None: not started);
        ``oom_kills``: the kernel log's kills since the last update, and
        ``kernel_log`` why that log cannot be read, if it cannot;
        ``filesystems``: mount point -> (used, usable) bytes, for forecasts."""
        now = sample.monotonic
        alerts: list[Alert] = []
        values: dict[str, float] = {}

        def record(metric: str, value: float) -> None:
            values[metric] = value
            self.history.add(metric, now, value)

        rates = system_rates(self._prev, sample) if self._prev is not None else None
        if rates is not None and rates.cpu_percent is not None:
            record("cpu_percent", rates.cpu_percent)
            a = self._alarm("cpu_percent", self.thresholds.cpu_percent).update(
                rates.cpu_percent, now)
            if a:
                alerts.append(a)
        mem_pct = None
        if sample.memory is not None and sample.memory.total:
            mem_pct = 100.0 * sample.memory.used / sample.memory.total
            record("memory_percent", mem_pct)
            a = self._alarm("memory_percent", self.thresholds.memory_percent).update(mem_pct, now)
            if a:
                alerts.append(a)
        if sample.load is not None:
            record("load1", sample.load.load1)
        for mount, pct in (disk_percent or {}).items():
            a = self._alarm(f"disk_percent {mount}", self.thresholds.disk_percent).update(pct, now)
            if a:
                alerts.append(a)
        usage: dict[str, TierUsage] = {}
        if tiers is not None:
            usage = tier_usage({t: t for t in tiers}, self._prev_tiers, tiers)
            self._prev_tiers = dict(tiers)
            alerts += self._oom_alarm.update(tiers, oom_kills, now, kernel_log)
            for tier, u in usage.items():
                for attr in TIER_METRICS:
                    v = getattr(u, attr)
                    if v is not None:
                        record(f"tier.{tier}.{attr}", float(v))
        leaking: list[tuple[str, ProcessSample, list[tuple[float, float]]]] = []
        if processes is not None:
            # A table is kept by the caller from changed-only sweeps; a
            # full list is diffed here, so both take the same path.
            if isinstance(processes, ProcessTable):
                table = processes
            else:
                table = self._table
                table.replace_all(processes)
            suspects = self._leak_feed.update(now, table.last_delta, table)
            alerts += self._leak_alarm.update(suspects, now)
            leaking = [(s.subject, p, self.leaks.series(s.subject)) for s in suspects
                       if (p := self._leak_feed.process_of(s.subject, table)) is not None]
        forecasts: list[Forecast] = []
        if self.forecaster is not None:
            forecasts, said = self.forecaster.tick(
                now, self.history, tiers or {}, filesystems or {}, leaking,
                sample.memory.available if sample.memory is not None else None)
            alerts += said
        self._prev = sample
        return Update(rates, mem_pct, alerts, values, usage, forecasts)
