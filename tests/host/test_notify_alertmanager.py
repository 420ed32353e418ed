"""The webhook notifier's Alertmanager format against a real Alertmanager
(Debian's prometheus-alertmanager): the real notify worker posts to its
/api/v2/alerts, which takes the body (a 4xx would set it aside), and the
alert shows with taucg's labels while firing and is gone once resolved."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.config.loading import loads
from taucg.faces.notify_worker import NotifyWorker
from tests.support.receiver import free_port
from tests.support.waiting import wait_for

CONFIG = """route:
  receiver: "null"
receivers:
  - name: "null"
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        pytest.skip("needs prometheus-alertmanager (Debian package; scripts/setup installs it)")
    (tmp_path / "am.yml").write_text(CONFIG)
    port = free_port()
    with open(tmp_path / "am.out", "wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}",
                                 f"--storage.path={tmp_path / 'am-data'}",
                                 f"--web.listen-address=127.0.0.1:{port}",
                                 "--cluster.listen-address="],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "am.out").read_text()
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, 60, "Alertmanager ready")
        yield base
    finally:
        proc.terminate()  # our own child, by its PID
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _alerts(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as r:
        return list(json.loads(r.read()))


def _taucg(base: str) -> list[dict[str, Any]]:
    return [a for a in _alerts(base) if a["labels"].get("job") == "taucg"]


def test_alertmanager_takes_the_payload_firing_then_resolved(alertmanager: str,
                                                              tmp_path: Path) -> None:
    cfg = loads(f'[crash_recovery]\nstate_directory = "{tmp_path / "state"}"\n'
                f'[[notifiers]]\ntype = "webhook"\nname = "am"\nformat = "alertmanager"\n'
                f'url = "{alertmanager}/api/v2/alerts"\nmin_severity = "info"\n'
                'retry_initial_seconds = 0.2\nretry_max_seconds = 1.0\n')
    worker = NotifyWorker(cfg, logging.getLogger("taucg-test-am"))
    route = worker.routes[0]
    assert route.webhook is not None
    raised = {"time": time.time(), "metric": "custom.ups_load", "state": "raised",
              "value": 0.97, "threshold": 0.95, "severity": "critical",
              "message": "custom.ups_load at 1.0 crossed the threshold 0.95"}

    async def deliver(events: list[dict[str, Any]]) -> None:
        task = asyncio.get_running_loop().create_task(worker.run())
        try:
            for e in events:
                worker.hear("alert", e)
            deadline = time.monotonic() + 60
            while len(route.webhook.queue) and time.monotonic() < deadline:  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(deliver([raised]))
    assert route.webhook.delivered == 1, "Alertmanager did not take the body"
    firing = wait_for(lambda: _taucg(alertmanager), 30, "the alert in Alertmanager")
    labels = firing[0]["labels"]
    assert labels["alertname"] == "taucg_alert" and labels["severity"] == "critical"
    assert labels["metric"] == "custom.ups_load" and labels["node"]
    assert firing[0]["status"]["state"] == "active"
    assert "crossed the threshold" in firing[0]["annotations"]["description"]

    cleared = {**raised, "time": time.time(), "state": "cleared", "value": 0.5,
               "message": "custom.ups_load back to 0.5, below 0.95"}
    asyncio.run(deliver([cleared]))
    assert route.webhook.delivered == 2
    # The same labels resolve the same alert: Alertmanager lists it no more.
    wait_for(lambda: not _taucg(alertmanager), 30, "the alert resolved")
    assert not list((tmp_path / "state" / "notify" / "am").glob("*.rejected"))
