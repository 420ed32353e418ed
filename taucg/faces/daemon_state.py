"""The daemon's published state: one immutable snapshot, replaced whole
by the worker that changed something and read whole by the socket API and
the metrics thread. A reader never sees half an update, and nothing
outside the daemon reaches into its workers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from taucg.model.monitor import TierUsage

if TYPE_CHECKING:
    from taucg.actors.recovery_watcher import RecoveryView
    from taucg.config.schema import Config
    from taucg.model.custom_metrics import CustomValue
    from taucg.model.forecast import Forecast
    from taucg.model.health import Health, ServiceState
    from taucg.model.notify import NotifierView
    from taucg.readers.cgroupfs import CpuMax, MemberUsage
    from taucg.readers.samples import CgroupSample, CpuTimes, MemInfo

ALERTS_KEPT = 200


@dataclass(frozen=True, slots=True)
class Tick:
    """The last sweep."""

    time: float  # wall clock
    seconds: float  # what the sweep cost
    processes: int
    cpu_percent: float | None
    memory_percent: float | None
    tiers: Mapping[str, TierUsage]
    # The raw counters the metrics export (rate() works on them, not on
    # our per-tick rates): each started tier's slice sample and cpu.max,
    # the units inside each slice, and the machine's CPU times and memory.
    cgroups: Mapping[str, CgroupSample] = field(default_factory=dict)
    cpu_max: Mapping[str, CpuMax] = field(default_factory=dict)
    members: Mapping[str, Mapping[str, MemberUsage]] = field(default_factory=dict)
    cpu_times: CpuTimes | None = None
    memory: MemInfo | None = None


@dataclass(frozen=True, slots=True)
class GovernorView:
    """The governor at one moment: what it measured and what it decided."""

    protect: tuple[str, ...]
    targets: Mapping[str, float]
    stall_percent: Mapping[str, float]
    celsius: float | None
    pooled: bool
    settings: Mapping[str, Mapping[str, Any]]  # tier -> key -> governed value
    frozen: frozenset[str]
    actions: tuple[Mapping[str, Any], ...]  # the most recent, oldest first
    actions_total: Mapping[str, int]  # kind -> count since start

    def to_dict(self, cfg: Config, count: int = 20) -> dict[str, Any]:
        from taucg.faces.status import configured
        from taucg.model.governor import governed_tiers

        tiers = {}
        for tier in governed_tiers(self.protect):
            policy = cfg.tiers[tier]
            governed = self.settings.get(tier, {})
            mine = {k: getattr(policy, k) for k in governed if getattr(policy, k) is not None}
            tiers[tier] = {
                "governed": {k: _text(v) for k, v in governed.items()},
                "configured": {k: _text(v) for k, v in mine.items()},
                # The same as numbers, units in the keys (the CLI's JSON shows these).
                "governed_values": configured(governed),
                "configured_values": configured(mine),
                "frozen": tier in self.frozen}
        return {"running": True, "protect": list(self.protect), "targets": dict(self.targets),
                "stall_percent": {k: round(v, 2) for k, v in self.stall_percent.items()},
                "celsius": self.celsius, "pooled": self.pooled, "tiers": tiers,
                "actions": [dict(a) for a in self.actions[-count:]],
                "actions_total": dict(self.actions_total)}


def _text(value: Any) -> str:
    return f"{value:g}%" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class DaemonState:
    pid: int
    version: str
    started: float
    config_file: str | None
    generation: int
    loaded_at: float
    interval_seconds: int
    workers: tuple[str, ...] = ()
    sweeps: int = 0
    sweep_seconds_total: float = 0.0
    last: Tick | None = None
    placements: int = 0
    alerts: tuple[Mapping[str, Any], ...] = ()  # the most recent, oldest first
    health: Health | None = None
    recovery: RecoveryView | None = None
    metrics_address: str | None = None
    active: tuple[str, ...] = field(default=())  # metrics whose last alert raised
    interval_in_use: float | None = None  # smart sampling: the sweep interval now
    governor: GovernorView | None = None
    units: Mapping[str, ServiceState] = field(default_factory=dict)  # members' systemd state
    forecasts: tuple[Forecast, ...] = ()  # the last tick's, soonest first
    custom: tuple[CustomValue, ...] = ()  # [[metrics.custom]] at the last tick
    notifiers: tuple[NotifierView, ...] = ()  # [[notifiers]]' counts since start

    def with_alerts(self, new: list[Mapping[str, Any]]) -> DaemonState:
        from dataclasses import replace

        alerts = (self.alerts + tuple(new))[-ALERTS_KEPT:]
        on: dict[str, bool] = {}
        for a in alerts:
            on[str(a["metric"])] = a["state"] == "raised"
        return replace(self, alerts=alerts, active=tuple(m for m, up in on.items() if up))

    def status(self) -> dict[str, Any]:
        t = self.last
        if t is None:
            return {"sweeps": 0}
        return {"sweeps": self.sweeps, "time": t.time, "sweep_seconds": t.seconds,
                "processes": t.processes, "cpu_percent": t.cpu_percent,
                "memory_percent": t.memory_percent,
                "tiers": {k: asdict(v) for k, v in t.tiers.items()},
                "placements": self.placements}
