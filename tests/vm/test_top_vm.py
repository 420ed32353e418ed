"""`taucg top` against real systemd and a running daemon, through tmux:
the applied tiers with a real unit in tau-normal.slice, a tier filter that
hides and shows it, and that unit's crash (SIGSEGV) arriving in the event
pane as the daemon's recovery notification, through its subscription."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from taucg.actors.systemd_dbus import SystemdError
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import daemon_config
from tests.support.tmux import Terminal

from .helpers import wait_for
from .test_governor_vm import Daemon

UNIT_DIR = Path("/etc/systemd/system")
UNIT = "tau-topcrash.service"
CRASH_NOW = Path("/run/taucg-topcrash-now")
REPO = Path(__file__).resolve().parents[2]

# Idles in tau-normal.slice until CRASH_NOW appears, then removes it and
# dies of SIGSEGV; restarted, it idles again.
SCRIPT = f"while [ ! -e {CRASH_NOW} ]; do sleep 1; done; rm -f {CRASH_NOW}; kill -SEGV $$$$"
UNIT_TEXT = f"""[Service]
Slice=tau-normal.slice
ExecStart=/bin/sh -c '{SCRIPT}'
"""
UNIT_LINE = re.compile(rf"^  [-+] {re.escape(UNIT)}", re.M)
RECOVERY_EVENT = re.compile(rf"recovery\s+{re.escape(UNIT)} \S+: restart \(attempt 1\)")


@pytest.fixture
def crashing_unit(systemd: BlockingSystemd) -> Iterator[str]:
    (UNIT_DIR / UNIT).write_text(UNIT_TEXT)
    CRASH_NOW.unlink(missing_ok=True)
    systemd.reload()
    yield UNIT
    CRASH_NOW.unlink(missing_ok=True)
    for action in (systemd.stop, systemd.reset_failed):
        with contextlib.suppress(SystemdError):
            action(UNIT)
    (UNIT_DIR / UNIT).unlink()
    systemd.reload()


@pytest.fixture
def tiers(systemd: BlockingSystemd, tmp_path: Path) -> Iterator[Path]:
    """The tiers applied from a private daemon config, removed after."""
    cfg = daemon_config(tmp_path,
                        crash_recovery={"critical_processes": ["tau-topcrash"],
                                        "recovery_timeout_seconds": 60},
                        recovery={"services": {UNIT: {"strategy": "restart"}}},
                        governor={"enabled": False}, health_checking={"enabled": False})
    taucg("apply", config=cfg)
    yield cfg
    for p in list(UNIT_DIR.glob("tau*.slice")):
        p.unlink()
    systemd.reload()
    with contextlib.suppress(SystemdError):
        systemd.stop("tau.slice")


def test_a_crash_reaches_tops_event_pane_through_the_daemon(
        systemd: BlockingSystemd, crashing_unit: str, tiers: Path, tmp_path: Path) -> None:
    d = Daemon(tiers, tmp_path)
    d.start()
    term: Terminal | None = None
    try:
        wait_for(lambda: _ready(d), 300, "the daemon's recovery watcher to follow the units")
        systemd.start(crashing_unit)
        term = Terminal(taucg_argv("top", config=tiers), env={"PYTHONPATH": str(REPO)},
                        cwd=str(REPO))
        screen = term.wait(lambda s: UNIT_LINE.search(s) and "daemon subscription" in s,
                           f"top drawing {UNIT} in its tier, events from the daemon", 300)
        assert "no taucg tiers" not in screen
        normal = next(ln for ln in screen.splitlines() if ln.startswith("normal ("))
        lines = screen.splitlines()
        # The unit is drawn under its tier: the nearest tier line above it is normal's.
        at = next(i for i, ln in enumerate(lines) if UNIT_LINE.match(ln))
        above = [ln for ln in lines[:at] if re.match(r"^(critical|high|normal|low|background) ",
                                                     ln)]
        assert above and above[-1] == normal, screen
        wait_for(lambda: d.ask("ping")["subscribers"] >= 1, 120,
                 "the daemon to count top's subscription")

        # The tier filter: critical alone hides the unit; normal shows it again.
        term.keys("1")
        shown = term.wait(lambda s: "show critical" in s and not UNIT_LINE.search(s),
                          "only the critical tier")
        assert not re.search(r"^normal \(", shown, re.M), shown
        term.keys("3")
        term.wait(lambda s: "show normal" in s and UNIT_LINE.search(s), "the normal tier alone")
        # Expanded, the unit shows its processes: the shell and its sleep.
        term.keys("+")
        opened = term.wait(lambda s: re.search(r"^\s{6,}\d+ sh ", s, re.M),
                           f"{UNIT}'s processes")
        assert re.search(rf"^  - {re.escape(UNIT)}", opened, re.M), opened
        term.keys("-", "0")

        CRASH_NOW.touch()
        screen = term.wait(RECOVERY_EVENT.search, "the crash's recovery in "
                           "top's event pane", 300)
        event = RECOVERY_EVENT.search(screen)
        assert event is not None
        print(f"--- top, after the crash ---\n{screen}")
        term.keys("q")
        assert term.exit_status(120) == 0
    finally:
        if term is not None:
            term.close()
        d.stop()
    print(f"--- daemon log (tail) ---\n{d.tail(40)}")


def _ready(d: Daemon) -> bool:
    assert d.proc is not None
    if d.proc.poll() is not None:
        pytest.fail(f"the daemon exited {d.proc.returncode}:\n{d.tail()}")
    try:
        records = d.ask("logs.recent", count=500, level="warning")
    except Exception:  # not serving yet
        return False
    return any("ready: following" in r["message"] for r in records)
