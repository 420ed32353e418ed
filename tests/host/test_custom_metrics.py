"""Custom metrics in a real daemon: a file metric that changes and a
command metric, recorded in the history, exported in /metrics, with a
threshold alert raised and cleared; a file holding garbage and a command
that fails are said once each, not at every tick."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from tests.host.test_api import check_with_promtool
from tests.support.cli import taucg
from tests.support.receiver import free_port
from tests.support.waiting import wait_for


def _points(d: Any, metric: str) -> list[float]:
    try:
        return [v for _, v in d.call("history", metric=metric)["metrics"][metric]["points"]]
    except Exception:
        return []


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def test_file_and_command_metrics_history_export_and_alerts(
        start_daemon: Any, daemon_root: Path) -> None:
    temp = daemon_root / "temp"
    temp.write_text("21.5 C\n")
    bad = daemon_root / "bad"
    bad.write_text("not a number\n")
    port = free_port()
    d = start_daemon(
        daemon={"metrics_address": f"127.0.0.1:{port}"},
        metrics={"custom": [
            {"name": "room", "unit": "celsius", "help": "the room's temperature",
             "file": temp, "warning": 30.0, "critical": 40.0, "hysteresis": 2.0},
            {"name": "answer", "command": "echo 42", "timeout_seconds": 10.0},
            {"name": "garbage", "file": bad},
            {"name": "broken", "command": "echo nope >&2; exit 3"},
            {"name": "missing", "file": daemon_root / "nonexistent"}]})
    wait_for(lambda: 21.5 in _points(d, "custom.room"), 60, "the file metric in the history")
    wait_for(lambda: 42.0 in _points(d, "custom.answer"), 60, "the command metric")
    temp.write_text("35\n")
    wait_for(lambda: "custom.room" in d.call("alerts")["active"], 60, "the warning raised")
    temp.write_text("45\n")
    wait_for(lambda: "custom.room critical" in d.call("alerts")["active"], 60,
             "the critical alert raised")
    severities = {a["metric"]: a["severity"] for a in d.call("alerts")["recent"]
                  if a["state"] == "raised"}
    assert severities["custom.room"] == "warning"
    assert severities["custom.room critical"] == "critical"
    body = _scrape(port)
    assert "# HELP taucg_custom_room_celsius the room's temperature" in body
    assert "taucg_custom_room_celsius 45.0" in body
    assert "taucg_custom_answer 42.0" in body
    assert "taucg_custom_garbage" not in body and "taucg_custom_broken" not in body
    check_with_promtool(body)  # Prometheus's own lint of the names and HELP
    temp.write_text("29\n")  # below 30 but not below 30 - 2: stays raised
    wait_for(lambda: 29.0 in _points(d, "custom.room"), 60, "29 recorded")
    assert "custom.room" in d.call("alerts")["active"]
    assert "custom.room critical" not in d.call("alerts")["active"]
    temp.write_text("20\n")
    wait_for(lambda: "custom.room" not in d.call("alerts")["active"], 60, "the warning cleared")
    # The CLI's history shows it like any built-in metric.
    out = taucg("history", "--metric", "custom.room", config=d.config).stdout
    assert "CUSTOM.ROOM" in out and "45" in out
    # Several ticks later, each bad source was said once, with its name and why.
    sweeps = d.call("status")["sweeps"]
    wait_for(lambda: d.call("status")["sweeps"] >= sweeps + 3, 60, "three more ticks")
    log = (d.log_dir / "monitor.log").read_text()
    said = [line for line in log.splitlines() if "custom metric" in line]
    garbage = [s for s in said if "custom metric garbage" in s]
    broken = [s for s in said if "custom metric broken" in s]
    missing = [s for s in said if "custom metric missing" in s]
    assert len(garbage) == 1 and "'not', not a number" in garbage[0], said
    assert len(broken) == 1 and "exited 3: nope" in broken[0], said
    assert len(missing) == 1 and "does not exist" in missing[0], said
    # Fixed, it reads again and says so once.
    bad.write_text("7\n")
    wait_for(lambda: 7.0 in _points(d, "custom.garbage"), 60, "the fixed metric")
    assert "custom metric garbage reads again" in (d.log_dir / "monitor.log").read_text()
