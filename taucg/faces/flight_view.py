"""How a flight record is shown: the compact timeline of `taucg recovery
history --detail`, and the object the JSON document and the socket API
carry (``when`` turns epoch seconds into the caller's time form: RFC 3339
for the CLI's JSON, the epoch float for the API)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from taucg.faces.render import Bytes, Cell, Number, Percent, Seconds
from taucg.model.flight import FIELDS, FlightRecord

TIMELINE_ROWS = 30  # at most, evenly spread, the first and last always shown


def cpu_percent(rec: FlightRecord) -> list[float | None]:
    """The unit's CPU use between each sample and the one before, percent of one CPU."""
    t, cpu = rec.column("time"), rec.column("cpu_seconds")
    out: list[float | None] = [None]
    for i in range(1, len(t)):
        a, b, ta, tb = cpu[i - 1], cpu[i], t[i - 1], t[i]
        ok = None not in (a, b, ta, tb) and tb > ta and b >= a  # type: ignore[operator]
        out.append(100 * (b - a) / (tb - ta) if ok else None)  # type: ignore[operator]
    return out


def record_object(rec: FlightRecord, when: Callable[[float | None], Any]) -> dict[str, Any]:
    """The record as JSON-able data: summary, samples (every field, oldest
    first) and the governor's actions in its span."""
    summary = rec.summary()
    summary["first_at"] = when(summary["first_at"])
    cpu = cpu_percent(rec)
    samples = []
    for i, p in enumerate(rec.points):
        row: dict[str, Any] = {"sampled_at": when(p[0])}
        for name, value in zip(FIELDS[1:], p[1:], strict=True):
            row[name] = None if math.isnan(value) else value
        row["cpu_percent"] = cpu[i]
        samples.append(row)
    actions = [{**{k: v for k, v in a.items() if k != "time"}, "acted_at": when(a.get("time"))}
               for a in rec.actions]
    return {"unit": rec.unit, "frozen_at": when(rec.frozen_at), "minutes": rec.minutes,
            "summary": summary, "samples": samples, "governor_actions": actions}


TIMELINE_HEADERS = ["BEFORE", "CPU", "MEMORY", "MAX", "MAX HITS", "OOM KILLS", "TASKS",
                    "MEM PSI", "SYS AVAIL", "SYS MEM PSI"]


def _picked(n: int, most: int = TIMELINE_ROWS) -> list[int]:
    if n <= most:
        return list(range(n))
    step = (n - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def timeline(rec: FlightRecord) -> list[list[Cell]]:
    """The minutes before the crash, one row per shown sample."""
    cpu = cpu_percent(rec)
    col = {name: rec.column(name) for name in FIELDS}
    rows: list[list[Cell]] = []
    for i in _picked(len(rec.points)):
        t = col["time"][i]
        before = None if t is None else rec.frozen_at - t
        kills = col["events_oom_kill"][i]
        slice_kills = col["slice_oom_kill"][i]
        rows.append([
            f"-{before:.0f}s" if before is not None and before >= 0.5 else "at failure",
            Percent(cpu[i]), Bytes(col["memory_bytes"][i]), Bytes(col["memory_max_bytes"][i]),
            Number(col["events_max"][i], 0),
            f"{_int(kills)} (slice {_int(slice_kills)})",
            Number(col["tasks"][i], 0), Percent(col["memory_pressure_percent"][i]),
            Bytes(col["system_available_bytes"][i]),
            Percent(col["system_memory_pressure_percent"][i])])
    return rows


def _int(v: float | None) -> str:
    return "-" if v is None else str(int(v))


def summary_line(rec: FlightRecord) -> str:
    s = rec.summary()
    span = Seconds(rec.frozen_at - s["first_at"]) if s["first_at"] is not None else None
    parts = [f"{s['samples']} samples"]
    if span is not None and span.value is not None:
        parts.append(f"over {span.value:.0f}s")
    if s["memory_growth_bytes"] is not None:
        from taucg.config.values import human_bytes

        sign = "+" if s["memory_growth_bytes"] >= 0 else "-"
        parts.append(f"memory {human_bytes(s['memory_first_bytes'])} -> "
                     f"{human_bytes(s['memory_last_bytes'])} "
                     f"({sign}{human_bytes(abs(s['memory_growth_bytes']))})")
    if s["oom_kills"] or s["slice_oom_kills"]:
        parts.append(f"OOM kills: unit {s['oom_kills'] or 0}, slice {s['slice_oom_kills'] or 0}")
    if s["governor_actions"]:
        parts.append(f"{s['governor_actions']} governor actions")
    return ", ".join(parts)
