"""Audit and performance records, and the rotating files every log uses.

- The audit log (``audit_log_path``): one line per mutation, who did what,
  before -> after, and the result. Actors write it as they act.
- The performance log (``performance_log_path``): how long sweeps, applies
  and recoveries took.

Each file rotates at ``max_log_size_mb`` into gzip files; rotated files are
kept up to ``rotated_files_kept`` and ``retention_days``. Formatting is
python-json-logger's, rotation the standard library's RotatingFileHandler.
The daemon's main log (faces/logs.py) uses the same handlers.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import pwd
import sys
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from taucg.actors.shared_log import SharedRotatingFileHandler
from taucg.config.schema import Logging

LOGGER = "taucg"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# A LogRecord's own attributes; everything else on a record is a field.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def invoking_user() -> str:
    """Who asked: the sudo caller when there is one, else the process's user."""
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        return f"{sudo_user} (uid {os.environ.get('SUDO_UID', '?')}, via sudo)"
    return describe_uid(os.getuid())


def describe_uid(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


# --------------------------------------------------------------- files ---


def json_formatter() -> logging.Formatter:
    return JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger"},
                         datefmt=DATE_FORMAT)


def rotating_handler(path: Path, settings: Logging, structured: bool = True) -> logging.Handler:
    """A log file shared safely by every taucg process (shared_log.py)."""
    max_bytes = settings.max_log_size_mb << 20 if settings.log_rotation else 0
    handler = SharedRotatingFileHandler(path, max_bytes, settings.rotated_files_kept,
                                        settings.log_compression, settings.retention_days)
    handler.setFormatter(json_formatter() if structured
                         else logging.Formatter(TEXT_FORMAT, DATE_FORMAT))
    return handler


# ----------------------------------------------- audit and performance ---


_side_logs: dict[tuple[str, str], tuple[Logging, logging.Logger]] = {}


def _side_logger(kind: str, path: str, settings: Logging) -> logging.Logger:
    key = (kind, path)
    cached = _side_logs.get(key)
    if cached is not None and cached[0] == settings:
        return cached[1]
    if cached is not None:
        # A reload changed rotation or retention: one handler per file, or
        # two would rotate it under each other.
        for h in list(cached[1].handlers):
            cached[1].removeHandler(h)
            h.close()
    # Not from the global registry: one logger per file, never the root's.
    logger = logging.Logger(f"taucg.{kind}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(rotating_handler(Path(path), settings))
    _side_logs[key] = (settings, logger)
    return logger


def audit_logger(settings: Logging) -> logging.Logger | None:
    """The audit logger, or None when audit_logging is off."""
    if not settings.audit_logging:
        return None
    return _side_logger("audit", settings.audit_log_path, settings)


def refusals_path(settings: Logging) -> Path:
    """Where refused requests go: beside the audit log, never in it, so no
    flood of refusals by an unprivileged peer can rotate root's records out."""
    audit_path = Path(settings.audit_log_path)
    return audit_path.with_name(audit_path.stem + ".refused" + (audit_path.suffix or ".log"))


def audit(settings: Logging, action: str, target: str, *, before: Any = None,
          after: Any = None, result: str = "ok", who: str | None = None,
          refusal: bool = False, **fields: Any) -> None:
    """Records one mutation (or, with refusal, one refused request, in the
    refusals log). A log that cannot be written is reported on stderr and
    does not undo or block the change that already happened."""
    try:
        logger = (audit_logger(settings) if not refusal or not settings.audit_logging
                  else _side_logger("refused", str(refusals_path(settings)), settings))
    except OSError as exc:
        print(f"taucg: cannot write the audit log {settings.audit_log_path}: {exc.strerror}; "
              "check [logging] audit_log_path", file=sys.stderr)
        return
    if logger is None:
        return
    logger.info(f"{action} {target}: {result}", extra={
        "action": action, "target": target, "before": before, "after": after,
        "result": result, "who": who or invoking_user(), **fields})


def perf(settings: Logging, what: str, seconds: float, **fields: Any) -> None:
    """Records how long one operation took (sweep, apply, recovery, ...)."""
    if not settings.performance_logging:
        return
    try:
        logger = _side_logger("performance", settings.performance_log_path, settings)
    except OSError as exc:
        logging.getLogger(LOGGER).warning(
            "cannot write the performance log %s: %s; check [logging] performance_log_path",
            settings.performance_log_path, exc.strerror)
        return
    logger.info(f"{what} {seconds * 1000:.2f} ms",
                extra={"operation": what, "seconds": round(seconds, 6), **fields})
