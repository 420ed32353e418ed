"""Forecasts: when a growing quantity will reach its limit.

Pure logic over (time, bytes) series: a Theil-Sen fit (the median of the
pairwise slopes, which a few outliers cannot drag, unlike least squares)
with Kendall's tau as its quality, the time left until a limit at that
rate, and a ForecastAlarm that raises one `forecast` alert when the time
left drops under the horizon and clears it, with hysteresis, when that no
longer holds. `Monitor.update` builds the subjects (a tier's memory
against its binding limit, a filesystem against its size, a leaking
process against its tier's limit or the RAM) from its series.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Literal

from taucg.config.schema import Forecast as ForecastConfig
from taucg.model.monitor import Alert, MetricSeries
from taucg.readers.samples import CgroupSample, ProcessSample

Resource = Literal["memory", "filesystem", "process_memory"]
Point = tuple[float, float]  # (monotonic seconds, bytes)
MAX_FIT_POINTS = 64  # 2,016 pairs: O(n^2) stays small however long the window


# ------------------------------------------------------------ estimator ---


@dataclass(frozen=True, slots=True)
class Fit:
    slope: float  # units per second
    intercept: float  # the line's value at time 0 of the points' own clock
    quality: float  # Kendall's tau-a: 1 every pair rises, 0 no order, -1 every pair falls
    points: int
    span_seconds: float

    def at(self, t: float) -> float:
        return self.intercept + self.slope * t


def thin(points: Sequence[Point], most: int = MAX_FIT_POINTS) -> list[Point]:
    """At most ``most`` points, evenly spread, the first and last kept."""
    n = len(points)
    if n <= most:
        return list(points)
    step = (n - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def theil_sen(points: Sequence[Point], most: int = MAX_FIT_POINTS) -> Fit | None:
    """The Theil-Sen line through (time, value) points, or None with fewer
    than two distinct times. Its slope is the median of the slopes of all
    pairs, its intercept the median of value - slope * time: up to ~29% of
    the points can be anywhere without moving the line much."""
    pts = thin(points, most)
    if len(pts) >= 2 and pts[-1][0] > pts[0][0] and all(v == pts[0][1] for _, v in pts):
        # Flat (a read-only mount, an idle tier): no pairs needed to say so.
        return Fit(0.0, pts[0][1], 0.0, len(pts), pts[-1][0] - pts[0][0])
    ts = [t for t, _ in pts]
    vs = [v for _, v in pts]
    n = len(pts)
    slopes = [(vs[j] - vs[i]) / (ts[j] - ts[i])
              for i in range(n) for j in range(i + 1, n) if ts[j] != ts[i]]
    if not slopes:
        return None
    slope = median(slopes)
    intercept = median(v - slope * t for t, v in pts)
    concordant = sum(1 for s in slopes if s > 0)
    discordant = sum(1 for s in slopes if s < 0)
    return Fit(slope, intercept, (concordant - discordant) / len(slopes), n,
               ts[-1] - ts[0])


def in_window(points: Iterable[Point], window_seconds: float) -> list[Point]:
    pts = list(points)
    if not pts:
        return pts
    start = pts[-1][0] - window_seconds
    return [p for p in pts if p[0] >= start]


# ------------------------------------------------------------- subjects ---


@dataclass(frozen=True, slots=True)
class Subject:
    """One quantity to forecast: its recent points, where it is now and
    what it must not reach."""

    resource: Resource
    name: str  # "tau-low.slice", "/var", "process 1234 (comm, started ...)"
    tier: str | None
    points: Sequence[Point]
    current: float  # the last reading (what the kernel says now)
    limit_name: str  # "MemoryMax", "MemoryHigh", "size", "the RAM", "tau-low.slice's MemoryMax"
    limit: float  # the value at which current reaches the limit

    @property
    def key(self) -> str:
        return f"forecast {self.resource} {self.name}"


def binding_memory_limit(c: CgroupSample) -> tuple[str, int] | None:
    """The limit a cgroup's memory meets first: MemoryHigh (throttled into
    reclaim) when it is below MemoryMax (the OOM killer), else MemoryMax;
    None when neither is set."""
    high = c.memory_high if isinstance(c.memory_high, int) else None
    top = c.memory_max if isinstance(c.memory_max, int) else None
    if high is not None and (top is None or high < top):
        return ("MemoryHigh", high)
    if top is not None:
        return ("MemoryMax", top)
    return None


def tier_subject(tier: str, unit: str, points: Sequence[Point],
                 sample: CgroupSample) -> Subject | None:
    bound = binding_memory_limit(sample)
    if bound is None or sample.memory_current is None or not points:
        return None
    return Subject("memory", unit, tier, points, float(sample.memory_current), bound[0],
                   float(bound[1]))


def process_subject(name: str, points: Sequence[Point], rss: int, tier: str | None,
                    tiers: Mapping[str, CgroupSample | None],
                    ram_available: int | None) -> Subject | None:
    """A leaking process meets the first of: its tier's binding limit (the
    tier's headroom is what its growth eats), the RAM (MemAvailable)."""
    options: list[tuple[float, str]] = []
    sample = tiers.get(tier) if tier else None
    if sample is not None and sample.memory_current is not None:
        bound = binding_memory_limit(sample)
        if bound is not None:
            options.append((float(bound[1] - sample.memory_current),
                            f"tau-{tier}.slice's {bound[0]}"))
    if ram_available is not None:
        options.append((float(ram_available), "the RAM"))
    if not options or not points:
        return None
    headroom, limit_name = min(options)
    return Subject("process_memory", name, tier, points, float(rss), limit_name,
                   float(rss) + max(0.0, headroom))


class Tracks:
    """Bounded (time, value) series of our own, for what the monitor's
    history does not keep (filesystems): points closer than the window over
    MAX_FIT_POINTS add nothing to the fit, and points older than the window
    are dropped."""

    def __init__(self, window_seconds: float, length: int = 4 * MAX_FIT_POINTS) -> None:
        self.window = window_seconds
        self.spacing = window_seconds / (2 * MAX_FIT_POINTS)
        self.length = length
        self._series: dict[str, deque[Point]] = {}

    def add(self, name: str, now: float, value: float) -> None:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = deque(maxlen=self.length)
        if series and now - series[-1][0] < self.spacing:
            return
        series.append((now, value))
        while series and series[0][0] < now - self.window:
            series.popleft()

    def series(self, name: str) -> list[Point]:
        return list(self._series.get(name, ()))

    def forget(self, keep: Iterable[str]) -> None:
        wanted = set(keep)
        for name in list(self._series):
            if name not in wanted:
                del self._series[name]


# ------------------------------------------------------------- forecast ---


@dataclass(frozen=True, slots=True)
class Forecast:
    resource: Resource
    subject: str
    tier: str | None
    limit_name: str
    limit_bytes: float
    current_bytes: float
    bytes_per_second: float
    quality: float
    points: int
    window_seconds: float
    seconds_to_limit: float
    time: float  # monotonic: when current_bytes was read

    @property
    def key(self) -> str:
        return f"forecast {self.resource} {self.subject}"

    def text(self) -> str:
        """"tau-low.slice reaches MemoryMax in ~14 min at +38 MiB/min"."""
        rate = f"+{_size(self.bytes_per_second * 60)}/min"
        eta = duration(self.seconds_to_limit)
        if self.resource == "filesystem":
            if self.seconds_to_limit <= 0:
                return f"filesystem {self.subject} is full, growing {rate}"
            return f"filesystem {self.subject} is full in ~{eta} at {rate}"
        if self.seconds_to_limit <= 0:
            return f"{self.subject} is at {self.limit_name}, growing {rate}"
        return f"{self.subject} reaches {self.limit_name} in ~{eta} at {rate}"

    def to_dict(self, wall_minus_monotonic: float) -> dict[str, Any]:
        """The socket API's shape: epoch floats, units in the names."""
        at = self.time + wall_minus_monotonic
        return {"resource": self.resource, "subject": self.subject, "tier": self.tier,
                "limit": self.limit_name, "limit_bytes": round(self.limit_bytes),
                "current_bytes": round(self.current_bytes),
                "bytes_per_second": round(self.bytes_per_second, 3),
                "quality": round(self.quality, 4), "points": self.points,
                "window_seconds": round(self.window_seconds, 3),
                "time_to_limit_seconds": round(self.seconds_to_limit, 3),
                "time": round(at, 3), "reaches_at": round(at + self.seconds_to_limit, 3),
                "message": self.text()}


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.0f} {unit}" if abs(n) >= 10 * scale else \
                f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def duration(seconds: float) -> str:
    """14 min, 3.5 h, 2.1 d: two figures at most, as an estimate deserves."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def forecast(subject: Subject, cfg: ForecastConfig, now: float | None = None
             ) -> tuple[Forecast | None, Fit | None]:
    """The subject's forecast, if its window holds enough points rising
    steadily enough (slope > 0, quality >= min_quality); and its fit, which
    the alarm's hysteresis also looks at. ``now`` is when ``current`` was
    read (a spaced series' last point may be older); default: the last point."""
    pts = in_window(subject.points, cfg.window_seconds)
    if len(pts) < cfg.min_points:
        return None, None
    fit = theil_sen(pts)
    if fit is None or fit.slope <= 0 or fit.quality < cfg.min_quality:
        return None, fit
    eta = max(0.0, (subject.limit - subject.current) / fit.slope)
    return Forecast(subject.resource, subject.name, subject.tier, subject.limit_name,
                    subject.limit, subject.current, fit.slope, fit.quality, fit.points,
                    fit.span_seconds, eta, pts[-1][0] if now is None else now), fit


@dataclass(slots=True)
class ForecastAlarm:
    """Edge-triggered like Threshold: one alert when a subject's expected
    time to its limit drops under the horizon, one when it no longer holds,
    none in between. It clears only past the horizon by the hysteresis, once
    the growth stops (slope <= 0), once the fit quality falls below
    min_quality by the hysteresis, or when the subject is gone (a process
    exited, a limit was lifted), so a forecast near the line does not flap."""

    cfg: ForecastConfig
    raised: dict[str, str] = field(default_factory=dict)  # key -> its last message

    def update(self, results: Sequence[tuple[Subject, Forecast | None, Fit | None]],
               now: float) -> list[Alert]:
        horizon = self.cfg.horizon_minutes * 60
        h = self.cfg.hysteresis_percent / 100
        alerts: list[Alert] = []
        seen: set[str] = set()
        for subject, fc, fit in results:
            key = subject.key
            seen.add(key)
            if key not in self.raised:
                if fc is not None and fc.seconds_to_limit <= horizon:
                    self.raised[key] = fc.text()
                    alerts.append(Alert(key, "raised", fc.seconds_to_limit, horizon, now,
                                        fc.text()))
                continue
            if fc is not None:
                if fc.seconds_to_limit > horizon * (1 + h):
                    alerts.append(self._clear(key, fc.seconds_to_limit, now, subject,
                                              f"now ~{duration(fc.seconds_to_limit)} away"))
                else:
                    self.raised[key] = fc.text()
                continue
            if fit is not None and fit.slope > 0 \
                    and fit.quality >= self.cfg.min_quality * (1 - h):
                continue  # a dip in quality inside the band: keep it raised
            why = ("not enough samples in the window" if fit is None
                   else "no longer growing" if fit.slope <= 0 else "no longer growing steadily")
            alerts.append(self._clear(key, 0.0, now, subject, why))
        for key in sorted(set(self.raised) - seen):
            self.raised.pop(key)
            alerts.append(Alert(key, "cleared", 0.0, horizon, now,
                                f"{key.split(' ', 2)[2]}: no longer forecast (gone, or no limit)"))
        return alerts

    def _clear(self, key: str, eta: float, now: float, subject: Subject, why: str) -> Alert:
        self.raised.pop(key, None)
        horizon = self.cfg.horizon_minutes * 60
        what = (f"filesystem {subject.name} is no longer full" if subject.resource == "filesystem"
                else f"{subject.name} no longer reaches {subject.limit_name}")
        return Alert(key, "cleared", eta, horizon, now, f"{what} within {duration(horizon)}: {why}")


class Forecaster:
    """The forecasts of one tick, and the alarm across ticks. Tier memory
    comes from the monitor's history (which the sample store refills after a
    restart), a leaking process from the leak detector's series, and a
    filesystem from a series of our own."""

    def __init__(self, cfg: ForecastConfig,
                 locate: Callable[[int], str | None] = lambda _pid: None) -> None:
        self.cfg = cfg
        self.locate = locate  # a PID's tier, for a leaking process's limit
        self.filesystems = Tracks(cfg.window_seconds)
        self.alarm = ForecastAlarm(cfg)

    def tick(self, now: float, history: MetricSeries,
             tiers: Mapping[str, CgroupSample | None],
             filesystems: Mapping[str, tuple[int, int]],
             leaking: Sequence[tuple[str, ProcessSample, Sequence[Point]]],
             ram_available: int | None) -> tuple[list[Forecast], list[Alert]]:
        """``filesystems``: mount point -> (used, usable) bytes; ``leaking``:
        the leak suspects, each with its process and its RSS series."""
        subjects: list[Subject] = []
        for tier, sample in tiers.items():
            if sample is not None:
                s = tier_subject(tier, f"tau-{tier}.slice",
                                 history.series(f"tier.{tier}.memory_bytes"), sample)
                if s is not None:
                    subjects.append(s)
        for mount, (used, usable) in filesystems.items():
            self.filesystems.add(mount, now, float(used))
            subjects.append(Subject("filesystem", mount, None, self.filesystems.series(mount),
                                    float(used), "size", float(usable)))
        self.filesystems.forget(filesystems)
        for name, proc, points in leaking:
            s = process_subject(name, points, proc.rss, self.locate(proc.pid), tiers,
                                ram_available)
            if s is not None:
                subjects.append(s)
        return self.update(subjects, now)

    def update(self, subjects: Sequence[Subject], now: float
               ) -> tuple[list[Forecast], list[Alert]]:
        results = [(s, *forecast(s, self.cfg, now)) for s in subjects]
        alerts = self.alarm.update(results, now)
        found = [fc for _, fc, _ in results if fc is not None]
        return sorted(found, key=lambda f: f.seconds_to_limit), alerts
