"""Where the governor records what it holds (``governor.json`` in the
state directory), readable without the D-Bus client: `taucg status` and
`taucg governor` read it, the daemon's governor writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taucg.config.schema import Config


def state_path(cfg: Config) -> Path:
    return Path(cfg.crash_recovery.state_directory) / "governor.json"


def load_state(cfg: Config) -> dict[str, Any]:
    """The persisted governed state; empty when there is none or it is unreadable."""
    try:
        data = json.loads(state_path(cfg).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
