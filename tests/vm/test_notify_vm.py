"""Notifiers under the shipped, hardened taucg.service and real journald:
a custom metric's alert, raised and cleared, reaches the journal (with
its fields and the severity's priority), a webhook receiver on localhost
and a command, each as the daemon's own work under its sandbox."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.blocking_systemd import BlockingSystemd
from tests.support.receiver import Receiver

from .helpers import installed_daemon, wait_for

LEVEL = Path("/var/lib/taucg-vmtest-level")
COMMAND_OUT = Path("/var/lib/taucg/notify-command.json")  # StateDirectory: writable


def config(receiver: Receiver) -> str:
    return f"""
[resource_monitoring]
interval_seconds = 1
cpu_threshold_percent = 100.0
memory_threshold_percent = 100.0
disk_threshold_percent = 100.0

[health_checking]
enabled = false

[[metrics.custom]]
name = "level"
file = "{LEVEL}"
warning = 10.0

[[notifiers]]
type = "journald"
min_severity = "info"
rate_limit = 0

[[notifiers]]
type = "webhook"
name = "hook"
url = "{receiver.url}"
min_severity = "info"
retry_initial_seconds = 0.5
retry_max_seconds = 2.0

[[notifiers]]
type = "command"
command = '[ "$TAUCG_FIELD_METRIC" = custom.level ] && cat >> {COMMAND_OUT}'
min_severity = "info"
"""


@contextlib.contextmanager
def explained() -> Iterator[None]:
    """A failure shows the daemon's own journal."""
    try:
        yield
    except BaseException:
        print(subprocess.run(["journalctl", "-u", "taucg.service", "-n", "60", "--no-pager"],
                             capture_output=True, text=True, check=False).stdout)
        raise


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().up()
    yield r
    r.down()


def journal(state: str) -> list[dict[str, Any]]:
    r = subprocess.run(["journalctl", "--no-pager", "-o", "json", "TAUCG_EVENT=alert",
                        "TAUCG_METRIC=custom.level", f"TAUCG_STATE={state}"],
                       capture_output=True, text=True, check=False)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def mine(receiver: Receiver) -> list[dict[str, Any]]:
    return [b for b in receiver.received() if b["fields"].get("metric") == "custom.level"]


def test_alert_reaches_journald_webhook_and_command_under_the_shipped_unit(
        systemd: BlockingSystemd, receiver: Receiver) -> None:
    LEVEL.write_text("1\n")
    COMMAND_OUT.unlink(missing_ok=True)
    try:
        with installed_daemon(systemd, config(receiver)), explained():
            LEVEL.write_text("20\n")
            raised = wait_for(lambda: journal("firing"), 300, "the raise in the journal")
            assert raised[0]["PRIORITY"] == "4" and raised[0]["SYSLOG_IDENTIFIER"] == "taucg"
            assert "custom.level" in raised[0]["MESSAGE"]
            wait_for(lambda: len(mine(receiver)) == 1, 300, "the raise at the webhook")
            LEVEL.write_text("1\n")
            cleared = wait_for(lambda: journal("resolved"), 300, "the clear in the journal")
            assert cleared[0]["PRIORITY"] == "6"
            wait_for(lambda: len(mine(receiver)) == 2, 300, "the clear at the webhook")
            wait_for(lambda: COMMAND_OUT.exists()
                     and len(COMMAND_OUT.read_text().splitlines()) == 2, 300,
                     "both at the command")
    finally:
        LEVEL.unlink(missing_ok=True)
    got = mine(receiver)
    assert [b["state"] for b in got] == ["firing", "resolved"]
    assert {b["id"] for b in got} == {raised[0]["TAUCG_NOTIFICATION_ID"],
                                      cleared[0]["TAUCG_NOTIFICATION_ID"]}
    lines = [json.loads(x) for x in COMMAND_OUT.read_text().splitlines()]
    assert [x["id"] for x in lines] == [b["id"] for b in got]
    COMMAND_OUT.unlink(missing_ok=True)
