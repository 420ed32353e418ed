"""The command notifier in a real daemon: a command that never ends is the
daemon's own child, killed (with its process group) at its timeout, and
the daemon's loop serves the socket API all the while."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence only
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it no longer runs.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_command_that_hangs_is_killed_at_its_timeout_and_the_loop_keeps_serving(
        start_daemon: Any, daemon_root: Path) -> None:
    pids, stdin = daemon_root / "pids", daemon_root / "stdin"
    # For the test's metric (a busy machine raises cpu_percent too), the shell
    # records its stdin, its PID and its child sleep's PID, then waits forever.
    command = ('[ "$TAUCG_FIELD_METRIC" = custom.level ] || exit 0; '
               f"cat > {stdin}; sleep 100000 & echo $$ $! >> {pids}; wait")
    (daemon_root / "level").write_text("1\n")
    d = start_daemon(
        metrics={"custom": [{"name": "level", "file": daemon_root / "level",
                             "warning": 10.0}]},
        notifiers=[{"type": "command", "command": command, "events": ["alert"],
                    "min_severity": "warning", "rate_limit": 0, "timeout_seconds": 8.0}],
        health_checking={"enabled": False},
        resource_monitoring={"cpu_threshold_percent": 100.0,
                             "memory_threshold_percent": 100.0,
                             "disk_threshold_percent": 100.0})
    (daemon_root / "level").write_text("20\n")
    wait_for(lambda: pids.exists() and pids.read_text().strip(), 60, "the command to start")
    shell, sleeper = (int(p) for p in pids.read_text().split()[:2])
    # While the command hangs, the daemon answers and keeps sampling.
    sweeps = d.call("status")["sweeps"]
    assert _alive(shell) and _alive(sleeper)
    assert d.call("ping")["pid"] == d.proc.pid
    wait_for(lambda: d.call("status")["sweeps"] > sweeps, 30, "a sweep while it hangs")
    assert _alive(sleeper), "killed before its timeout"
    wait_for(lambda: not _alive(shell) and not _alive(sleeper), 60,
             "the command and its child killed at the timeout")
    log = d.log_dir / "monitor.log"
    wait_for(lambda: "killed after 8 s" in log.read_text(), 30, "the kill in the log")
    event = json.loads(stdin.read_text())
    assert event["event"] == "alert" and event["fields"]["metric"] == "custom.level"
    assert event["severity"] == "warning" and event["state"] == "firing"
    # The next notification runs a command again: nothing stays stuck.
    (daemon_root / "level").write_text("1\n")  # cleared: info, below min_severity
    wait_for(lambda: d.call("alerts")["active"].count("custom.level") == 0, 60, "the clear")
    (daemon_root / "level").write_text("30\n")
    wait_for(lambda: len(pids.read_text().split()) == 4, 60, "a second command")
    assert d.proc.poll() is None
