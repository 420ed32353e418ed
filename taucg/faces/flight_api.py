"""The socket API's `recovery.flight`: a unit's flight record, for the CLI's
peers and the REST API. Params: ``unit`` (required); ``event`` (a crash
history id; default 0: the unit's newest crash that has a record);
``live`` (true: what the ring holds now, no crash needed). Times are
epoch seconds, as everywhere in the API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taucg.faces.flight_view import record_object
from taucg.faces.socket_api import ApiError, param
from taucg.model.flight import FlightRecord

if TYPE_CHECKING:
    from taucg.config.schema import Config
    from taucg.faces.flight_worker import FlightRecorder


def _stored(cfg: Config, unit: str, event: int) -> tuple[dict[str, Any], bytes]:
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError

    path = history_path(cfg)
    if not path.exists():
        raise ApiError("not_found", f"no flight record for {unit}: no crash history yet "
                                    f"({path})")
    try:
        history = CrashHistory(path)
        try:
            events = [e for e in history.events(unit) if e.flight_bytes
                      and event in (0, e.id)]
            if not events:
                raise ApiError("not_found", f"no flight record for {unit}"
                               + (f" in event {event}" if event else "")
                               + "; see the ids of 'taucg recovery history --format json'")
            e = events[-1]
            blob = history.flight(e.id or 0)
        finally:
            history.close()
    except StoreError as exc:
        raise ApiError("unavailable", str(exc)) from None
    if blob is None:
        raise ApiError("not_found", f"event {e.id} has no flight record")
    return ({"id": e.id, "time": e.time, "result": e.result, "drill": e.drill,
             "action": e.action, "outcome": e.outcome, "flight_bytes": e.flight_bytes}, blob)


async def flight_answer(cfg: Config, recorder: FlightRecorder, params: Mapping[str, Any]
                        ) -> dict[str, Any]:
    from taucg.config.values import check_unit_name, unit_name

    try:
        unit = unit_name(check_unit_name(param(params, "unit", str)))
    except ValueError as exc:
        raise ApiError("bad_params", str(exc)) from None
    live = param(params, "live", bool, False)
    event = param(params, "event", int, 0)
    if event < 0:
        raise ApiError("bad_params", "event must be a crash history id (or 0: the newest)")
    if live:
        rec = recorder.live(unit)
        if rec is None:
            raise ApiError("not_found", f"the flight recorder does not watch {unit}; it "
                                        "records the units recovery watches")
        return {"unit": unit, "live": True, "event": None, "ring_bytes": recorder.bound_bytes,
                "flight": record_object(rec, lambda t: t)}
    # SQLite off the loop: a slow disk must not stall other clients.
    info, blob = await asyncio.to_thread(_stored, cfg, unit, event)
    try:
        rec = FlightRecord.decode(blob)
    except ValueError as exc:
        raise ApiError("internal", f"event {info['id']}'s flight record: {exc}") from None
    return {"unit": unit, "live": False, "event": info, "flight": record_object(rec, lambda t: t)}
