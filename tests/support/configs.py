"""The one config builder for the host and VM tiers: TOML written from
Python dicts, so a test says which keys it sets, not how TOML spells them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from taucg.config.loading import merge_tables

# A section is a table (`[logging]`) or, for `[[rules]]`, a list of tables.
Section = Mapping[str, Any] | list[Mapping[str, Any]]


def _plain(value: Any) -> Any:
    """The value as tomli_w takes it: paths as text, tuples as arrays."""
    if value is None:
        # TOML has no null; leaving the key out is how a test means "unset".
        raise TypeError("a config value cannot be None; leave the key out instead")
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_config(path: Path, **sections: Section) -> Path:
    """Writes a config file with these top-level sections and returns its path:
    write_config(p, tiers={"low": {"cpu_weight": 25}}, rules=[{"comm": "x", ...}])."""
    path.write_text(tomli_w.dumps(_plain(sections)))
    return path


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """base with over laid on top, table by table, exactly as taucg lays an
    admin file over its built-in default (arrays are replaced whole)."""
    return merge_tables(base, over)


def private_paths(root: Path) -> dict[str, dict[str, Any]]:
    """Sections that send every file a taucg process writes (logs, state,
    session, socket, pidfile) into root, so a test never touches the
    machine's own /var/log/tau or /run/taucg, and journald stays quiet."""
    return {
        "logging": {
            "log_file_path": root / "log" / "monitor.log",
            "audit_log_path": root / "log" / "audit.log",
            "performance_log_path": root / "log" / "performance.log",
            "journald": False,
        },
        "crash_recovery": {
            "state_directory": root / "state",
            "session_state_path": root / "session",
        },
        "daemon": {
            "socket_path": root / "taucg.sock",
            "pidfile": root / "taucg.pid",
        },
    }


def daemon_config(root: Path, group: str = "root", **sections: Section) -> Path:
    """root/taucg.toml for a private daemon: its files under root, its socket
    owned by group, and sweeps and health checks fast enough for a test to
    see several; sections are laid on top (see merged)."""
    fast: dict[str, Any] = {
        "resource_monitoring": {"interval_seconds": 1},
        "health_checking": {"check_interval_seconds": 2},
        "daemon": {"socket_group": group},
    }
    return write_config(root / "taucg.toml",
                        **merged(merged(fast, private_paths(root)), sections))
