"""The fleet's engines for tests: Debian's Prometheus and Alertmanager run
in a namespace of the test's Lab, and a webhook receiver (http.server on a
thread) that records what Alertmanager sends. Each process is the test's
own child, stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from tests.support.contrib import (
    dashboard_queries,
    metric_names,
    node_variable,
    rules_with_short_for,
    substitute,
    tool,
)
from tests.support.netns import Netns
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
RECEIVER_PORT = 9099


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # our own child, by PID
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: "
                                 f"{self.log.read_text()[-3000:]}")
        return True


def inside(ns: Netns | None) -> AbstractContextManager[None]:
    """ns entered, or the test's own namespace for None (the VM's)."""
    return nullcontext() if ns is None else ns.entered()


def start(ns: Netns | None, name: str, argv: Sequence[str], workdir: Path) -> Child:
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:  # a file: nobody drains a pipe while the test runs
        # PYTHONPATH: a daemon imports this checkout, not the tree the venv
        # was installed from (cwd is the test's own directory).
        proc = subprocess.Popen(list(argv) if ns is None else ns.argv(argv), stdout=out,
                                stderr=subprocess.STDOUT, cwd=workdir,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    return Child(name, proc, log)


def write_yaml(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    return path


@dataclass(frozen=True)
class Target:
    node: str  # the instance label: how alerts and the dashboard name the node
    address: str  # HOST:PORT


def start_prometheus(ns: Netns | None, workdir: Path, targets: Sequence[Target],
                     scrape: Mapping[str, Any], for_seconds: int = 3,
                     alertmanager: bool = True) -> Child:
    """Scrapes the targets every second in the job "taucg" with the shipped
    rules, every `for:` shortened to for_seconds; alerts go to the
    Alertmanager on the same namespace's loopback. scrape: the job's
    scheme, tls_config etc."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "taucg-rules.yml").write_text(rules_with_short_for(for_seconds))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "rule_files": ["taucg-rules.yml"],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{ALERTMANAGER_PORT}"]}]}]
            if alertmanager else []},
        "scrape_configs": [{
            "job_name": "taucg", **scrape,
            # instance set by hand to the node's name, as relabeling would.
            "static_configs": [{"targets": [t.address], "labels": {"instance": t.node}}
                               for t in targets]}],
    }
    write_yaml(workdir / "prometheus.yml", config)
    return start(ns, "prometheus", [
        tool("prometheus"), "--config.file=prometheus.yml", f"--storage.tsdb.path={workdir}/data",
        f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        # Firing alerts are resent every second, not every minute.
        "--rules.alert.resend-delay=1s"], workdir)


def start_alertmanager(ns: Netns, workdir: Path) -> Child:
    """Every alert to the receiver, grouped by alert and node, resolved ones too."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_yaml(workdir / "alertmanager.yml", {
        "route": {"receiver": "test", "group_by": ["alertname", "instance"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": f"http://127.0.0.1:{RECEIVER_PORT}/alerts", "send_resolved": True}]}],
    })
    return start(ns, "alertmanager", [
        tool("prometheus-alertmanager"), "--config.file=alertmanager.yml",
        f"--storage.path={workdir}/data", f"--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}",
        "--cluster.listen-address="], workdir)  # no gossip: one Alertmanager


@dataclass
class Notification:
    status: str  # the group's: firing or resolved
    alerts: list[dict[str, Any]]


@dataclass
class Receiver:
    """Alertmanager's webhook receiver: every POST body, in arrival order."""

    received: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: HTTPServer | None = None

    def start(self, ns: Netns) -> None:
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with me.lock:
                    me.received.append(Notification(body["status"], body["alerts"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        with ns.entered():  # the listening socket lives in the hub
            self.server = HTTPServer(("127.0.0.1", RECEIVER_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def alerts(self, alertname: str, status: str) -> list[dict[str, Any]]:
        """Each alert of that name and status that arrived, in order."""
        with self.lock:
            return [a for n in self.received for a in n.alerts
                    if a["labels"].get("alertname") == alertname and a["status"] == status]


# No proxy from the environment: every address is inside the test's namespaces.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(ns: Netns | None, url: str) -> bytes:
    with inside(ns), _DIRECT.open(url, timeout=20) as r:
        body: bytes = r.read()
    return body


def ready(ns: Netns | None, port: int) -> bool:
    """Prometheus's or Alertmanager's /-/ready answers 200."""
    try:
        get(ns, f"http://127.0.0.1:{port}/-/ready")
        return True
    except OSError:  # not listening yet, or 503 while it starts
        return False


def api(ns: Netns | None, path: str, **params: str) -> Any:
    """GET Prometheus's HTTP API in ns; the `data` of a success."""
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}{path}?{urllib.parse.urlencode(params)}"
    body = json.loads(get(ns, url))
    assert body["status"] == "success", body
    return body["data"]


def query(ns: Netns | None, expr: str) -> list[dict[str, Any]]:
    """An instant query's vector (or matrix) result."""
    data = api(ns, "/api/v1/query", query=expr)
    result: list[dict[str, Any]] = data["result"]
    return result


def dashboard_series(ns: Netns | None, node: str, skip: tuple[str, ...] = (),
                     patience: float = 180.0) -> list[str]:
    """Runs each dashboard query, $node set to node, until it returns series
    (rate() needs two samples in its window: a wait for them, not for a
    time), and checks that the node variable lists node; skip: metric
    prefixes whose queries are left out. Returns the panels checked."""
    selector, label = node_variable()
    values = api(ns, f"/api/v1/label/{label}/values", **{"match[]": selector})
    assert node in values, values
    checked = []
    for q in dashboard_queries():
        if any(m.startswith(skip) for m in metric_names(q.expr)):
            continue
        expr = substitute(q.expr, node)
        series = wait_for(lambda e=expr: query(ns, e), patience,
                          f"panel {q.panel!r} {q.ref} to return series: {expr}")
        if '$node"' in q.expr:
            assert {s["metric"].get("instance") for s in series} == {node}, expr
        checked.append(f"{q.panel} {q.ref}")
    return checked
