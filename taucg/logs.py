"""Logs. For now the audit log: one JSON line per mutation (apply,
placement, run) saying who did what, before -> after, and the result, in a
file of its own that rotates at max_log_size_mb into gzip files.

Formatting is python-json-logger's; rotation is the standard library's
RotatingFileHandler with a gzip rotator.
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import pwd
import shutil
import sys
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from taucg.config import Logging

ROTATED_FILES_KEPT = 10


def invoking_user() -> str:
    """Who asked: the sudo caller when there is one, else the process's user."""
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        return f"{sudo_user} (uid {os.environ.get('SUDO_UID', '?')}, via sudo)"
    uid = os.getuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _gzip_rotator(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(source)


def rotating_handler(path: Path, settings: Logging) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    max_bytes = settings.max_log_size_mb << 20 if settings.log_rotation else 0
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                   backupCount=ROTATED_FILES_KEPT,
                                                   encoding="utf-8")
    if settings.log_compression:
        handler.namer = lambda name: f"{name}.gz"
        handler.rotator = _gzip_rotator
    handler.setFormatter(JsonFormatter(
        "{asctime}{levelname}{name}{message}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z"))
    return handler


_audit: dict[str, logging.Logger] = {}


def audit_logger(settings: Logging) -> logging.Logger | None:
    """The audit logger, or None when audit_logging is off."""
    if not settings.audit_logging:
        return None
    key = settings.audit_log_path
    logger = _audit.get(key)
    if logger is None:
        # Not from the global registry: one logger per audit file.
        logger = logging.Logger("taucg.audit")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(rotating_handler(Path(key), settings))
        _audit[key] = logger
    return logger


def audit(settings: Logging, action: str, target: str, *, before: Any = None,
          after: Any = None, result: str = "ok", who: str | None = None,
          **fields: Any) -> None:
    """Records one mutation. A log that cannot be written is reported on
    stderr and does not undo or block the change that already happened."""
    try:
        logger = audit_logger(settings)
    except OSError as exc:
        print(f"taucg: cannot write the audit log {settings.audit_log_path}: {exc.strerror}; "
              "check [logging] audit_log_path", file=sys.stderr)
        return
    if logger is None:
        return
    logger.info(f"{action} {target}: {result}", extra={
        "action": action, "target": target, "before": before, "after": after,
        "result": result, "who": who or invoking_user(), **fields})
