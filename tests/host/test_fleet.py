"""The fleet, for real: three taucg daemons, each in its own network
namespace with its own address (three hosts), scraped by Debian's
Prometheus with contrib/'s rules loaded, which sends its alerts to Debian's
Alertmanager, which routes them to a webhook receiver run by this test.
Each daemon serves /metrics over TLS (its exporter-toolkit web config) and
requires a client certificate from the CA this test makes; Prometheus
scrapes with one. Everything listens inside the test's own namespaces
(tests/support/netns.py).

On the host there are no tier slices (no systemd), so the alerts that a
node can really raise here are health below its threshold and a node that
stopped reporting; the tier, OOM, pressure, crash-loop, safe-mode and
sampler rules are tested by promtool (tests/host/test_contrib_rules.py), and
the dashboard's tier and unit panels against a daemon with tiers in the VM
(tests/vm/test_fleet_vm.py). Each `for:` is shortened to 3 s
(tests/support/contrib.rules_with_short_for)."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import tempfile
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.socket_client import call
from tests.host.conftest import wait_until_serving
from tests.support.cli import taucg_argv
from tests.support.configs import daemon_config
from tests.support.contrib import node_variable
from tests.support.fleet import (
    ALERTMANAGER_PORT,
    PROMETHEUS_PORT,
    Child,
    Receiver,
    Target,
    api,
    dashboard_series,
    query,
    ready,
    start,
    start_alertmanager,
    start_prometheus,
)
from tests.support.netns import Lab, Netns
from tests.support.tls import Pair, get, make_ca, make_cert, write_web_config
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(900)

PORT = 9464
PATIENCE = 180.0  # seconds: the machine is shared and slow

# A sane node: the threshold is low because this shared machine's CPU can be
# saturated by other tests (cpu_usage scores 0 then; the rest keep it > 0.5).
HEALTHY: dict[str, Any] = {"health_checking": {"health_score_threshold": 0.3}}
# An unhealthy one: any memory in use is over 1%, so its memory_usage check
# scores below 1 and the score below 0.999.
UNHEALTHY: dict[str, Any] = {
    "health_checking": {"health_score_threshold": 0.999},
    "resource_monitoring": {"memory_threshold_percent": 1.0, "interval_seconds": 1},
}


@dataclass
class Node:
    name: str
    ns: Netns
    root: Path
    web: Path  # its web config: TLS, a client certificate required
    child: Child

    @property
    def socket(self) -> Path:
        return self.root / "taucg.sock"

    @property
    def url(self) -> str:
        return f"https://{self.ns.address}:{PORT}/metrics"

    def config(self, sections: dict[str, Any]) -> Path:
        return daemon_config(self.root, **{**sections, "daemon": {
            "http_address": f"{self.ns.address}:{PORT}", "web_config_file": self.web}})

    def reload(self, sections: dict[str, Any]) -> None:
        before = call(self.socket, "ping", timeout=20)["generation"]
        self.config(sections)
        os.kill(self.child.proc.pid, signal.SIGHUP)  # our own child, by PID
        wait_for(lambda: call(self.socket, "ping", timeout=20)["generation"] > before,
                 PATIENCE, f"{self.name} to reload")


@dataclass(frozen=True)
class Pki:
    ca: Pair
    prometheus: Pair  # the scraper's client certificate
    stranger: Pair  # a client certificate another CA signed


def make_pki(directory: Path) -> Pki:
    ca = make_ca(directory, "fleet-ca")
    other = make_ca(directory, "other-ca")
    return Pki(ca, make_cert(ca, directory, "prometheus", ["DNS:prometheus"], client=True),
               make_cert(other, directory, "stranger", ["DNS:prometheus"], client=True))


def start_node(name: str, ns: Netns, workdir: Path, sections: dict[str, Any],
               pki: Pki) -> Node:
    root = workdir / name
    root.mkdir(mode=0o755)
    server = make_cert(pki.ca, workdir / "pki", name, [f"IP:{ns.address}"])
    web = write_web_config(root / "web.yml", server=server, client_ca=pki.ca.cert,
                           client_auth_type="RequireAndVerifyClientCert")
    node = Node(name, ns, root, web, None)  # type: ignore[arg-type]
    config = node.config(sections)
    node.child = start(ns, name, taucg_argv("daemon", config=config), root)
    try:
        wait_until_serving(node.socket, node.child.proc, timeout=PATIENCE)
    except AssertionError as exc:  # what the daemon said is in its own log
        raise AssertionError(f"{exc}\n{node.child.log.read_text()}") from None
    return node


@dataclass
class Fleet:
    lab: Lab
    pki: Pki
    nodes: dict[str, Node]
    prometheus: Child
    alertmanager: Child
    receiver: Receiver

    def query(self, expr: str) -> list[dict[str, Any]]:
        self.prometheus.alive()
        return query(self.lab.hub, expr)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    workdir = Path(tempfile.mkdtemp(prefix="taucg-fleet-"))
    workdir.chmod(0o755)
    lab = Lab(f"taucg-fleet-{os.getpid()}")
    children: list[Child] = []
    receiver = Receiver()
    try:
        pki = make_pki(workdir / "pki")
        nodes = {}
        for i, sections in enumerate((HEALTHY, HEALTHY, UNHEALTHY), start=1):
            ns = lab.add_node()
            node = start_node(f"node-{i}", ns, workdir, sections, pki)
            children.append(node.child)
            nodes[node.name] = node
        receiver.start(lab.hub)
        am = start_alertmanager(lab.hub, workdir / "alertmanager")
        children.append(am)
        prom = start_prometheus(lab.hub, workdir / "prometheus",
                                [Target(n.name, f"{n.ns.address}:{PORT}") for n in nodes.values()],
                                {"scheme": "https", "tls_config": {
                                    "ca_file": str(pki.ca.cert),
                                    "cert_file": str(pki.prometheus.cert),
                                    "key_file": str(pki.prometheus.key)}})
        children.append(prom)
        f = Fleet(lab, pki, nodes, prom, am, receiver)
        wait_for(lambda: am.alive() and ready(lab.hub, ALERTMANAGER_PORT), PATIENCE,
                 "Alertmanager to be ready")
        wait_for(lambda: prom.alive() and ready(lab.hub, PROMETHEUS_PORT), PATIENCE,
                 "Prometheus to be ready")
        wait_for(lambda: len(f.query('up{job="taucg"} == 1')) == 3,
                 PATIENCE, "Prometheus to scrape all three nodes")
        yield f
    finally:
        for c in reversed(children):
            c.stop()
        receiver.stop()
        lab.remove()
        shutil.rmtree(workdir, ignore_errors=True)


def test_three_nodes_are_scraped_each_at_its_own_address(fleet: Fleet) -> None:
    targets = api(fleet.lab.hub, "/api/v1/targets", state="active")["activeTargets"]
    seen = {t["labels"]["instance"]: t["scrapeUrl"] for t in targets if t["health"] == "up"}
    assert seen == {n.name: n.url for n in fleet.nodes.values()}
    # Each is a different daemon: three processes, each reporting for itself.
    reporting = {r["metric"]["instance"] for r in fleet.query("taucg_build_info")}
    assert reporting == set(fleet.nodes)
    assert len({n.child.proc.pid for n in fleet.nodes.values()}) == 3


def refused(ns: Netns, url: str, **kw: Any) -> bool:
    """True when the node refuses the TLS handshake (or the first read)."""
    try:
        with ns.entered():
            get(url, **kw)
    except (ssl.SSLError, ConnectionError, urllib.error.URLError, OSError):
        return True
    return False


def test_each_node_requires_the_fleet_client_certificate(fleet: Fleet) -> None:
    """What Prometheus is let in with, and what is turned away, from the hub."""
    node = fleet.nodes["node-2"]
    hub, ca = fleet.lab.hub, fleet.pki.ca.cert
    with hub.entered():
        answer = get(node.url, ca=ca, client=fleet.pki.prometheus)
    assert answer.status == 200 and b"taucg_build_info" in answer.body
    assert refused(hub, node.url, ca=ca)  # no client certificate
    assert refused(hub, node.url, ca=ca, client=fleet.pki.stranger)  # another CA's
    assert refused(hub, node.url.replace("https:", "http:"))  # plain HTTP


def firing(f: Fleet, alertname: str) -> set[str]:
    return {a["labels"]["instance"] for a in f.receiver.alerts(alertname, "firing")}


def resolved(f: Fleet, alertname: str) -> set[str]:
    return {a["labels"]["instance"] for a in f.receiver.alerts(alertname, "resolved")}


def test_dashboard_queries_return_series(fleet: Fleet) -> None:
    """Every query of the dashboard that a node without tiers can answer,
    and the node variable, against the real Prometheus; the tier, unit,
    governor and safe-mode queries need systemd (tests/vm/test_fleet_vm.py)."""
    selector, label = node_variable()
    values = api(fleet.lab.hub, f"/api/v1/label/{label}/values", **{"match[]": selector})
    assert set(values) == set(fleet.nodes)
    # A firing alert for the "Firing taucg alerts" panel: node-3 is unhealthy.
    wait_for(lambda: fleet.query('ALERTS{alertname="TaucgHealthBelowThreshold"}'),
             PATIENCE, "node-3's health alert to fire")
    checked = dashboard_series(fleet.lab.hub, "node-2", SYSTEMD_ONLY, PATIENCE)
    assert len(checked) >= 15, checked


SYSTEMD_ONLY = ("taucg_tier_", "taucg_unit_", "taucg_governor_", "taucg_safe_mode",
                "taucg_recovery_")


def test_unhealthy_node_alert_arrives_and_resolves(fleet: Fleet) -> None:
    node = fleet.nodes["node-3"]
    wait_for(lambda: "node-3" in firing(fleet, "TaucgHealthBelowThreshold"), PATIENCE,
             "Alertmanager to deliver node-3's TaucgHealthBelowThreshold")
    alert = next(a for a in fleet.receiver.alerts("TaucgHealthBelowThreshold", "firing")
                 if a["labels"]["instance"] == "node-3")
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["job"] == "taucg"
    assert "health of node-3 is 0." in alert["annotations"]["summary"]
    # The healthy nodes never fired it.
    assert firing(fleet, "TaucgHealthBelowThreshold") == {"node-3"}
    node.reload(HEALTHY)
    wait_for(lambda: "node-3" in resolved(fleet, "TaucgHealthBelowThreshold"), PATIENCE,
             "Alertmanager to deliver node-3's health alert resolved")
    assert not fleet.query('ALERTS{alertname="TaucgHealthBelowThreshold"}')


def test_stopped_node_fires_node_down(fleet: Fleet) -> None:
    assert "node-1" not in firing(fleet, "TaucgNodeDown")
    node = fleet.nodes["node-1"]
    assert node.child.stop() == 0
    wait_for(lambda: "node-1" in firing(fleet, "TaucgNodeDown"), PATIENCE,
             "Alertmanager to deliver TaucgNodeDown for the stopped node-1")
    assert firing(fleet, "TaucgNodeDown") == {"node-1"}
    a = fleet.receiver.alerts("TaucgNodeDown", "firing")[0]
    assert a["labels"]["severity"] == "critical"
    assert a["annotations"]["summary"] == "taucg on node-1 stopped reporting"
