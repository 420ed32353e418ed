"""The forecasts as shown: the socket API's `forecasts` answer, the lines
`taucg status` prints and its JSON items, and the one reader the model's
forecaster is handed (a leaking process's tier)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taucg.faces.render import utc

if TYPE_CHECKING:
    from taucg.config.schema import Config
    from taucg.faces.daemon_state import DaemonState


def process_tier(pid: int) -> str | None:
    """The tier a process runs in, or None (outside the tiers, or gone).
    Asked only for leak suspects, so a few reads per tick at most."""
    from taucg.model.tiers import tier_of
    from taucg.readers.procfs import ProcessGone, read_cgroup

    try:
        return tier_of(read_cgroup(pid))
    except (ProcessGone, OSError):
        return None


def api_answer(cfg: Config, state: DaemonState, wall_minus_monotonic: float
               ) -> dict[str, Any]:
    """The socket API's `forecasts`: the settings, the last tick's forecasts
    (soonest first, epoch floats) and which forecast alerts are raised."""
    f = cfg.forecast
    return {"enabled": f.enabled, "horizon_seconds": f.horizon_minutes * 60,
            "window_seconds": f.window_seconds, "min_points": f.min_points,
            "min_quality": f.min_quality,
            "forecasts": [fc.to_dict(wall_minus_monotonic) for fc in state.forecasts],
            "alerting": [m for m in state.active if m.startswith("forecast ")]}


def document_item(fc: Mapping[str, Any]) -> dict[str, Any]:
    """One API forecast as the CLI's JSON shows it: RFC 3339 times in
    `…_at`, durations in `…_seconds`."""
    return {"resource": fc["resource"], "subject": fc["subject"], "tier": fc["tier"],
            "limit": fc["limit"], "limit_bytes": fc["limit_bytes"],
            "current_bytes": fc["current_bytes"],
            "growth_bytes_per_second": fc["bytes_per_second"], "quality": fc["quality"],
            "points": fc["points"], "window_seconds": fc["window_seconds"],
            "time_to_limit_seconds": fc["time_to_limit_seconds"],
            "sampled_at": utc(fc["time"]), "reaches_at": utc(fc["reaches_at"]),
            "message": fc["message"]}


def from_daemon(cfg: Config, timeout: float = 2.0) -> list[dict[str, Any]] | None:
    """The running daemon's forecasts as JSON items, or None when no daemon
    answers at once (`taucg status` works without one)."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    try:
        answer = call(cfg.daemon.socket_path, "forecasts", timeout=timeout)
    except (DaemonNotRunning, DaemonError, OSError, ValueError):
        return None
    if not isinstance(answer, dict):
        return None
    return [document_item(fc) for fc in answer.get("forecasts", [])]
