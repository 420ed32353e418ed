"""The webhook notifier against a real receiver, with a real daemon: the
receiver goes down (its port refuses connections) for a while, during
which the daemon raises and clears alerts and is itself restarted with
notifications still queued on disk; when the receiver comes back, every
notification arrives, each exactly once, in order.

The alerts come from a custom metric whose file the test rewrites: a real
threshold on a real tick, and the test knows exactly which alerts the
daemon raised (its `alerts` API lists them)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.receiver import Receiver, free_port
from tests.support.waiting import wait_for

OUTAGE_SECONDS = 25.0  # the "a minute", shortened; the port really refuses


def _config(root: Path, receiver: Receiver, port: int) -> dict[str, Any]:
    return {
        "daemon": {"metrics_address": f"127.0.0.1:{port}"},
        "metrics": {"custom": [{"name": "level", "file": root / "level", "warning": 10.0}]},
        "notifiers": [{"type": "webhook", "name": "hook", "url": receiver.url,
                       "min_severity": "info", "rate_limit": 0, "timeout_seconds": 5.0,
                       "retry_initial_seconds": 0.2, "retry_max_seconds": 2.0}],
        # Only the test's alerts, as far as a shared machine allows (the
        # assertions look at custom.level's alone).
        "health_checking": {"enabled": False},
        "resource_monitoring": {"cpu_threshold_percent": 100.0,
                                "memory_threshold_percent": 100.0,
                                "disk_threshold_percent": 100.0},
    }


def _level_alerts(d: Any) -> list[dict[str, Any]]:
    recent = d.call("alerts", count=1000)["recent"]
    return [a for a in recent if a["metric"] == "custom.level"]


def _flip(d: Any, root: Path, value: float, state: str, count: int) -> None:
    """Writes the value and waits until the daemon's count-th level alert is state."""
    (root / "level").write_text(f"{value}\n")
    wait_for(lambda: len(_level_alerts(d)) >= count and _level_alerts(d)[count - 1]["state"]
             == state, 60, f"alert {count} ({state}) of custom.level")


def _metric(port: int, series: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
    return -1.0


def _mine(receiver: Receiver) -> list[dict[str, Any]]:
    return [b for b in receiver.received() if b["fields"].get("metric") == "custom.level"]


def _queued(root: Path) -> list[Path]:
    q = root / "state" / "notify" / "hook"
    return sorted(q.glob("*.json")) if q.exists() else []


def test_receiver_down_then_back_loses_nothing_and_duplicates_nothing(
        start_daemon: Any, daemon_root: Path) -> None:
    receiver = Receiver().up()
    try:
        (daemon_root / "level").write_text("1\n")
        port = free_port()
        d = start_daemon(**_config(daemon_root, receiver, port))
        _flip(d, daemon_root, 20, "raised", 1)
        wait_for(lambda: len(_mine(receiver)) == 1, 60, "the first notification")

        receiver.down()
        assert receiver.refuses()
        began = time.monotonic()
        _flip(d, daemon_root, 1, "cleared", 2)
        _flip(d, daemon_root, 20, "raised", 3)
        assert len(_queued(daemon_root)) >= 2  # queued as the alert was published
        expected = [(a["time"], a["state"]) for a in _level_alerts(d)]

        # The daemon stops with the two still queued, and a new one starts.
        assert d.stop() == 0
        assert len(_queued(daemon_root)) >= 2
        d = start_daemon(**_config(daemon_root, receiver, port))
        # A new daemon's threshold starts unraised: the level (20) raises it again.
        wait_for(lambda: _level_alerts(d), 60, "the restarted daemon's first alert")
        _flip(d, daemon_root, 1, "cleared", 2)
        expected += [(a["time"], a["state"]) for a in _level_alerts(d)]
        assert len(_queued(daemon_root)) >= 4
        assert receiver.refuses()
        # The outage shows in /metrics: the queue and the failed attempts.
        wait_for(lambda: _metric(port, 'taucg_notifications_failed_attempts_total'
                                 '{notifier="hook"}') >= 1, 60, "failed attempts counted")
        assert _metric(port, 'taucg_notifications_queued{notifier="hook"}') >= 4
        assert len(_mine(receiver)) == 1
        # The outage lasts at least OUTAGE_SECONDS, retries and all.
        wait_for(lambda: time.monotonic() - began >= OUTAGE_SECONDS, OUTAGE_SECONDS + 5,
                 "the outage's end")

        receiver.up()
        wait_for(lambda: len(_mine(receiver)) >= len(expected) and not _queued(daemon_root),
                 120, "every queued notification delivered")
        got = _mine(receiver)
        ids = [b["id"] for b in got]
        assert len(ids) == len(set(ids)), f"a notification arrived twice: {ids}"
        assert [(b["time"], "raised" if b["state"] == "firing" else "cleared")
                for b in got] == expected
        assert all(b["schema"] == "taucg.notification/1" and b["event"] == "alert"
                   for b in got)
        everything = [b["id"] for b in receiver.received()]
        assert len(everything) == len(set(everything))
        log = (daemon_root / "log" / "monitor.log").read_text()
        assert "cannot deliver to" in log and "queued from before" in log
        assert "answers again after" in log
    finally:
        receiver.down()
