"""The daemon's main log, and reading any log back.

- The main log (``log_file_path``): one JSON object per line with time,
  level, logger, message and the record's own fields; also sent to journald
  (same fields, upper-cased) where journald runs, through systemd-python's
  JournalHandler.
- Reading back: ``recent`` walks a log from its end through its rotated
  files; ``stats`` gives sizes, records per level and rotations.
"""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taucg.actors.libsystemd import module
from taucg.actors.records import (
    _RECORD_ATTRS,
    DATE_FORMAT,
    LEVELS,
    LOGGER,
    TEXT_FORMAT,
    rotating_handler,
)
from taucg.actors.shared_log import rotated_files
from taucg.config.schema import Logging

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


# ------------------------------------------------------------- journald ---


def journald_running() -> bool:
    return JOURNAL_SOCKET.exists()


def _journal_send(text: str, /, **fields: Any) -> None:
    # Positional-only: the record's own "message" attribute arrives in fields.
    journal = module("journal", "logging to journald")

    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _RECORD_ATTRS:
            continue  # JournalHandler already sent these under journald's names
        if key.isupper():
            out[key] = value
        elif value is not None:
            # journald accepts only upper-case field names.
            out[key.upper()] = value if isinstance(value, str) else json.dumps(value)
    journal.send(text, **out)


def journal_handler() -> logging.Handler:
    """Raises SystemdModuleMissing without systemd-python (the daemon checks
    first, see faces/cli/daemon_cmds.py)."""
    journal = module("journal", "logging to journald")
    handler: logging.Handler = journal.JournalHandler(sender_function=_journal_send,
                                                      SYSLOG_IDENTIFIER="taucg")
    return handler


# -------------------------------------------------------- the main log ---


def setup(settings: Logging, *, to_stderr: bool = False) -> logging.Logger:
    """(Re)configures the ``taucg`` logger tree for the daemon. Called again
    on reload, it replaces the handlers. Returns the logger."""
    logger = logging.getLogger(LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(LEVELS[settings.log_level])
    logger.propagate = False
    logger.addHandler(rotating_handler(Path(settings.log_file_path), settings,
                                       settings.structured_logging))
    journald = settings.journald and journald_running()
    if journald:
        logger.addHandler(journal_handler())
    if to_stderr and not journald:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter(TEXT_FORMAT, DATE_FORMAT))
        logger.addHandler(stderr)
    return logger


# ------------------------------------------------------ reading back ---

LOG_NAMES = ("main", "audit", "performance")
_TEXT_LINE = re.compile(r"(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)")
_JSON_LEVEL = re.compile(r'"level": "([A-Z]+)"')


def log_paths(settings: Logging) -> dict[str, Path]:
    from taucg.actors.records import refusals_path

    return {"main": Path(settings.log_file_path), "audit": Path(settings.audit_log_path),
            "performance": Path(settings.performance_log_path),
            "refused": refusals_path(settings)}


def parse_line(line: str) -> dict[str, Any] | None:
    """One log line (JSON or the plain text format) -> a record dict."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    m = _TEXT_LINE.fullmatch(line)
    if m is None:
        return None
    return {"time": m.group(1), "level": m.group(2), "logger": m.group(3),
            "message": m.group(4)}


def _lines_backwards(path: Path, block: int = 1 << 16) -> Iterator[str]:
    """The file's lines, last first, reading blocks from the end."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        tail = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + tail
            lines = chunk.split(b"\n")
            tail = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line.decode("utf-8", "replace")
        if tail:
            yield tail.decode("utf-8", "replace")


def _file_lines_backwards(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            yield from reversed(f.read().splitlines())
    else:
        yield from _lines_backwards(path)


def recent(path: Path, count: int, level: str | None = None) -> list[dict[str, Any]]:
    """The last ``count`` records at or above ``level``, oldest first,
    reaching into rotated files when the current one has too few."""
    floor = LEVELS[level] if level else 0
    found: list[dict[str, Any]] = []
    for p in [path, *rotated_files(path)]:
        try:
            for line in _file_lines_backwards(p):
                rec = parse_line(line)
                if rec is None:
                    continue
                if LEVELS.get(str(rec.get("level", "")).lower(), 0) >= floor:
                    found.append(rec)
                    if len(found) >= count:
                        return found[::-1]
        except (FileNotFoundError, EOFError, gzip.BadGzipFile):
            continue
    return found[::-1]


@dataclass(frozen=True, slots=True)
class LogStats:
    log: str
    path: str
    exists: bool
    size: int
    records: int
    levels: dict[str, int]
    rotated: int
    rotated_bytes: int
    oldest_rotated: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def stats(name: str, path: Path) -> LogStats:
    """Size, record counts per level (current file), and the rotated files."""
    levels: dict[str, int] = {}
    records = 0
    size = 0
    exists = path.exists()
    if exists:
        size = path.stat().st_size
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _JSON_LEVEL.search(line) or _TEXT_LINE.match(line)
                if m:
                    lvl = m.group(1) if m.re is _JSON_LEVEL else m.group(2)
                    levels[lvl] = levels.get(lvl, 0) + 1
                    records += 1
    rotated = rotated_files(path)
    sizes, times = [], []
    for p in rotated:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        sizes.append(st.st_size)
        times.append(st.st_mtime)
    return LogStats(name, str(path), exists, size, records, levels, len(sizes), sum(sizes),
                    min(times) if times else None)


# --------------------------------------------- the CLI's JSON of them ---


def _logged_at(text: Any) -> str | None:
    """A record's time (DATE_FORMAT, local with its offset) as RFC 3339 UTC."""
    from datetime import datetime

    from taucg.faces.render import utc

    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.strptime(text, DATE_FORMAT)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # a naive time is this machine's local time
    return utc(stamp.timestamp())


def record_document(rec: dict[str, Any]) -> dict[str, Any]:
    """One log record for `taucg logs -o json`: its time in the one format,
    the four common fields, and the record's own fields under ``fields``."""
    common = ("time", "level", "logger", "message")
    return {"logged_at": _logged_at(rec.get("time")),
            "level": None if rec.get("level") is None else str(rec["level"]),
            "logger": None if rec.get("logger") is None else str(rec["logger"]),
            "message": str(rec.get("message", "")),
            "fields": {k: v for k, v in rec.items() if k not in common}}


def stats_document(s: dict[str, Any]) -> dict[str, Any]:
    """LogStats.to_dict (the socket API's form) with units in the names."""
    from taucg.faces.render import utc

    return {"log": s["log"], "path": s["path"], "exists": s["exists"],
            "size_bytes": s["size"], "records": s["records"], "levels": dict(s["levels"]),
            "rotated_files": s["rotated"], "rotated_bytes": s["rotated_bytes"],
            "oldest_rotated_at": utc(s["oldest_rotated"])}
