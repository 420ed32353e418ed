"""The HTTP face's pure parts: the web config's parsing and its errors,
basic auth, the REST routes read from openapi.json and their parameters."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.http import rest
from taucg.faces.http.web_config import WebConfigError, parse

pytestmark = pytest.mark.unit

F = "/etc/taucg/web.yml"


def test_an_empty_web_config_is_plain_http_without_users() -> None:
    web = parse("", F)
    assert web.tls is None and not web.users and web.ssl_context() is None
    assert web.check_password("anyone", "anything")


def test_tls_paths_are_relative_to_the_web_config() -> None:
    web = parse("tls_server_config:\n  cert_file: a.crt\n  key_file: /k/a.key\n"
                "  client_ca_file: ca.crt\n", F)
    assert web.tls is not None
    assert web.tls.cert_file == Path("/etc/taucg/a.crt")
    assert web.tls.key_file == Path("/k/a.key")
    # exporter-toolkit: a client CA without a policy means require and verify.
    assert web.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert web.tls.min_version == "TLS12"


@pytest.mark.parametrize(("text", "key", "fix"), [
    ("tls_server_config: {key_file: k}", "tls_server_config.cert_file", "cert_file and key_file"),
    ("tls_server_config: {cert_file: c, key_file: k, min_version: TLS14}",
     "tls_server_config.min_version", "TLS12"),
    ("tls_server_config: {cert_file: c, key_file: k, client_auth_type: Any}",
     "tls_server_config.client_auth_type", "RequireAndVerifyClientCert"),
    ("tls_server_config: {cert_file: c, key_file: k, client_ca_file: ca,"
     " client_auth_type: NoClientCert}", "tls_server_config.client_auth_type",
     "remove client_ca_file"),
    ("tls_server_config: {cert_file: c, key_file: k, cipher_suites: [X]}",
     "tls_server_config.cipher_suites", "not supported"),
    ("basic_auth_users: {alice: hunter2}", "basic_auth_users.alice", "bcrypt"),
    ("basic_auth_users: [alice]", "basic_auth_users", "mapping"),
    ("http_server_config: {headers: {X-A: [1]}}", "http_server_config.headers", "mapping"),
    ("tls_server_confg: {}", "tls_server_confg", "unknown key"),
    ("a: [b", "line", "not valid YAML"),
    ("- a\n- b\n", "", "expected a mapping"),
])
def test_bad_web_configs_name_file_key_and_fix(text: str, key: str, fix: str) -> None:
    with pytest.raises(WebConfigError) as err:
        parse(text, F)
    message = str(err.value)
    assert message.startswith(f"web config {F}: ")
    assert key in message and fix in message


def test_client_auth_types_map_to_ssl() -> None:
    for name, mode in (("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
                       ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED)):
        web = parse(f"tls_server_config: {{cert_file: c, key_file: k, client_ca_file: ca,"
                    f" client_auth_type: {name}}}", F)
        assert web.tls is not None and web.tls.client_auth_type == name
        from taucg.faces.http.web_config import CLIENT_AUTH

        assert CLIENT_AUTH[name] == mode


def test_basic_auth_checks_bcrypt_hashes() -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = parse(f"basic_auth_users:\n  alice: '{hashed}'\n", F)
    assert web.check_password("alice", "s3cret")
    assert web.check_password("alice", "s3cret")  # the cached answer
    assert not web.check_password("alice", "wrong")
    assert not web.check_password("bob", "s3cret")
    assert not web.check_password("", "")


def test_every_route_is_a_read_method_of_the_socket_api() -> None:
    from taucg.faces.daemon_api import methods

    api = methods(object())  # type: ignore[arg-type]  # the closures are not called
    for route in rest.routes().values():
        assert route.method in api, route
        assert not api[route.method].mutation, route
    mutations = {name for name, m in api.items() if m.mutation}
    assert mutations and not mutations & {r.method for r in rest.routes().values()}


@pytest.mark.parametrize(("path", "query", "expect"), [
    ("/api/v1/alerts", "count=5", {"count": 5}),
    ("/api/v1/alerts", "", {}),
    ("/api/v1/history", "metric=load1&since=1.5&until=2", {"metric": "load1", "since": 1.5,
                                                          "until": 2.0}),
    ("/api/v1/processes", "tier=low&unit=a", {"tier": "low", "unit": "a"}),
    ("/api/v1/logs/recent", "level=error&log=audit", {"level": "error", "log": "audit"}),
    ("/api/v1/recovery/flight", "unit=a&live=true", {"unit": "a", "live": True}),
    ("/api/v1/recovery/flight", "unit=a&live=false&event=3", {"unit": "a", "live": False,
                                                              "event": 3}),
])
def test_query_strings_become_typed_parameters(path: str, query: str,
                                               expect: dict[str, Any]) -> None:
    assert rest.routes()[path].parameters(query) == expect


@pytest.mark.parametrize(("path", "query", "parameter"), [
    ("/api/v1/alerts", "count=0", "count"),
    ("/api/v1/alerts", "count=1001", "count"),
    ("/api/v1/alerts", "count=1.5", "count"),
    ("/api/v1/alerts", "count=", "count"),
    ("/api/v1/alerts", "count=1&count=2", "count"),
    ("/api/v1/history", "since=nan", "since"),
    ("/api/v1/history", "until=inf", "until"),
    ("/api/v1/processes", "tier=middle", "tier"),
    ("/api/v1/logs/recent", "level=loud", "level"),
    ("/api/v1/tiers", "x=1", "x"),
    ("/api/v1/recovery/flight", "unit=a&live=yes", "live"),
    ("/api/v1/recovery/flight", "unit=a&event=-1", "event"),
])
def test_bad_parameters_are_named(path: str, query: str, parameter: str) -> None:
    with pytest.raises(rest.BadRequest) as err:
        rest.routes()[path].parameters(query)
    assert err.value.parameter == parameter and parameter in str(err.value)
