"""The daemon's HTTP server against real daemons: TLS from an
exporter-toolkit web config with a CA this test makes, basic auth, client
certificates, the refusal of plain HTTP off loopback, the metrics_address
alias, and the REST API's errors."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.host.conftest import REPO
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import daemon_config
from tests.support.tls import Pair, free_port, get, make_ca, make_cert, write_web_config
from tests.support.waiting import wait_for

pytestmark = pytest.mark.host


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Pair]:
    ca = make_ca(tmp_path / "pki", "test-ca")
    other = make_ca(tmp_path / "pki", "other-ca")
    return {
        "ca": ca,
        "server": make_cert(ca, tmp_path / "pki", "server", ["IP:127.0.0.1", "DNS:localhost"]),
        "client": make_cert(ca, tmp_path / "pki", "client", ["DNS:scraper"], client=True),
        "stranger": make_cert(other, tmp_path / "pki", "stranger", ["DNS:scraper"],
                              client=True),
    }


def refused(url: str, **kw: Any) -> bool:
    """True when the TLS handshake or the first read is refused."""
    try:
        get(url, **kw)
    except (ssl.SSLError, ConnectionError, urllib.error.URLError, OSError):
        return True
    return False


def run_daemon(root: Path, **sections: Any) -> subprocess.CompletedProcess[str]:
    """A daemon expected to refuse to start: it must exit on its own."""
    config = daemon_config(root, **sections)
    return subprocess.run(taucg_argv("daemon", config=config), cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


# ------------------------------------------------------------- TLS ---


def test_tls_and_basic_auth(start_daemon: Any, tmp_path: Path, pki: dict[str, Pair]) -> None:
    web = write_web_config(tmp_path / "web.yml", server=pki["server"],
                           users={"prometheus": "s3cret"})
    port = free_port()
    d = start_daemon(daemon={"http_address": f"127.0.0.1:{port}", "web_config_file": web})
    wait_for(lambda: d.call("status")["sweeps"] >= 1, 60, "a first sweep")
    base = f"https://127.0.0.1:{port}"
    ca = pki["ca"].cert

    ok = get(f"{base}/metrics", ca=ca, auth=("prometheus", "s3cret"))
    assert ok.status == 200 and b"taucg_sampler_sweeps_total" in ok.body
    tiers = get(f"{base}/api/v1/tiers", ca=ca, auth=("prometheus", "s3cret"))
    assert tiers.status == 200 and len(json.loads(tiers.body)["tiers"]) == 5

    for auth in (None, ("prometheus", "wrong"), ("nobody", "s3cret")):
        no = get(f"{base}/metrics", ca=ca, auth=auth)
        assert no.status == 401, auth
        assert no.headers["WWW-Authenticate"].startswith("Basic")
        assert b"taucg_" not in no.body
    # The server's certificate is checked against the test's CA: a client
    # that trusts only the system's CAs refuses it.
    assert refused(f"{base}/metrics", auth=("prometheus", "s3cret"))
    # Plain HTTP to the TLS port gets no metrics.
    try:
        plain = get(f"http://127.0.0.1:{port}/metrics", auth=("prometheus", "s3cret"))
        assert plain.status >= 400 and b"taucg_" not in plain.body
    except (ConnectionError, urllib.error.URLError, OSError):
        pass  # refused outright: as good


def test_client_certificate_required(start_daemon: Any, tmp_path: Path,
                                     pki: dict[str, Pair]) -> None:
    web = write_web_config(tmp_path / "web.yml", server=pki["server"],
                           client_ca=pki["ca"].cert,
                           client_auth_type="RequireAndVerifyClientCert")
    port = free_port()
    start_daemon(daemon={"http_address": f"127.0.0.1:{port}", "web_config_file": web})
    url = f"https://127.0.0.1:{port}/api/v1/daemon"
    ca = pki["ca"].cert

    ok = get(url, ca=ca, client=pki["client"])
    assert ok.status == 200 and json.loads(ok.body)["version"]
    assert refused(url, ca=ca), "no client certificate was accepted"
    assert refused(url, ca=ca, client=pki["stranger"]), "a certificate of another CA was accepted"


def test_client_certificate_verified_if_given(start_daemon: Any, tmp_path: Path,
                                             pki: dict[str, Pair]) -> None:
    web = write_web_config(tmp_path / "web.yml", server=pki["server"],
                           client_ca=pki["ca"].cert, client_auth_type="VerifyClientCertIfGiven")
    port = free_port()
    start_daemon(daemon={"http_address": f"127.0.0.1:{port}", "web_config_file": web})
    url = f"https://127.0.0.1:{port}/api/v1/health"
    ca = pki["ca"].cert
    assert get(url, ca=ca).status == 200
    assert get(url, ca=ca, client=pki["client"]).status == 200
    assert refused(url, ca=ca, client=pki["stranger"])


# ------------------------------------------------------ refusals ---


def test_plain_http_off_loopback_is_refused(daemon_root: Path, tmp_path: Path) -> None:
    """The issue's must-show: plain HTTP on an address other than loopback
    is refused, at config load and at start, unless insecure = true."""
    port = free_port("0.0.0.0")
    address = f"0.0.0.0:{port}"
    r = run_daemon(daemon_root, daemon={"http_address": address})
    assert r.returncode != 0
    assert "daemon.http_address" in r.stderr and "web_config_file" in r.stderr
    assert "insecure = true" in r.stderr
    check = taucg("config", "check", daemon_root / "taucg.toml", check=False)
    assert check.returncode != 0 and "not a loopback address" in check.stdout + check.stderr

    # A web config with users but no TLS passes the loader, and start refuses it.
    web = write_web_config(tmp_path / "web.yml", users={"u": "p"})
    r = run_daemon(daemon_root, daemon={"http_address": address, "web_config_file": web})
    assert r.returncode != 0
    out = r.stdout + r.stderr + (daemon_root / "log" / "monitor.log").read_text()
    assert "has no tls_server_config" in out and "insecure = true" in out
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_insecure_true_serves_plain_http_off_loopback(start_daemon: Any) -> None:
    port = free_port("0.0.0.0")
    start_daemon(daemon={"http_address": f"0.0.0.0:{port}", "insecure": True})
    a = get(f"http://127.0.0.1:{port}/api/v1/daemon")
    assert a.status == 200


@pytest.mark.parametrize(("web", "words"), [
    ({"tls_server_config": {"cert_file": "a.crt"}}, ["tls_server_config.key_file", "missing"]),
    ({"basic_auth_users": {"u": "plaintext"}}, ["basic_auth_users.u", "bcrypt hash"]),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b",
                            "client_auth_type": "RequireAnyClientCert", "client_ca_file": "c"}},
     ["client_auth_type", "RequireAndVerifyClientCert"]),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b",
                            "client_auth_type": "RequireAndVerifyClientCert"}},
     ["client_ca_file"]),
    ({"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}},
     ["nope.crt", "no such file"]),
    ({"tls_config": {}}, ["tls_config", "unknown key"]),
])
def test_bad_web_configs_name_the_file_and_key(daemon_root: Path, tmp_path: Path,
                                               web: dict[str, Any], words: list[str]) -> None:
    import yaml

    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(web))
    r = run_daemon(daemon_root, daemon={"http_address": f"127.0.0.1:{free_port()}",
                                        "web_config_file": path})
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert str(path) in out, out
    for w in words:
        assert w in out, (w, out)
    assert "Traceback" not in out


# ----------------------------------------------------------- alias ---


def test_metrics_address_still_serves_everything(start_daemon: Any) -> None:
    port = free_port()
    d = start_daemon(daemon={"metrics_address": f"127.0.0.1:{port}"})
    wait_for(lambda: d.call("status")["sweeps"] >= 1, 60, "a first sweep")
    assert b"taucg_sampler_sweeps_total" in get(f"http://127.0.0.1:{port}/metrics").body
    assert get(f"http://127.0.0.1:{port}/api/v1/tiers").status == 200
    assert b"<title>taucg</title>" in get(f"http://127.0.0.1:{port}/").body


def test_both_addresses_differing_is_a_config_error(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, daemon={"metrics_address": "127.0.0.1:9464",
                                             "http_address": "127.0.0.1:9465"})
    r = taucg("config", "check", config, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "http_address" in out and "metrics_address" in out


# ------------------------------------------------------------ REST ---


def test_rest_errors(start_daemon: Any) -> None:
    port = free_port()
    d = start_daemon(daemon={"http_address": f"127.0.0.1:{port}"})
    wait_for(lambda: d.call("status")["sweeps"] >= 2, 60, "two sweeps")
    base = f"http://127.0.0.1:{port}"

    bad = get(f"{base}/api/v1/alerts?count=zero")
    err = json.loads(bad.body)["error"]
    assert bad.status == 400 and err["parameter"] == "count" and "integer" in err["message"]
    bad = get(f"{base}/api/v1/governor?count=501")
    assert bad.status == 400 and json.loads(bad.body)["error"]["parameter"] == "count"
    bad = get(f"{base}/api/v1/processes?tier=middle")
    assert bad.status == 400 and "critical, high" in json.loads(bad.body)["error"]["message"]
    bad = get(f"{base}/api/v1/tiers?color=red")
    assert bad.status == 400 and json.loads(bad.body)["error"]["parameter"] == "color"
    assert get(f"{base}/api/v1/history?metric=no_such").status == 404
    assert get(f"{base}/api/v1/nothing").status == 404
    for verb in ("POST", "PUT", "DELETE", "PATCH"):
        a = get(f"{base}/api/v1/tiers", method=verb)
        assert a.status == 405 and a.headers["Allow"] == "GET, HEAD"
    # reload, apply and the rest of the mutations have no route at all.
    for name in ("reload", "apply", "recovery/leave_safe_mode", "recovery/save_state"):
        assert get(f"{base}/api/v1/{name}", method="POST").status == 405
        assert get(f"{base}/api/v1/{name}").status == 404

    points = json.loads(get(f"{base}/api/v1/history?metric=memory_percent").body)
    series = points["metrics"]["memory_percent"]["points"]
    assert len(series) >= 2
    middle = series[len(series) // 2][0]
    later = json.loads(get(f"{base}/api/v1/history?metric=memory_percent"
                           f"&since={middle}").body)["metrics"]["memory_percent"]["points"]
    assert later and all(t >= middle for t, _v in later) and len(later) < len(series) + 2
    names = json.loads(get(f"{base}/api/v1/history/metrics").body)["metrics"]
    assert "memory_percent" in names
    spec = json.loads(get(f"{base}/api/v1/openapi.json").body)
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/tiers" in spec["paths"]
