"""`taucg recovery history --detail`: the flight records of the chosen
crashes (each unit's newest one that has a record, or --event ID), as a
compact timeline or in the JSON document's ``details``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from taucg.faces.cli.common import UserError
from taucg.faces.flight_view import TIMELINE_HEADERS, record_object, summary_line, timeline
from taucg.faces.render import Output, When, cell_text, emit, utc
from taucg.model.flight import FlightRecord

if TYPE_CHECKING:
    from taucg.actors.crash_history import CrashEvent, CrashHistory


def chosen(events: Sequence[CrashEvent], event_id: int | None) -> list[CrashEvent]:
    if event_id is not None:
        picked = [e for e in events if e.id == event_id]
        if not picked:
            raise UserError(f"no event {event_id} among the latest events listed; see the "
                            "ids in 'taucg recovery history --format json'")
        return picked
    newest: dict[str, CrashEvent] = {}
    for e in events:  # oldest first: the last one seen per unit is its newest
        if e.flight_bytes:
            newest[e.unit] = e
    return list(newest.values())


def _record(history: CrashHistory, e: CrashEvent) -> FlightRecord | None:
    from taucg.actors.sqlite_db import StoreError

    try:
        blob = history.flight(e.id or 0)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if blob is None:
        return None
    try:
        return FlightRecord.decode(blob)
    except ValueError as exc:
        raise UserError(f"event {e.id}'s flight record cannot be read: {exc}") from None


def details(history: CrashHistory, events: Sequence[CrashEvent], event_id: int | None
            ) -> list[dict[str, Any]]:
    out = []
    for e in chosen(events, event_id):
        rec = _record(history, e)
        out.append({"event_id": e.id, "unit": e.unit, "failed_at": utc(e.time),
                    "result": e.result, "drill": e.drill, "flight_bytes": e.flight_bytes,
                    "flight": None if rec is None else record_object(rec, utc)})
    return out


def show(fmt: Output, history: CrashHistory, events: Sequence[CrashEvent],
         event_id: int | None) -> None:
    picked = chosen(events, event_id)
    if not picked:
        click.echo("\nno flight records yet: the daemon records them ([recovery] "
                   "flight_recorder_minutes) for the units it watches")
        return
    for e in picked:
        rec = _record(history, e)
        head = (f"\n{e.unit} failed {cell_text(When(e.time))} ({e.result}"
                f"{', a drill' if e.drill else ''}), event {e.id}")
        if rec is None:
            click.echo(f"{head}: no flight record")
            continue
        click.echo(f"{head}; flight record {e.flight_bytes} bytes: {summary_line(rec)}")
        emit(fmt, TIMELINE_HEADERS, timeline(rec), None)
        for a in rec.actions:
            click.echo(f"  governor {cell_text(When(a.get('time')))}: {a.get('kind')} "
                       f"{a.get('tier')} {a.get('key')} {a.get('before')} -> {a.get('after')}")
