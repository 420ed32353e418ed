"""Prometheus exposition through prometheus-client, by Prometheus's naming
conventions: base units (seconds, bytes), ratios 0-1 and never percents,
counters for everything that accumulates (rate() makes the rates, over the
window the reader picks, as with cAdvisor and node_exporter), and a tier
label only on per-tier values, so sum() over tiers counts each thing once.
A limit of "max" has no sample (as kube-state-metrics leaves out an unset
limit), so sum() over a limit adds up the limited tiers only.

A custom collector reads the daemon's latest state at scrape time, so a
scrape costs nothing between scrapes and never samples the kernel itself.
Served at /metrics by the daemon's HTTP server (faces/http/server.py) when
[daemon] http_address is set ("127.0.0.1:9464").
README's "Metrics" section lists every family.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from taucg import __version__

if TYPE_CHECKING:
    from taucg.faces.daemon_state import DaemonState, GovernorView, Tick
    from taucg.model.custom_metrics import CustomValue
    from taucg.model.notify import NotifierView
    from taucg.readers.samples import CgroupSample

# node_exporter's systemd collector's states: one series each, 1 for the current one.
UNIT_STATES = ("active", "activating", "deactivating", "inactive", "failed")


def _psi(resource: str, kind: str) -> Callable[[CgroupSample], float | None]:
    def get(c: CgroupSample) -> float | None:
        p = getattr(c, f"pressure_{resource}")
        line = None if p is None else getattr(p, kind)
        return None if line is None else line.total_seconds

    return get


def _limit(v: object) -> float | None:
    return float(v) if isinstance(v, int) else None  # "max": no sample


# (name, counter?, help, value of a tier's slice sample; None: no sample)
_TIER: tuple[tuple[str, bool, str, Callable[[CgroupSample], float | None]], ...] = (
    ("taucg_tier_cpu_usage_seconds", True, "CPU time the tier used (cpu.stat usage_usec)",
     lambda c: None if c.cpu is None else c.cpu.usage_seconds),
    ("taucg_tier_cpu_throttled_seconds", True,
     "time the tier's tasks were throttled by cpu.max (cpu.stat throttled_usec)",
     lambda c: None if c.cpu is None else c.cpu.throttled_seconds),
    ("taucg_tier_cpu_throttled_periods", True,
     "cpu.max periods in which the tier was throttled (cpu.stat nr_throttled)",
     lambda c: None if c.cpu is None else float(c.cpu.throttled_periods)),
    ("taucg_tier_cpu_periods", True, "cpu.max periods that elapsed (cpu.stat nr_periods)",
     lambda c: None if c.cpu is None else float(c.cpu.periods)),
    ("taucg_tier_memory_bytes", False, "memory.current of the tier slice",
     lambda c: None if c.memory_current is None else float(c.memory_current)),
    ("taucg_tier_tasks", False, "pids.current of the tier slice",
     lambda c: None if c.pids_current is None else float(c.pids_current)),
    ("taucg_tier_io_read_bytes", True, "bytes read by the tier (io.stat)",
     lambda c: None if c.io is None else float(c.io.read_bytes)),
    ("taucg_tier_io_write_bytes", True, "bytes written by the tier (io.stat)",
     lambda c: None if c.io is None else float(c.io.write_bytes)),
    *((f"taucg_tier_pressure_{r}_{word}_seconds", True,
       f"time {'some' if kind == 'some' else 'all'} of the tier's tasks stalled on {r} "
       f"({r}.pressure {kind} total)", _psi(r, kind))
      for r in ("cpu", "memory", "io")
      for kind, word in (("some", "waiting"), ("full", "stalled"))),
    # Limit hits (memory.events, counted over the slice's subtree).
    ("taucg_tier_memory_high_events", True,
     "times the tier went over memory.high and was throttled into reclaim",
     lambda c: None if c.memory_events is None else float(c.memory_events.high)),
    ("taucg_tier_memory_max_events", True, "times the tier hit memory.max",
     lambda c: None if c.memory_events is None else float(c.memory_events.max)),
    ("taucg_tier_oom_events", True, "times the tier's memory.max left the OOM killer to act",
     lambda c: None if c.memory_events is None else float(c.memory_events.oom)),
    ("taucg_tier_oom_kills", True, "processes in the tier killed by any OOM killer",
     lambda c: None if c.memory_events is None else float(c.memory_events.oom_kill)),
    # Limits: no sample for "max".
    ("taucg_tier_memory_max_bytes", False, "memory.max of the tier slice; absent: no limit",
     lambda c: _limit(c.memory_max)),
    ("taucg_tier_memory_high_bytes", False, "memory.high of the tier slice; absent: no limit",
     lambda c: _limit(c.memory_high)),
    ("taucg_tier_tasks_max", False, "pids.max of the tier slice; absent: no limit",
     lambda c: _limit(c.pids_max)),
)


def _family(name: str, counter: bool, doc: str, labels: list[str]) -> Any:
    # prometheus-client appends _total to a counter's samples itself.
    return (CounterMetricFamily if counter else GaugeMetricFamily)(name, doc, labels=labels)


def _tier_metrics(tick: Tick) -> Iterator[Any]:
    for name, counter, doc, get in _TIER:
        metric = _family(name, counter, doc, ["tier"])
        for tier, c in tick.cgroups.items():
            v = get(c)
            if v is not None:
                metric.add_metric([tier], v)
        yield metric
    quota = GaugeMetricFamily("taucg_tier_cpu_quota_seconds", "cpu.max quota: CPU time the "
                              "tier may use per period; absent: no limit", labels=["tier"])
    period = GaugeMetricFamily("taucg_tier_cpu_period_seconds", "cpu.max period; "
                               "quota / period is the limit in CPUs", labels=["tier"])
    for tier, m in tick.cpu_max.items():
        period.add_metric([tier], m.period_usec / 1e6)
        if m.quota_usec is not None:
            quota.add_metric([tier], m.quota_usec / 1e6)
    yield quota
    yield period


def _unit_metrics(s: DaemonState, tick: Tick) -> Iterator[Any]:
    labels = ["unit", "tier"]
    cpu = CounterMetricFamily("taucg_unit_cpu_usage_seconds", "CPU time of a unit inside a "
                              "tier slice (its cpu.stat)", labels=labels)
    mem = GaugeMetricFamily("taucg_unit_memory_bytes", "memory.current of a unit inside a "
                            "tier slice", labels=labels)
    tasks = GaugeMetricFamily("taucg_unit_tasks", "pids.current of a unit inside a tier slice",
                              labels=labels)
    restarts = CounterMetricFamily("taucg_unit_restarts", "systemd's NRestarts of a service "
                                   "inside a tier slice", labels=labels)
    state = GaugeMetricFamily("taucg_unit_state", "1 for the unit's ActiveState, 0 for the "
                              "others", labels=[*labels, "state"])
    for tier, members in tick.members.items():
        for unit, u in members.items():
            if u.cpu_seconds is not None:
                cpu.add_metric([unit, tier], u.cpu_seconds)
            if u.memory_bytes is not None:
                mem.add_metric([unit, tier], float(u.memory_bytes))
            if u.tasks is not None:
                tasks.add_metric([unit, tier], float(u.tasks))
            known = s.units.get(unit)
            if known is None:
                continue  # systemd not asked yet, or it does not know the unit
            if unit.endswith(".service"):
                restarts.add_metric([unit, tier], float(known.restarts))
            for name in UNIT_STATES:
                state.add_metric([unit, tier, name], 1.0 if known.active_state == name else 0.0)
    yield from (cpu, mem, tasks, restarts, state)


def _system_metrics(tick: Tick) -> Iterator[Any]:
    t = tick.cpu_times
    if t is not None:
        cpu = CounterMetricFamily("taucg_system_cpu_seconds", "CPU time of the whole machine "
                                  "by mode, all CPUs together (/proc/stat)", labels=["mode"])
        for mode in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"):
            cpu.add_metric([mode], getattr(t, mode))
        yield cpu
    m = tick.memory
    if m is not None:
        yield GaugeMetricFamily("taucg_system_memory_total_bytes", "MemTotal",
                                value=float(m.total))
        yield GaugeMetricFamily("taucg_system_memory_used_bytes", "memory in use: MemTotal "
                                "- MemAvailable", value=float(m.used))
        if m.total:
            yield GaugeMetricFamily("taucg_system_memory_used_ratio", "memory in use, 0-1",
                                    value=m.used / m.total)


class DaemonCollector(Collector):
    def __init__(self, state: Callable[[], DaemonState]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()  # one snapshot for the whole scrape
        info = GaugeMetricFamily("taucg_build_info", "taucg's version and what runs it; "
                                 "always 1", labels=["version", "python", "kernel"])
        info.add_metric([__version__, platform.python_version(), os.uname().release], 1.0)
        yield info
        tick = s.last
        if tick is not None:
            yield from _tier_metrics(tick)
            yield from _unit_metrics(s, tick)
            yield from _system_metrics(tick)
            yield GaugeMetricFamily("taucg_sampler_processes", "processes in the last sweep",
                                    value=tick.processes)
            yield GaugeMetricFamily("taucg_sampler_last_sweep_seconds",
                                    "what the last sweep cost", value=tick.seconds)
            yield GaugeMetricFamily("taucg_sampler_last_sweep_timestamp_seconds",
                                    "when the last sweep read the kernel, Unix time",
                                    value=tick.time)
        yield CounterMetricFamily("taucg_sampler_sweeps", "sweeps since start",
                                  value=s.sweeps)
        yield CounterMetricFamily("taucg_sampler_sweep_seconds",
                                  "time spent sweeping since start",
                                  value=s.sweep_seconds_total)
        if s.health is not None:
            yield GaugeMetricFamily("taucg_health_score", "health score, 0-1",
                                    value=s.health.score)
            # The node's own [health_checking] health_score_threshold, so one
            # fleet rule (score < threshold) honours each node's config.
            yield GaugeMetricFamily("taucg_health_score_threshold", "health_score_threshold "
                                    "in use: below it the node is unhealthy, 0-1",
                                    value=s.health.threshold)
            checks = GaugeMetricFamily("taucg_health_check_score", "each check's score, 0-1",
                                       labels=["check"])
            for check in s.health.checks:
                if check.score is not None:
                    checks.add_metric([check.name], check.score)
            yield checks
        yield GaugeMetricFamily("taucg_alerts_active", "alerts raised and not cleared",
                                value=len(s.active))
        if s.interval_in_use is not None:
            yield GaugeMetricFamily("taucg_sampler_interval_seconds",
                                    "the sweep interval in use (smart sampling)",
                                    value=s.interval_in_use)
        yield from _forecast_metrics(s)
        yield from _custom_metrics(s.custom)
        if s.notifiers:
            yield from _notifier_metrics(s.notifiers)
        gv = s.governor
        if gv is not None:
            yield from _governor_metrics(gv)
        yield CounterMetricFamily("taucg_placements", "processes placed into tiers",
                                  value=s.placements)
        r = s.recovery
        if r is not None:
            actions = CounterMetricFamily("taucg_recovery_actions",
                                          "recovery actions taken since start",
                                          labels=["unit", "strategy"])
            for (unit, strategy), n in r.actions.items():
                actions.add_metric([unit, strategy], n)
            yield actions
            yield GaugeMetricFamily("taucg_safe_mode", "1 while in safe mode",
                                    value=1.0 if r.safe_mode else 0.0)


def _forecast_metrics(s: DaemonState) -> Iterator[Any]:
    """The last tick's forecasts: resource is memory (a tier's), filesystem or
    process_memory; tier is empty for a filesystem and a process outside the
    tiers; limit names what is reached (MemoryMax, MemoryHigh, size, ...)."""
    labels = ["resource", "subject", "tier", "limit"]
    left = GaugeMetricFamily("taucg_forecast_seconds_to_limit", "expected time until the "
                             "subject reaches its limit at its recent rate (Theil-Sen)",
                             labels=labels)
    rate = GaugeMetricFamily("taucg_forecast_growth_bytes_per_second", "the subject's "
                             "growth rate the forecast uses", labels=labels)
    quality = GaugeMetricFamily("taucg_forecast_fit_quality", "the fit's quality: Kendall's "
                                "tau of the samples in the window, 0-1", labels=labels)
    for fc in s.forecasts:
        values = [fc.resource, fc.subject, fc.tier or "", fc.limit_name]
        left.add_metric(values, fc.seconds_to_limit)
        rate.add_metric(values, fc.bytes_per_second)
        quality.add_metric(values, fc.quality)
    yield from (left, rate, quality)


def _notifier_metrics(views: Iterable[NotifierView]) -> Iterator[Any]:
    sent = CounterMetricFamily("taucg_notifications", "notifications each notifier took "
                               "(past its events, severity and rate limit) since start",
                               labels=["notifier", "type"])
    held = CounterMetricFamily("taucg_notifications_suppressed", "notifications each "
                               "notifier's rate limit held back since start",
                               labels=["notifier", "type"])
    queued = GaugeMetricFamily("taucg_notifications_queued", "a webhook's notifications "
                               "waiting on disk for their receiver", labels=["notifier"])
    failed = CounterMetricFamily("taucg_notifications_failed_attempts", "a webhook's "
                                 "delivery attempts that failed since start",
                                 labels=["notifier"])
    for v in views:
        sent.add_metric([v.name, v.type], v.sent)
        held.add_metric([v.name, v.type], v.suppressed)
        if v.queued is not None:
            queued.add_metric([v.name], v.queued)
        if v.failures is not None:
            failed.add_metric([v.name], v.failures)
    yield from (sent, held, queued, failed)


def custom_metric_name(name: str, unit: str | None) -> str:
    """taucg_custom_NAME, with the unit as its suffix unless the name already
    ends with it (Prometheus's naming: the base unit last)."""
    base = f"taucg_custom_{name}"
    return base if unit is None or name.endswith(f"_{unit}") or name == unit \
        else f"{base}_{unit}"


def _custom_metrics(values: Iterable[CustomValue]) -> Iterator[Any]:
    """One gauge family per [[metrics.custom]] entry; a metric without a
    value at the last tick is left out (absent, not 0)."""
    for c in values:
        if c.value is not None:
            yield GaugeMetricFamily(custom_metric_name(c.name, c.unit),
                                    c.help or f"custom metric {c.name} ([[metrics.custom]])",
                                    value=c.value, unit=c.unit or "")


def _governor_metrics(gv: GovernorView) -> Iterator[Any]:
    stall = GaugeMetricFamily("taucg_governor_stall_ratio",
                              "worst protected tier's share of time stalled, last tick, 0-1",
                              labels=["resource"])
    for r, v in gv.stall_percent.items():
        stall.add_metric([r], v / 100.0)
    yield stall
    # One family per unit: weights and a CPU count are plain numbers, a
    # quota is CPU seconds per wall-clock second (CPUQuota / 100, systemd's
    # CPUQuotaPerSecUSec), MemoryHigh is bytes.
    plain = GaugeMetricFamily(
        "taucg_governor_setting", "a weight or AllowedCPUs count the governor imposes now; "
        "absent: as configured", labels=["tier", "property"])
    quota = GaugeMetricFamily(
        "taucg_governor_cpu_quota_seconds", "the CPUQuota the governor imposes now: CPU "
        "seconds per wall-clock second (1 = one full CPU); absent: as configured",
        labels=["tier"])
    high = GaugeMetricFamily(
        "taucg_governor_memory_high_bytes", "the MemoryHigh the governor imposes now; "
        "absent: as configured", labels=["tier"])
    for tier, values in gv.settings.items():
        for key, v in values.items():
            if key == "cpu_quota" and isinstance(v, int | float):
                quota.add_metric([tier], float(v) / 100.0)
            elif isinstance(v, int | float):
                plain.add_metric([tier, key], float(v))
            elif key == "memory_high" and getattr(v, "bytes", None) is not None:
                high.add_metric([tier], float(v.bytes))
            elif hasattr(v, "cpus"):
                plain.add_metric([tier, key], float(len(v.cpus)))
    yield from (plain, quota, high)
    frozen = GaugeMetricFamily("taucg_governor_frozen", "1 while the governor holds a tier "
                               "frozen", labels=["tier"])
    for tier in gv.frozen:
        frozen.add_metric([tier], 1.0)
    yield frozen
    actions = CounterMetricFamily("taucg_governor_actions", "governor actions since start",
                                  labels=["kind"])
    for kind, n in gv.actions_total.items():
        actions.add_metric([kind], n)
    yield actions


def registry(state: Callable[[], DaemonState]) -> CollectorRegistry:
    """What /metrics exposes: the daemon's collector and its own process."""
    reg = CollectorRegistry()
    reg.register(DaemonCollector(state))
    ProcessCollector(registry=reg)  # the daemon's own CPU, memory and fds
    return reg
