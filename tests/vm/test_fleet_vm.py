"""contrib/grafana/taucg-fleet.json against a real Prometheus that scrapes
the real daemon under systemd with its tiers applied: every panel's query
(the tier, unit, governor and safe-mode ones the host cannot answer
included) and the node variable return series. The daemon runs as the
shipped taucg.service; Prometheus (Debian's) is the test's child on the
VM's loopback, with contrib's rules loaded (every `for:` 3 s), and the
daemon's low health makes TaucgHealthBelowThreshold fire for the alerts
panel."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from taucg.faces.socket_client import call
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.contrib import dashboard_queries
from tests.support.fleet import (
    PROMETHEUS_PORT,
    Target,
    dashboard_series,
    query,
    ready,
    start_prometheus,
)

from .helpers import installed_daemon, wait_for

SOCKET = Path("/run/taucg/taucg.sock")
# health_score_threshold 0.999 with memory over 1% of RAM: below it, always.
CONFIG_TEXT = """
[resource_monitoring]
interval_seconds = 1
memory_threshold_percent = 1.0

[health_checking]
check_interval_seconds = 2
health_score_threshold = 0.999

[daemon]
metrics_address = "127.0.0.1:9464"
"""


def test_every_dashboard_query_returns_series(systemd: BlockingSystemd) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="taucg-fleet-vm-"))
    try:
        with installed_daemon(systemd, CONFIG_TEXT):
            call(SOCKET, "apply", {}, timeout=300)
            prom = start_prometheus(None, workdir, [Target("vm", "127.0.0.1:9464")],
                                    {"scheme": "http"}, alertmanager=False)
            try:
                wait_for(lambda: prom.alive() and ready(None, PROMETHEUS_PORT), 300,
                         "Prometheus to be ready")
                wait_for(lambda: query(None, 'up{job="taucg"} == 1'), 300,
                         "Prometheus to scrape the daemon")
                wait_for(lambda: query(None, 'ALERTS{alertname="TaucgHealthBelowThreshold",'
                                             'alertstate="firing"}'), 300,
                         "the health alert to fire")
                checked = dashboard_series(None, "vm", patience=300)
                assert len(checked) == len(dashboard_queries())
            finally:
                prom.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
