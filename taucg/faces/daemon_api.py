"""The daemon's socket API methods. Reads come from the published
DaemonState and the monitor's metric series; mutations go through the
daemon's own actions (reload, apply, safe mode, state blobs), behind
SO_PEERCRED in socket_api."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from taucg import __version__
from taucg.actors import records
from taucg.faces import logs
from taucg.faces.api_reads import number_param, read_methods
from taucg.faces.socket_api import ApiError, Method, Peer, param
from taucg.model.tiers import slice_name

if TYPE_CHECKING:
    from taucg.actors.systemd_dbus import Systemd
    from taucg.config.schema import Config
    from taucg.faces.daemon_state import DaemonState
    from taucg.faces.subscriptions import Hub
    from taucg.model.monitor import MetricSeries
    from taucg.readers.samples import ProcessSample


class DaemonFace(Protocol):
    """What the API needs of the daemon, and nothing more."""

    cfg: Config
    state: DaemonState
    wall_minus_monotonic: float
    hub: Hub

    @property
    def history(self) -> MetricSeries: ...

    @property
    def processes(self) -> Sequence[ProcessSample]: ...

    async def reload(self) -> dict[str, Any]: ...

    async def systemd(self) -> Systemd: ...

    async def systemd_now(self, timeout: float = 10.0) -> Systemd: ...

    def safe_mode_left(self) -> None: ...


async def _bus(d: DaemonFace) -> Systemd:
    """systemd for a mutation, or an ApiError naming the cause within 10 s."""
    from taucg.actors.systemd_dbus import SystemdError, SystemdUnavailable

    try:
        return await d.systemd_now()
    except (SystemdUnavailable, SystemdError) as exc:
        raise ApiError("unavailable", str(exc)) from None


def methods(d: DaemonFace) -> dict[str, Method]:
    async def ping(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        s = d.state
        return {"pid": os.getpid(), "version": __version__, "started": s.started,
                "uptime_seconds": round(time.time() - s.started, 1),
                "config": s.config_file, "generation": s.generation,
                "loaded_at": s.loaded_at, "workers": sorted(s.workers),
                "sweeps": s.sweeps, "interval_seconds": s.interval_seconds,
                "interval_in_use_seconds": s.interval_in_use,
                "subscribers": len(d.hub), "subscribers_dropped": d.hub.dropped_total}

    async def status(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        return d.state.status()

    async def health(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any] | None:
        h = d.state.health
        return h.to_dict() if h else None

    async def alerts(_peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        count = param(params, "count", int, 50)
        if not 1 <= count <= 1000:
            raise ApiError("bad_params", "count must be between 1 and 1000")
        s = d.state
        return {"active": list(s.active), "recent": [dict(a) for a in s.alerts[-count:]]}

    async def history(_peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        wanted = param(params, "metric", str, "")
        # A range of wall-clock times (epoch seconds), either end open.
        since = number_param(params, "since", float("-inf"))
        until = number_param(params, "until", float("inf"))
        h = d.history
        window = d.cfg.resource_monitoring.trend_window_seconds
        offset = d.wall_minus_monotonic
        out = {}
        for metric in h.metrics():
            if wanted and metric != wanted:
                continue
            series = [(round(t + offset, 3), v) for t, v in h.series(metric)
                      if since <= t + offset <= until]
            out[metric] = {"points": series, "trend_per_second": h.trend(metric, window)}
        if wanted and not out:
            raise ApiError("not_found", f"no history for {wanted!r}; metrics: "
                                        f"{', '.join(h.metrics()) or 'none yet'}")
        return {"window_seconds": window, "metrics": out}

    async def log_stats(_peer: Peer, _params: Mapping[str, Any]) -> list[dict[str, Any]]:
        # Files are read on a thread: a large log must not stall other clients.
        paths = logs.log_paths(d.cfg.logging)
        return await asyncio.to_thread(
            lambda: [logs.stats(name, path).to_dict() for name, path in paths.items()])

    async def log_recent(_peer: Peer, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        count = param(params, "count", int, 20)
        level = param(params, "level", str, "debug")
        which = param(params, "log", str, "main")
        if count < 1 or count > 100_000:
            raise ApiError("bad_params", "count must be between 1 and 100000")
        if level not in records.LEVELS:
            raise ApiError("bad_params", f"level must be one of {', '.join(records.LEVELS)}")
        paths = logs.log_paths(d.cfg.logging)
        if which not in paths:
            raise ApiError("bad_params", f"log must be one of {', '.join(paths)}")
        return await asyncio.to_thread(logs.recent, paths[which], count, level)

    async def governor(_peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        count = param(params, "count", int, 20)
        if not 1 <= count <= 500:
            raise ApiError("bad_params", "count must be between 1 and 500")
        view = d.state.governor
        if view is None:
            g = d.cfg.governor
            why = ("[governor] enabled = false and temperature_monitoring = false"
                   if not g.enabled and not d.cfg.resource_monitoring.temperature_monitoring
                   else "not started (it needs root and systemd)")
            return {"running": False, "why": why}
        return view.to_dict(d.cfg, count)

    async def recovery_state(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        view = d.state.recovery
        return {"running": False} if view is None else view.to_dict()

    async def reload(_peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        return await d.reload()

    async def apply(peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        from taucg.actors import apply as ap

        restart_moved = param(params, "restart_moved", bool, False)
        view = d.state.governor
        held = {} if view is None else {slice_name(tier): frozenset(keys)
                                        for tier, keys in view.settings.items() if keys}
        try:
            done = await ap.apply_config(d.cfg, await _bus(d), restart_moved=restart_moved,
                                         who=peer.describe(), held=held)
        except ap.PreflightError as exc:
            raise ApiError("preflight", "; ".join(str(p) for p in exc.problems)) from None
        except ap.ApplyError as exc:
            raise ApiError("apply_failed", str(exc)) from None
        return done.to_dict()

    async def leave_safe_mode(_peer: Peer, _params: Mapping[str, Any]) -> list[str]:
        from taucg.actors.recovery_watcher import leave_safe_mode as thaw

        thawed = await thaw(await _bus(d))
        d.safe_mode_left()
        return thawed

    async def save_state(_peer: Peer, params: Mapping[str, Any]) -> str:
        from taucg.actors.recovery_state import save_blob
        from taucg.config.values import check_unit_name

        try:
            unit = check_unit_name(param(params, "unit", str))
        except ValueError as exc:
            raise ApiError("bad_params", str(exc)) from None
        source = Path(param(params, "path", str))
        if not source.is_file():
            raise ApiError("bad_params", f"{source} is not a file")
        return str(save_blob(d.cfg, unit, source))

    return {
        "ping": Method(ping, help="daemon pid, version, uptime, config"),
        "status": Method(status, help="the last sweep: system and tiers"),
        "health": Method(health, help="the last health check"),
        "alerts": Method(alerts, help="recent alerts; which are active"),
        "history": Method(history, help="metric series and trends"),
        "logs.stats": Method(log_stats, help="sizes, levels, rotations"),
        "logs.recent": Method(log_recent, help="the last N records"),
        "recovery.state": Method(recovery_state, help="watched units, safe mode"),
        "governor": Method(governor, help="the controller's pressure, settings and actions"),
        "reload": Method(reload, mutation=True, help="reload the config"),
        "apply": Method(apply, mutation=True, help="taucg apply, in the daemon"),
        "recovery.leave_safe_mode": Method(leave_safe_mode, mutation=True,
                                           help="thaw the tiers safe mode froze"),
        "recovery.save_state": Method(save_state, mutation=True,
                                      help="keep a file as a unit's state blob"),
        **read_methods(d),
    }
