"""Output for the CLI: tables on a terminal, tab-separated text when piped,
JSON on request. Commands build rows and a JSON object; this picks the form."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

FORMATS = ("auto", "table", "plain", "json")


def resolve_format(fmt: str) -> str:
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else "plain"
    return fmt


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    out = []
    if title:
        out.append(title)
    out.append(line(headers))
    out.append("  ".join("─" * w for w in widths))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def plain(rows: Sequence[Sequence[str]]) -> str:
    return "\n".join("\t".join(r) for r in rows)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def emit(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[str]], data: Any,
         title: str | None = None) -> None:
    """Prints rows or data in the resolved format."""
    kind = resolve_format(fmt)
    if kind == "json":
        print(to_json(data))
    elif kind == "table":
        print(table(headers, rows, title))
    else:
        print(plain(rows))
