"""Read-only API methods added for the HTTP face: the tiers with their
limits and governed values, the processes, the crash history and the
names of the metric series. They answer on the Unix socket too, and the
REST routes (faces/http/rest.py) call them and the other read methods of
daemon_api, so both faces share one implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from taucg.config.schema import TIER_NAMES
from taucg.faces.socket_api import ApiError, Method, Peer, param
from taucg.model.tiers import slice_name

if TYPE_CHECKING:
    from taucg.config.schema import Config
    from taucg.faces.daemon_state import DaemonState
    from taucg.model.monitor import MetricSeries
    from taucg.readers.samples import CgroupSample, Pressure, ProcessSample


class ReadFace(Protocol):
    """What these methods need of the daemon."""

    cfg: Config
    state: DaemonState

    @property
    def history(self) -> MetricSeries: ...

    @property
    def processes(self) -> Sequence[ProcessSample]: ...


def _limit(v: object) -> int | None:
    return v if isinstance(v, int) else None  # "max": no limit


def _pressure(p: Pressure | None) -> dict[str, Any] | None:
    if p is None:
        return None
    full = None if p.full is None else {"avg10": p.full.avg10, "avg60": p.full.avg60,
                                        "total_seconds": p.full.total_seconds}
    return {"some": {"avg10": p.some.avg10, "avg60": p.some.avg60,
                     "total_seconds": p.some.total_seconds}, "full": full}


def _tier(state: DaemonState, cfg: Config, tier: str) -> dict[str, Any]:
    from dataclasses import asdict

    from taucg.faces.status import configured

    t = state.last
    usage = None if t is None else t.tiers.get(tier)
    # The tick's samples are keyed by tier; a tier whose slice is not
    # started has none.
    sample: CgroupSample | None = None if t is None else t.cgroups.get(tier)
    cpu_max = None if t is None else t.cpu_max.get(tier)
    members: Mapping[str, Any] = {} if t is None else t.members.get(tier, {})
    policy = cfg.tiers.get(tier)
    gov = state.governor
    governed = {} if gov is None else dict(gov.settings.get(tier, {}))
    return {
        "tier": tier, "slice": slice_name(tier),
        "cgroup": None if sample is None else sample.path, "started": sample is not None,
        "usage": None if usage is None else asdict(usage),
        "memory": None if sample is None else {
            "current_bytes": sample.memory_current, "high_bytes": _limit(sample.memory_high),
            "max_bytes": _limit(sample.memory_max)},
        "cpu_quota_percent": None if cpu_max is None else cpu_max.percent,
        "pressure": None if sample is None else {
            "cpu": _pressure(sample.pressure_cpu), "memory": _pressure(sample.pressure_memory),
            "io": _pressure(sample.pressure_io)},
        "frozen": None if sample is None else sample.frozen,
        "configured": {} if policy is None else configured(
            {k: v for k, v in _policy_items(policy) if k != "units"}),
        "governed": configured(governed),
        "governor_frozen": gov is not None and tier in gov.frozen,
        "units": sorted(members),
    }


def _policy_items(policy: Any) -> list[tuple[str, Any]]:
    from dataclasses import fields

    return [(f.name, getattr(policy, f.name)) for f in fields(policy)]


def _process_rows(procs: Sequence[ProcessSample], tier: str | None,
                  unit: str | None, count: int) -> list[dict[str, Any]]:
    from taucg.config.values import unit_name
    from taucg.model.tiers import tier_of
    from taucg.readers.procfs import ProcessGone, owner_uid, read_cgroup, unit_of_cgroup, user_name

    units = None if unit is None else {unit, unit_name(unit)}
    rows = []
    for r in procs:
        try:
            cg = read_cgroup(r.pid)
            uid = owner_uid(r.pid)
        except (ProcessGone, OSError):
            continue  # gone since the sweep, or unreadable: not this answer's
        t = tier_of(cg)
        u = unit_of_cgroup(cg)
        if (tier is not None and t != tier) or (units is not None and u not in units):
            continue
        rows.append({"pid": r.pid, "ppid": r.ppid, "user": user_name(uid), "state": r.state,
                     "threads": r.threads, "rss_bytes": r.rss,
                     "cpu_seconds": round(r.cpu_seconds, 2), "tier": t, "unit": u,
                     "cgroup": cg, "comm": r.comm})
        if len(rows) >= count:
            break
    return rows


def _crash_history(cfg: Config, unit: str | None, count: int) -> dict[str, Any]:
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError

    path = history_path(cfg)
    if not path.exists():
        return {"path": str(path), "units": [], "events": []}
    try:
        db = CrashHistory(path)
        try:
            stats = db.stats(unit)
            events = db.events(unit, limit=count)
        finally:
            db.close()
    except StoreError as exc:
        raise ApiError("unavailable", str(exc)) from None
    return {"path": str(path),
            "units": [{"unit": s.unit, "failures": s.failures, "first": s.first,
                       "last": s.last, "last_result": s.last_result,
                       "mtbf_seconds": s.mtbf_seconds} for s in stats],
            "events": [{"time": e.time, "unit": e.unit, "result": e.result,
                        "exit_code": e.exit_code, "signal": e.signal, "attempt": e.attempt,
                        "action": e.action, "delay_seconds": e.delay, "outcome": e.outcome}
                       for e in events]}


def _count(params: Mapping[str, Any], default: int, most: int) -> int:
    count = param(params, "count", int, default)
    if not 1 <= count <= most:
        raise ApiError("bad_params", f"count must be between 1 and {most}")
    return int(count)


def _optional(params: Mapping[str, Any], name: str) -> str | None:
    if params.get(name) is None:
        return None
    return str(param(params, name, str))


def number_param(params: Mapping[str, Any], name: str, default: float) -> float:
    """An optional finite number (int or float, not bool), or an ApiError naming it."""
    import math

    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError("bad_params", f"parameter {name!r} must be a finite number, "
                                      f"got {value!r}")
    return float(value)


def read_methods(d: ReadFace) -> dict[str, Method]:
    async def tiers(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        s = d.state
        t = s.last
        return {"time": None if t is None else t.time, "sweeps": s.sweeps,
                "tiers": [_tier(s, d.cfg, tier) for tier in TIER_NAMES]}

    async def processes(_peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        tier = _optional(params, "tier")
        if tier is not None and tier not in TIER_NAMES:
            raise ApiError("bad_params", f"tier must be one of {', '.join(TIER_NAMES)}")
        unit = _optional(params, "unit")
        count = _count(params, 1000, 100_000)
        t = d.state.last
        # /proc/PID/cgroup for each process of the last sweep: off the loop.
        rows = await asyncio.to_thread(_process_rows, d.processes, tier, unit, count)
        return {"time": None if t is None else t.time, "processes": rows}

    async def recovery_history(_peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        from taucg.config.values import unit_name

        unit = _optional(params, "unit")
        count = _count(params, 50, 1000)
        wanted = unit_name(unit) if unit else None
        return await asyncio.to_thread(_crash_history, d.cfg, wanted, count)

    async def metric_names(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        return {"metrics": sorted(d.history.metrics())}

    return {
        "tiers": Method(tiers, help="each tier: usage, memory limits, pressure, governed values"),
        "processes": Method(processes, help="the last sweep's processes, by tier or unit"),
        "recovery.history": Method(recovery_history, help="crash events and MTBF per unit"),
        "history.metrics": Method(metric_names, help="the names of the metric series"),
    }
