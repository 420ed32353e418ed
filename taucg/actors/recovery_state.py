"""Recovery state: what was running, so a recovery can put it back.

The snapshot (``<session_state_path>/session.json``, written atomically)
lists the session's units -- the critical units and the services placed in
tiers -- with their states, and the state blobs services handed in.

A service hands in a blob with ``taucg recovery save-state UNIT FILE``; it
is kept as ``<session_state_path>/blobs/<unit>``. After taucg recovers a
crashed unit it starts again the session units the snapshot had active,
and hands the blob back at ``/run/taucg/state/<unit>`` (mode 0600) before
the restart, so the service reads it when it starts (for example with
``LoadCredential=state:/run/taucg/state/%n``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from taucg.actors.files import write_atomic
from taucg.actors.systemd_dbus import Systemd, SystemdError
from taucg.config.schema import Config
from taucg.config.values import unit_name
from taucg.model.tiers import service_tiers

HANDBACK_DIR = Path("/run/taucg/state")


def session_units(cfg: Config) -> list[str]:
    units = [unit_name(u) for u in cfg.crash_recovery.critical_processes]
    units += list(service_tiers(cfg))
    return list(dict.fromkeys(units))


def state_dir(cfg: Config) -> Path:
    return Path(cfg.crash_recovery.session_state_path)


def save_blob(cfg: Config, unit: str, source: Path) -> Path:
    dest = state_dir(cfg) / "blobs" / unit_name(unit)
    write_atomic(dest, source.read_bytes(), mode=0o600)
    return dest


async def snapshot(cfg: Config, client: Systemd) -> dict[str, Any]:
    units: dict[str, dict[str, str]] = {}
    for unit in session_units(cfg):
        try:
            props = await client.properties(unit)
        except SystemdError:
            continue
        if props.get("LoadState") != "loaded":
            continue
        units[unit] = {"active_state": str(props.get("ActiveState")),
                       "sub_state": str(props.get("SubState"))}
    blobs_dir = state_dir(cfg) / "blobs"
    blobs = sorted(p.name for p in blobs_dir.iterdir()) if blobs_dir.is_dir() else []
    snap = {"time": time.time(), "units": units, "blobs": blobs}
    write_atomic(state_dir(cfg) / "session.json", json.dumps(snap, indent=2), mode=0o640)
    return snap


class RecoveryStateError(Exception):
    """The session snapshot cannot be used; names the file and the problem."""


def _check_snapshot(data: Any) -> str | None:
    """What is wrong with a parsed snapshot, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    for key in ("time", "units", "blobs"):
        if key not in data:
            return f"the key {key!r} is missing"
    if isinstance(data["time"], bool) or not isinstance(data["time"], int | float):
        return "'time' is not a number"
    units = data["units"]
    if not isinstance(units, dict) or not all(
            isinstance(s, dict) and isinstance(s.get("active_state"), str)
            and isinstance(s.get("sub_state"), str) for s in units.values()):
        return "'units' is not a table of unit -> {active_state, sub_state}"
    if not isinstance(data["blobs"], list) or not all(isinstance(b, str) for b in data["blobs"]):
        return "'blobs' is not a list of names"
    return None


def load_snapshot(cfg: Config) -> dict[str, Any] | None:
    """The last snapshot; None when there is none yet. A damaged file raises
    RecoveryStateError naming it: the watcher takes a new one every 30 s."""
    path = state_dir(cfg) / "session.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise RecoveryStateError(f"{path} is a directory, not a session snapshot; remove "
                                 "it, and the recovery watcher writes a new one") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecoveryStateError(f"{path} is damaged ({exc}); remove it, and the recovery "
                                 "watcher writes a new one within 30 s") from None
    except OSError as exc:
        raise RecoveryStateError(f"cannot read {path}: {exc.strerror}") from None
    problem = _check_snapshot(data)
    if problem is not None:
        raise RecoveryStateError(f"{path} is not a session snapshot: {problem}; remove it, "
                                 "and the recovery watcher writes a new one within 30 s")
    snap: dict[str, Any] = data
    return snap


def hand_back(cfg: Config, unit: str) -> Path | None:
    blob = state_dir(cfg) / "blobs" / unit
    if not blob.exists():
        return None
    dest = HANDBACK_DIR / unit
    HANDBACK_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(blob, dest)
    os.chmod(dest, 0o600)
    return dest


async def restore(cfg: Config, client: Systemd, snap: dict[str, Any]) -> list[str]:
    """Starts the session units the snapshot had active and that are not now."""
    started = []
    for unit, state in snap.get("units", {}).items():
        if state.get("active_state") != "active":
            continue
        try:
            now = await client.get_property(unit, "ActiveState")
            if now != "active":
                await client.start(unit)
                started.append(unit)
        except SystemdError:
            continue
    return started
