"""Deciding whether and how the HTTP server may serve: the address (or its
older name metrics_address), the web config, and the rule that an address
other than loopback needs TLS unless [daemon] insecure = true. The config
loader refuses the plain case already; this refuses it again at start,
where a web config without tls_server_config is first seen."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from taucg.config.values import is_loopback, parse_address

if TYPE_CHECKING:
    from taucg.config.schema import Config
    from taucg.faces.daemon_state import DaemonState
    from taucg.faces.http.server import HttpFace
    from taucg.faces.socket_api import Method


class HttpRefused(Exception):
    """The HTTP server must not serve as configured; str() names the key
    and the fix."""


def address_of(cfg: Config) -> tuple[str, str]:
    """(the address, the key that set it); ("", "") serves nothing."""
    d = cfg.daemon
    if d.http_address:
        return d.http_address, "http_address"
    if d.metrics_address:
        return d.metrics_address, "metrics_address"
    return "", ""


def open_http(cfg: Config, state: Callable[[], DaemonState], methods: Mapping[str, Method],
              log: logging.Logger) -> HttpFace:
    """Checks and builds the server, not yet serving; HttpRefused when the
    config must not be served, OSError when the address cannot be bound."""
    from taucg.faces.http.server import HttpFace
    from taucg.faces.http.web_config import WebConfigError, load

    address, key = address_of(cfg)
    d = cfg.daemon
    try:
        web = load(d.web_config_file)
        face = HttpFace(state, methods, address, web, log)
    except WebConfigError as exc:
        raise HttpRefused(f"{exc} ([daemon] web_config_file)") from None
    host, _port = parse_address(address)
    if face.tls is None and not is_loopback(host) and not d.insecure:
        why = ("has no tls_server_config" if d.web_config_file
               else "is not set ([daemon] web_config_file)")
        raise HttpRefused(f"[daemon] {key} = {address!r} is not a loopback address and the web "
                          f"config {why}: plain HTTP there would send metrics and the API "
                          "unencrypted; add tls_server_config with cert_file and key_file to "
                          "the web config, or set [daemon] insecure = true to serve plain "
                          "HTTP anyway")
    if face.tls is None and not is_loopback(host):
        log.warning("serving plain HTTP on %s, which is not loopback, because "
                    "[daemon] insecure = true", address)
    return face
