"""Output for the CLI: tables on a terminal, tab-separated text when piped,
JSON on request. Commands build rows and a JSON object; this picks the form.

The JSON contract (README "JSON output"): one document per command, an
object whose first key is ``schema`` ("taucg.<command>/1", described by
taucg/faces/schemas/<command>.schema.json); points in time are RFC 3339
UTC strings in fields named ``…_at``; durations are numbers in
``…_seconds``; every other unit is in the field's name too.

Rows hold text or typed cells (Bytes, Seconds, Percent, When, Number), so
``--raw`` can print the plain numbers instead of the human forms."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORMATS = ("auto", "table", "plain", "json")
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Output:
    """What -o/--format, --no-legend and --raw asked for."""

    kind: str = "auto"
    legend: bool = True
    raw: bool = False

    @property
    def resolved(self) -> str:
        if self.kind == "auto":
            return "table" if sys.stdout.isatty() else "plain"
        return self.kind


def resolve_format(fmt: Output | str) -> str:
    return (fmt if isinstance(fmt, Output) else Output(fmt)).resolved


# ----------------------------------------------------------------- cells ---


@dataclass(frozen=True, slots=True)
class Bytes:
    value: float | None
    suffix: str = ""  # "/s" for a rate


@dataclass(frozen=True, slots=True)
class Seconds:
    value: float | None
    digits: int = 0


@dataclass(frozen=True, slots=True)
class Percent:
    value: float | None


@dataclass(frozen=True, slots=True)
class When:
    """A point in time (epoch seconds): local time for people, epoch with --raw."""

    value: float | None


@dataclass(frozen=True, slots=True)
class Number:
    value: float | None
    digits: int = 2


Cell = str | Bytes | Seconds | Percent | When | Number | tuple["Cell", ...]


def _plain_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}" if abs(v) < 1e15 else str(v)


def cell_text(cell: Cell, raw: bool = False) -> str:
    """A cell's text; a tuple of cells is one cell written as its parts in a row."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, tuple):
        return "".join(cell_text(c, raw) for c in cell)
    v = cell.value
    if v is None:
        return "-"
    if raw:
        if isinstance(cell, Bytes):
            return str(int(v))
        if isinstance(cell, When):
            return f"{v:.3f}".rstrip("0").rstrip(".")
        return _plain_number(v)
    if isinstance(cell, Bytes):
        from taucg.config.values import human_bytes

        return human_bytes(v) + cell.suffix
    if isinstance(cell, Seconds):
        return f"{v:.{cell.digits}f}s"
    if isinstance(cell, Percent):
        return f"{v:.1f}%"
    if isinstance(cell, When):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    return f"{v:.{cell.digits}f}"


# ------------------------------------------------------------------ text ---


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None,
          legend: bool = True) -> str:
    widths = [len(h) for h in headers] if legend else [0] * len(headers)
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    out = []
    if legend:
        if title:
            out.append(title)
        out.append(line(headers))
        out.append("  ".join("─" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def plain(rows: Sequence[Sequence[str]], headers: Sequence[str] | None = None) -> str:
    """Tab-separated; the header line first unless headers is None (--no-legend)."""
    lines = [] if headers is None else ["\t".join(headers)]
    lines.extend("\t".join(r) for r in rows)
    return "\n".join(lines)


# ------------------------------------------------------------------ JSON ---


def utc(epoch: float | None) -> str | None:
    """An RFC 3339 UTC time, to the millisecond: the one time format of the JSON."""
    if epoch is None:
        return None
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _strict(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, never invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def document(schema: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document of a command: its schema name first, then the data."""
    return {"schema": f"taucg.{schema}/{SCHEMA_VERSION}", **_strict(data)}


def to_json(doc: Mapping[str, Any], *, line: bool = False) -> str:
    if line:
        return json.dumps(doc, allow_nan=False, default=str)
    return json.dumps(doc, indent=2, allow_nan=False, default=str)


def emit_json(schema: str, data: Mapping[str, Any], *, line: bool = False) -> None:
    """Prints one document (``line``: on one line, for --watch streams)."""
    print(to_json(document(schema, data), line=line), flush=True)


def emit(fmt: Output | str, headers: Sequence[str], rows: Sequence[Sequence[Cell]],
         data: Mapping[str, Any] | None, title: str | None = None, *,
         schema: str | None = None) -> None:
    """Prints rows, or data as the ``schema`` document, in the resolved format."""
    out = fmt if isinstance(fmt, Output) else Output(fmt)
    kind = out.resolved
    if kind == "json":
        if schema is None or data is None:
            raise ValueError("a JSON document needs its schema and data")
        emit_json(schema, data)
        return
    text = [[cell_text(c, out.raw) for c in r] for r in rows]
    shown = (table(headers, text, title, out.legend) if kind == "table"
             else plain(text, headers if out.legend else None))
    if shown:
        print(shown)
