"""Prometheus exposition through prometheus-client.

A custom collector reads the daemon's latest state at scrape time, so a
scrape costs nothing between scrapes and never samples the kernel itself.
Served only when [daemon] metrics_address is set ("127.0.0.1:9464").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from taucg.config.values import parse_address

if TYPE_CHECKING:
    from taucg.faces.daemon_state import DaemonState, GovernorView

_TIER_METRICS: tuple[tuple[str, type, str, str], ...] = (
    ("cpu_percent", GaugeMetricFamily, "taucg_tier_cpu_percent",
     "CPU use of the tier, percent of one CPU"),
    ("memory_bytes", GaugeMetricFamily, "taucg_tier_memory_bytes",
     "memory.current of the tier slice"),
    ("tasks", GaugeMetricFamily, "taucg_tier_tasks", "pids.current of the tier slice"),
    ("memory_pressure_avg10", GaugeMetricFamily, "taucg_tier_memory_pressure_avg10",
     "memory.pressure some avg10 of the tier slice, percent"),
    ("cpu_pressure_avg10", GaugeMetricFamily, "taucg_tier_cpu_pressure_avg10",
     "cpu.pressure some avg10 of the tier slice, percent"),
    ("io_pressure_avg10", GaugeMetricFamily, "taucg_tier_io_pressure_avg10",
     "io.pressure some avg10 of the tier slice, percent"),
    ("io_read_bytes", CounterMetricFamily, "taucg_tier_io_read_bytes",
     "bytes read by the tier (io.stat)"),
    ("io_write_bytes", CounterMetricFamily, "taucg_tier_io_write_bytes",
     "bytes written by the tier (io.stat)"),
)


class DaemonCollector(Collector):
    def __init__(self, state: Callable[[], DaemonState]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        s = self.state()  # one snapshot for the whole scrape
        tick = s.last
        if tick is not None:
            for attr, family, name, doc in _TIER_METRICS:
                metric = family(name, doc, labels=["tier"])
                for tier, u in tick.tiers.items():
                    v = getattr(u, attr)
                    if v is not None:
                        metric.add_metric([tier], float(v))
                yield metric
            if tick.cpu_percent is not None:
                yield GaugeMetricFamily("taucg_system_cpu_percent",
                                        "whole-system CPU use, percent", value=tick.cpu_percent)
            if tick.memory_percent is not None:
                yield GaugeMetricFamily("taucg_system_memory_percent",
                                        "memory in use, percent", value=tick.memory_percent)
            yield GaugeMetricFamily("taucg_sampler_processes", "processes in the last sweep",
                                    value=tick.processes)
            yield GaugeMetricFamily("taucg_sampler_last_sweep_seconds",
                                    "what the last sweep cost", value=tick.seconds)
        yield CounterMetricFamily("taucg_sampler_sweeps", "sweeps since start",
                                  value=s.sweeps)
        yield CounterMetricFamily("taucg_sampler_sweep_seconds",
                                  "time spent sweeping since start",
                                  value=s.sweep_seconds_total)
        if s.health is not None:
            yield GaugeMetricFamily("taucg_health_score", "health score, 0.0-1.0",
                                    value=s.health.score)
            checks = GaugeMetricFamily("taucg_health_check_score", "each check's score",
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


def _governor_metrics(gv: GovernorView) -> Iterator[Any]:
    stall = GaugeMetricFamily("taucg_governor_stall_percent",
                              "worst protected tier's share of time stalled, last tick",
                              labels=["resource"])
    for r, v in gv.stall_percent.items():
        stall.add_metric([r], v)
    yield stall
    governed = GaugeMetricFamily(
        "taucg_governor_setting", "a value the governor imposes now (weights, CPUQuota "
        "percent, MemoryHigh bytes, AllowedCPUs count); absent: as configured",
        labels=["tier", "property"])
    for tier, values in gv.settings.items():
        for key, v in values.items():
            if isinstance(v, int | float):
                governed.add_metric([tier, key], float(v))
            elif hasattr(v, "bytes") and v.bytes is not None:
                governed.add_metric([tier, key], float(v.bytes))
            elif hasattr(v, "cpus"):
                governed.add_metric([tier, key], float(len(v.cpus)))
    yield governed
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


def serve(state: Callable[[], DaemonState], address: str) -> tuple[Any, Any]:
    """Starts the HTTP endpoint on its own thread; returns (server, thread)."""
    host, port = parse_address(address)
    registry = CollectorRegistry()
    registry.register(DaemonCollector(state))
    ProcessCollector(registry=registry)  # the daemon's own CPU, memory and fds
    return start_http_server(port, host, registry=registry)
