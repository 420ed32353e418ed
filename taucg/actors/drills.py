"""Recovery drills' markers: `taucg recovery test UNIT --crash` writes
<state_directory>/drills/<unit>.json before it kills the unit's main
process, and the recovery watcher that sees the failure takes it, so the
crash is recorded as a drill and left out of MTBF and failure counts.

A file, not a socket call to the daemon: the watcher may be the daemon's
worker or `taucg recovery watch`, and either must know; the state
directory is root's (0750), so only root can mark a failure as a drill.
A marker names the PID it killed and an expiry, and the watcher honours
it only for a failure of that very process (systemd's ExecMainPID) before
then: a stale marker can never hide a real crash.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from taucg.actors.files import private_dir, remove_file, write_atomic

DRILL_DIR = "drills"


@dataclass(frozen=True, slots=True)
class Drill:
    unit: str
    pid: int  # the main process the drill kills
    signal: int
    started: float  # wall clock
    expires: float  # wall clock: after this the marker counts for nothing
    who: str


def marker_path(state_directory: str | Path, unit: str) -> Path:
    return Path(state_directory) / DRILL_DIR / f"{unit}.json"


def mark(state_directory: str | Path, drill: Drill) -> Path:
    path = marker_path(state_directory, drill.unit)
    private_dir(path.parent)
    write_atomic(path, json.dumps(asdict(drill)) + "\n", mode=0o640)
    return path


def clear(state_directory: str | Path, unit: str) -> None:
    remove_file(marker_path(state_directory, unit))


def read(state_directory: str | Path, unit: str) -> Drill | None:
    try:
        data = json.loads(marker_path(state_directory, unit).read_text())
        return Drill(**data)
    except (OSError, ValueError, TypeError):
        return None


def take(state_directory: str | Path, unit: str, main_pid: int | None,
         now: float | None = None) -> Drill | None:
    """The drill this failure is, removing its marker; None for a failure
    that is not one (no marker, another PID, or expired: then the marker
    is removed too)."""
    drill = read(state_directory, unit)
    if drill is None:
        return None
    now = time.time() if now is None else now
    if now > drill.expires:
        clear(state_directory, unit)
        return None
    if main_pid is None or drill.pid != main_pid:
        return None
    clear(state_directory, unit)
    return drill


def signal_number(name: str) -> int:
    """SIGSEGV, SEGV, segv or 11 -> 11; ValueError naming the choices."""
    import signal as sig

    text = name.strip().upper()
    if text.isdigit():
        number = int(text)
        if number in {s.value for s in sig.Signals}:
            return number
    else:
        text = text if text.startswith("SIG") else "SIG" + text
        if text in sig.Signals.__members__:
            return int(sig.Signals[text])
    raise ValueError(f"{name!r} is not a signal; use a name such as SIGSEGV, SIGABRT, "
                     "SIGKILL or SIGTERM, or its number")


def kill_main(pid: int, signal: int) -> None:
    """The unit's main process only (its PID, read over D-Bus just before)."""
    os.kill(pid, signal)
