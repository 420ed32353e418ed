"""recovery.safe_mode = "isolate" under real systemd: the installed
taucg.service isolates the safe target when a critical unit keeps
failing, units outside the target stop, and the daemon that ordered it
survives (IgnoreOnIsolate=yes) to say so.

The safe target Wants= every unit active before the test except the
test's own units, taucg.service and the tiers' slices: isolating it stops
only what this test started (the VM harness keeps running), and it shows
whether the daemon and its slice survive an isolate they are not part of,
as they must on a real machine's rescue.target."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import SERVICE, SystemdError
from tests.support.blocking_systemd import BlockingSystemd

from .helpers import DAEMON_UNIT, installed_daemon, unit_state, wait_for

UNIT_DIR = Path("/etc/systemd/system")
SAFE = "taucg-test-safe.target"
CRASHY = "tau-isolate-crashy.service"
BYSTANDER = "tau-isolate-bystander.service"
AUDIT = Path("/var/log/tau/audit.log")

CONFIG = f"""
[resource_monitoring]
interval_seconds = 2

[health_checking]
enabled = false

[crash_recovery]
critical_processes = ["{CRASHY.removesuffix('.service')}"]

[recovery]
safe_mode = "isolate"
safe_mode_target = "{SAFE}"

[recovery.services."{CRASHY}"]
strategy = "fallback_to_safe_mode"
"""


def active_units() -> list[str]:
    out = subprocess.run(["systemctl", "list-units", "--plain",
                          "--state=active,activating,reloading,deactivating",
                          "--no-legend"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@pytest.fixture
def safe_target(systemd: BlockingSystemd) -> Iterator[None]:
    # Isolate stops services, sockets, targets, timers and paths; slices,
    # scopes, mounts, devices and swaps are IgnoreOnIsolate by default.
    keep = [u for u in active_units()
            if u.rsplit(".", 1)[-1] in ("service", "socket", "target", "timer", "path")
            and u not in (DAEMON_UNIT, CRASHY, BYSTANDER) and not u.startswith("tau-")
            and not u.startswith("taucg-test-")]
    (UNIT_DIR / SAFE).write_text(
        # DefaultDependencies=no: a target is otherwise ordered After= what it
        # Wants, and it would wait for the VM harness (a running oneshot).
        "[Unit]\nDescription=taucg test safe mode\nAllowIsolate=yes\n"
        "DefaultDependencies=no\n"
        + "".join(f"Wants={u}\n" for u in keep))
    (UNIT_DIR / CRASHY).write_text(
        "[Service]\nExecStart=/bin/sh -c 'sleep 1; kill -SEGV $$$$'\n"
        "Slice=tau-critical.slice\n")
    (UNIT_DIR / BYSTANDER).write_text(
        "[Service]\nExecStart=/bin/sleep infinity\nSlice=tau-normal.slice\n")
    systemd.reload()
    try:
        yield
    finally:
        for unit in (CRASHY, BYSTANDER):
            with contextlib.suppress(SystemdError):
                systemd.stop(unit)
            with contextlib.suppress(SystemdError):
                systemd.reset_failed(unit)
        for unit in (SAFE, CRASHY, BYSTANDER):
            (UNIT_DIR / unit).unlink(missing_ok=True)
        systemd.reload()


@contextlib.contextmanager
def journal_on_failure() -> Iterator[None]:
    try:
        yield
    except BaseException:
        for argv in (["-u", DAEMON_UNIT, "--grep", "recovery|isolat|safe|crashy|started"],
                     ["-u", CRASHY], ["-u", SAFE]):
            out = subprocess.run(["journalctl", "--no-pager", "-n", "40", *argv],
                                 capture_output=True, text=True, check=False).stdout
            print(f"--- journalctl {' '.join(argv)} ---\n{out}")
        raise


def audits(action: str) -> list[dict[str, Any]]:
    if not AUDIT.exists():
        return []
    records = [json.loads(line) for line in AUDIT.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("action") == action]


def test_isolate_stops_the_rest_and_the_daemon_survives(systemd: BlockingSystemd,
                                                         safe_target: None) -> None:
    with installed_daemon(systemd, CONFIG), journal_on_failure():
        pid = int(systemd.get_property(DAEMON_UNIT, "MainPID", SERVICE))
        systemd.start(BYSTANDER)
        before = len(audits("recovery fallback_to_safe_mode"))
        systemd.start(CRASHY, wait=False)
        wait_for(lambda: unit_state(systemd, SAFE) == "active", 300,
                 f"{SAFE} to be isolated after {CRASHY} failed")
        wait_for(lambda: unit_state(systemd, BYSTANDER) == "inactive", 120,
                 f"{BYSTANDER}, outside {SAFE}, to be stopped by the isolate")
        assert unit_state(systemd, DAEMON_UNIT) == "active"
        assert int(systemd.get_property(DAEMON_UNIT, "MainPID", SERVICE)) == pid, \
            "taucg.service was restarted by the isolate it ordered"
        records = wait_for(lambda: [r for r in audits("recovery fallback_to_safe_mode")[before:]
                                    if f"isolated {SAFE}" in str(r.get("after"))], 120,
                           "the recovery audit record of the isolate")
        assert records[0]["target"] == CRASHY
