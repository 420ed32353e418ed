"""Line numbers for TOML keys.

tomllib gives values but not positions. Error messages are far more useful
with a line, so this scans the text for table headers and ``key =`` lines and
maps each key path to the line that set it. It is best effort: a key inside
an inline table maps to the line of its enclosing key.
"""

from __future__ import annotations

import re

KeyPath = tuple[str | int, ...]

_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_PART)


def split_dotted(text: str) -> tuple[str, ...]:
    parts: list[str] = []
    for m in _PART_RE.finditer(text):
        raw = m.group(0)
        if raw.startswith('"'):
            parts.append(raw[1:-1].encode().decode("unicode_escape"))
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return tuple(parts)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Maps key paths (array-of-table entries indexed from 0) to 1-based lines."""
    lines: dict[KeyPath, int] = {}
    prefix: KeyPath = ()
    array_counts: dict[tuple[str, ...], int] = {}
    in_multiline: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        m = _ARRAY_HEADER.match(line)
        if m:
            table = split_dotted(m.group(1))
            idx = array_counts.get(table, -1) + 1
            array_counts[table] = idx
            prefix = (*table, idx)
            lines.setdefault(table, lineno)
            lines[prefix] = lineno
            continue
        m = _TABLE_HEADER.match(line)
        if m:
            prefix = split_dotted(m.group(1))
            lines.setdefault(prefix, lineno)
            continue
        m = _KEY_LINE.match(line)
        if m:
            path = (*prefix, *split_dotted(m.group(1)))
            lines.setdefault(path, lineno)
            rest = line[m.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
    return lines


def line_for(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    for cut in range(len(path), 0, -1):
        found = lines.get(path[:cut])
        if found is not None:
            return found
    return None
