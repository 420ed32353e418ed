"""Health: checks -> a weighted score from 0.0 to 1.0 -> recommendations.

Each check scores 1.0 when healthy and falls linearly to 0.0 past its
threshold. A check whose source this machine lacks (no sensors, no
systemd) is left out of the score, and says so, rather than counting as
healthy or as broken. The score is the weighted mean of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taucg.config.schema import Config
from taucg.config.values import unit_name
from taucg.model.monitor import cpu_percent
from taucg.readers.samples import SystemSample

TEMP_WARN_C = 80.0  # score 1.0 below, 0.0 at TEMP_CRIT_C
TEMP_CRIT_C = 100.0
PRESSURE_ZERO = 50.0  # some avg60 stall % at which the pressure score reaches 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    score: float | None  # None: not available here, left out of the total
    value: str  # for people: "22.6% (/)"
    detail: str = ""
    recommendation: str | None = None
    # The same for programs: numbers with their unit in the key.
    measured: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    score: float
    threshold: float
    checks: tuple[CheckResult, ...]
    weights: Mapping[str, float] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.score >= self.threshold

    def recommendations(self) -> list[str]:
        return [c.recommendation for c in self.checks if c.recommendation]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3), "threshold": self.threshold,
            "healthy": self.healthy,
            "checks": [{"name": c.name, "score": None if c.score is None else round(c.score, 3),
                        "weight": self.weights.get(c.name), "value": c.value,
                        "measured": dict(c.measured), "detail": c.detail,
                        "recommendation": c.recommendation}
                       for c in self.checks],
            "recommendations": self.recommendations(),
        }


def linear(value: float, good_below: float, zero_at: float) -> float:
    """1.0 up to good_below, falling to 0.0 at zero_at."""
    if value <= good_below:
        return 1.0
    if value >= zero_at:
        return 0.0
    return (zero_at - value) / (zero_at - good_below)


def check_cpu(prev: SystemSample, cur: SystemSample, threshold: float) -> CheckResult:
    if prev.cpu is None or cur.cpu is None:
        return CheckResult("cpu_usage", None, "n/a", "/proc/stat unreadable")
    pct = cpu_percent(prev.cpu, cur.cpu)
    score = linear(pct, threshold, 100.0)
    rec = (f"cpu_usage at {pct:.1f}% is above {threshold:g}%: see 'taucg processes' for the "
           "heaviest processes, and place batch work in the low or background tier"
           if pct >= threshold else None)
    return CheckResult("cpu_usage", score, f"{pct:.1f}%", f"threshold {threshold:g}%", rec,
                       {"usage_percent": round(pct, 2), "threshold_percent": threshold})


def check_memory(cur: SystemSample, threshold: float) -> CheckResult:
    m = cur.memory
    if m is None or not m.total:
        return CheckResult("memory_usage", None, "n/a", "/proc/meminfo unreadable")
    pct = 100.0 * m.used / m.total
    rec = (f"memory_usage at {pct:.1f}% is above {threshold:g}%: lower "
           "tiers.background.memory_max or tiers.low.memory_high, or find the growth with "
           "'taucg resources --memory'" if pct >= threshold else None)
    return CheckResult("memory_usage", linear(pct, threshold, 100.0), f"{pct:.1f}%",
                       f"threshold {threshold:g}%", rec,
                       {"usage_percent": round(pct, 2), "threshold_percent": threshold})


def check_disk(threshold: float, disks: Mapping[str, float] | None = None) -> CheckResult:
    """``disks``: mount -> percent used, when the caller already has them
    (the daemon reads them on a thread: statvfs on a hung NFS mount blocks)."""
    if disks is None:
        from taucg.readers.sysinfo import filesystems

        disks = {f.mountpoint: f.percent for f in filesystems()}
    if not disks:
        return CheckResult("disk_usage", None, "n/a", "no filesystems to measure")
    mountpoint, percent = max(disks.items(), key=lambda kv: kv[1])
    rec = (f"disk_usage of {mountpoint} at {percent:.1f}% is above "
           f"{threshold:g}%: free space there (logs, caches, old files)"
           if percent >= threshold else None)
    return CheckResult("disk_usage", linear(percent, threshold, 100.0),
                       f"{percent:.1f}% ({mountpoint})",
                       f"fullest of {len(disks)} filesystems; threshold {threshold:g}%", rec,
                       {"usage_percent": round(percent, 2), "mountpoint": mountpoint,
                        "filesystems": len(disks), "threshold_percent": threshold})


def check_network() -> CheckResult:
    from taucg.readers.sysinfo import default_route_present, link_states

    states = link_states()
    if not states:
        return CheckResult("network_connectivity", None, "n/a", "no /sys/class/net here")
    up = [name for name, state in states.items() if name != "lo" and state == "up"]
    route = default_route_present()
    if up and route:
        return CheckResult("network_connectivity", 1.0, "up",
                           f"links up: {', '.join(up)}; default route present", None,
                           {"state": "up", "links_up": len(up), "default_route": True})
    if up:
        return CheckResult("network_connectivity", 0.5, "no default route",
                           f"links up: {', '.join(up)}",
                           "network_connectivity: links are up but there is no default "
                           "route; check the DHCP client or the static gateway",
                           {"state": "no default route", "links_up": len(up),
                            "default_route": False})
    return CheckResult("network_connectivity", 0.0, "down", "no link other than lo is up",
                       "network_connectivity: no network link is up; check cables, "
                       "'ip link' and the network manager",
                       {"state": "down", "links_up": 0, "default_route": route})


def check_temperature() -> CheckResult:
    from taucg.readers.sysinfo import temperatures

    temps = temperatures()
    if not temps:
        return CheckResult("temperature", None, "not available on this machine",
                           "no thermal zones or hwmon sensors")
    hottest = max(temps, key=lambda t: t.celsius)
    rec = (f"temperature of {hottest.label} at {hottest.celsius:.0f} °C is above "
           f"{TEMP_WARN_C:g} °C: check cooling, or cap tiers.background.cpu_quota"
           if hottest.celsius >= TEMP_WARN_C else None)
    return CheckResult("temperature", linear(hottest.celsius, TEMP_WARN_C, TEMP_CRIT_C),
                       f"{hottest.celsius:.0f} °C ({hottest.label})", "", rec,
                       {"celsius": hottest.celsius, "label": hottest.label})


def check_pressure(cur: SystemSample) -> CheckResult:
    stalls = {name: p.some.avg60 for name, p in (("cpu", cur.pressure_cpu),
                                                 ("memory", cur.pressure_memory),
                                                 ("io", cur.pressure_io)) if p is not None}
    if not stalls:
        return CheckResult("pressure", None, "not available", "kernel without PSI")
    name, worst = max(stalls.items(), key=lambda kv: kv[1])
    rec = (f"pressure: {name} some avg60 at {worst:.1f}% means tasks are stalling; give the "
           f"critical tier more {name} protection or squeeze the background tier"
           if worst >= 10.0 else None)
    return CheckResult("pressure", linear(worst, 10.0, PRESSURE_ZERO),
                       f"{name} {worst:.1f}%", "worst some avg60", rec,
                       {"resource": name, "some_avg60_percent": worst})


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What systemd says of one unit the health checks watch."""

    unit: str
    load_state: str | None  # None: asking failed (error says why)
    active_state: str | None
    restarts: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceStates:
    units: tuple[ServiceState, ...] = ()
    unavailable: str | None = None  # why systemd could not be asked at all


def check_services(states: ServiceStates) -> CheckResult:
    if states.unavailable is not None:
        return CheckResult("services", None, "not available", states.unavailable)
    scores, details, recs = [], [], []
    for s in states.units:
        unit = s.unit
        if s.error is not None:
            details.append(f"{unit}: {s.error}")
            continue
        if s.load_state == "not-found":
            details.append(f"{unit}: not installed")
            continue
        state, restarts = str(s.active_state), s.restarts
        score = {"active": 1.0, "reloading": 0.8, "activating": 0.5,
                 "deactivating": 0.3}.get(state, 0.0)
        score = max(0.0, score - 0.1 * min(restarts, 5))
        scores.append(score)
        details.append(f"{unit}: {state}, {restarts} restarts")
        if state != "active":
            recs.append(f"{unit} is {state}: 'journalctl -u {unit}' shows why; "
                        "'taucg recovery' shows its recovery state")
        elif restarts:
            recs.append(f"{unit} restarted {restarts} times: it is crashing; "
                        f"see 'journalctl -u {unit}'")
    if not scores:
        return CheckResult("services", None, "none installed", "; ".join(details))
    return CheckResult("services", sum(scores) / len(scores),
                       f"{sum(1 for s in scores if s == 1.0)}/{len(scores)} healthy",
                       "; ".join(details), " / ".join(recs) or None,
                       {"healthy": sum(1 for s in scores if s == 1.0),
                        "installed": len(scores)})


def watched_services(cfg: Config) -> tuple[str, ...]:
    """The units the services check looks at (full unit names)."""
    return tuple(unit_name(u) for u in cfg.health_checking.service_health_checks)


def combine(checks: list[CheckResult], weights: Mapping[str, float], threshold: float
            ) -> Health:
    counted = [(c.score, weights.get(c.name, 0.0)) for c in checks if c.score is not None]
    total_w = sum(w for _, w in counted)
    score = sum(s * w for s, w in counted) / total_w if total_w > 0 else 1.0
    return Health(score, threshold, tuple(checks), dict(weights))


async def assess(cfg: Config, prev: SystemSample, cur: SystemSample,
                 services: ServiceStates | None = None,
                 disks: Mapping[str, float] | None = None) -> Health:
    """The configured checks over two system samples (the CPU check needs
    the interval between them) and the watched services' states, which the
    caller asks systemd for (None: no services check)."""
    hc = cfg.health_checking
    rm = cfg.resource_monitoring
    checks: list[CheckResult] = []
    wanted = set(hc.system_health_checks)
    if "cpu_usage" in wanted:
        checks.append(check_cpu(prev, cur, rm.cpu_threshold_percent))
    if "memory_usage" in wanted:
        checks.append(check_memory(cur, rm.memory_threshold_percent))
    if "disk_usage" in wanted:
        checks.append(check_disk(rm.disk_threshold_percent, disks))
    # The seed's switches: off, the check is not run at all.
    if "network_connectivity" in wanted and rm.network_monitoring:
        checks.append(check_network())
    if "temperature" in wanted and rm.temperature_monitoring:
        checks.append(check_temperature())
    if "pressure" in wanted:
        checks.append(check_pressure(cur))
    if hc.service_health_checks and services is not None:
        checks.append(check_services(services))
    return combine(checks, dict(hc.weights), hc.health_score_threshold)
