"""The dashboard in real headless Chromium against a real daemon: it loads
with no network but the daemon's own server, lists the metrics the API
names, draws a chart, and updates without reloading. (The tiers' memory
moving is the VM's test: tests/vm/test_dashboard_vm.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, screenshot
from tests.support.tls import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.host


def test_dashboard_draws_and_updates_in_chromium(start_daemon: Any, tmp_path: Path) -> None:
    port = free_port()
    d = start_daemon(daemon={"http_address": f"127.0.0.1:{port}"})
    wait_for(lambda: d.call("status")["sweeps"] >= 2, 60, "two sweeps")
    with chromium() as driver:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.execute_script("window.taucgLoaded = 'once';")  # gone if the page reloads
        js = driver.execute_script

        wait_for(lambda: int(js("return document.body.dataset.updates || 0")) >= 1, 120,
                 "the first update")
        names = js("return Array.from(document.querySelectorAll('#metric option'))"
                   ".map(o => o.value)")
        assert sorted(names) == sorted(d.call("history.metrics")["metrics"])
        assert len(js("return document.querySelectorAll('#tiers tbody tr')")) == 5
        wait_for(lambda: int(js("return document.getElementById('chart').dataset.points"
                                " || 0")) >= 2, 120, "a chart with two points")
        first = int(js("return document.getElementById('chart').dataset.points"))
        assert js("return document.querySelector('#chart path.line').getAttribute('d')"
                  ).startswith("M")
        # Later sweeps arrive without a reload: more points, same page.
        wait_for(lambda: int(js("return document.getElementById('chart').dataset.points"))
                 > first, 120, "the chart to grow")
        assert js("return window.taucgLoaded") == "once"
        assert "cannot reach" not in js("return document.getElementById('updated').textContent")
        # Another metric from the list, chosen in the page.
        other = next(n for n in names if n != "memory_percent")
        js(f"const s = document.getElementById('metric'); s.value = '{other}';"
           "s.dispatchEvent(new Event('change'));")
        wait_for(lambda: js("return document.getElementById('chart').dataset.metric") == other,
                 60, f"the chart of {other}")
        # Nothing was fetched from anywhere but the daemon.
        hosts = js("return performance.getEntriesByType('resource').map(e => e.name)")
        assert hosts and all(h.startswith(f"http://127.0.0.1:{port}/") for h in hosts), hosts
        shot = screenshot(driver, tmp_path / "dashboard.png")
        print(f"screenshot: {shot}")
