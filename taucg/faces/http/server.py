"""The daemon's one HTTP server: /metrics (the Prometheus collector), the
read-only REST API under /api/v1/ and the dashboard at /, on its own
thread (a ThreadingHTTPServer), secured by the web config file.

Metrics read the published DaemonState at scrape time, as before. A REST
request runs the socket API's own read method on the daemon's loop
(run_coroutine_threadsafe), so both faces give the same answer and check
parameters the same way; mutations are never handed to this server at all.
Each connection's TLS handshake happens on that connection's thread, so a
slow client cannot stall the accept loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import json
import logging
import math
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from taucg.config.values import parse_address
from taucg.faces.http import rest
from taucg.faces.http.web_config import WebConfig
from taucg.faces.socket_api import ApiError, Method, Peer

if TYPE_CHECKING:
    from taucg.faces.daemon_state import DaemonState

# Reads over HTTP carry no peer credentials: they run as "nobody", which
# no read method distinguishes and no mutation would accept.
HTTP_PEER = Peer(pid=0, uid=65534, gid=65534)
CALL_TIMEOUT = 30.0
CONNECTION_TIMEOUT = 30.0  # a client silent this long is dropped
MAX_CONNECTIONS = 64  # past this, new connections are closed at once
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A request thread may wait on the daemon's loop, which is the thread
    # closing the server: never join them there.
    block_on_close = False
    app: HttpFace

    def __init__(self, address: tuple[str, int], app: HttpFace) -> None:
        self.app = app
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT)
        ctx = self.app.tls
        if ctx is not None:
            try:
                request = ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                # A refused client certificate ends here, before any HTTP.
                self.app.log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        _Handler(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.app.log.debug("HTTP connection from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    def version_string(self) -> str:
        return "taucg"

    # ------------------------------------------------------------ verbs ---

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def __getattr__(self, name: str) -> Any:
        # Every other verb (POST, PUT, DELETE, ...): the API is read-only.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._json(405, _error("method_not_allowed", f"{self.command} is not allowed: this "
                               "server is read-only (GET); changes go through the Unix "
                               "socket (taucg reload, taucg apply)"),
                   headers={"Allow": "GET, HEAD"})

    def log_message(self, format: str, *args: Any) -> None:
        self.server.app.log.debug("http %s: " + format, self.client_address[0], *args)

    # ---------------------------------------------------------- serving ---

    def _serve(self, body: bool) -> None:
        self._body = body
        app = self.server.app
        if not self._authorized(app):
            return
        path = urlsplit(self.path)
        route = path.path
        if route == "/metrics":
            self._metrics(app)
        elif route == rest.SPEC_PATH:
            self._send(200, rest.spec_text(), "application/json")
        elif route in rest.routes():
            self._rest(app, rest.routes()[route], path.query)
        elif route in STATIC:
            name, ctype = STATIC[route]
            self._send(200, _static(name), ctype)
        else:
            self._json(404, _error("not_found", f"no {route} here; the API is under "
                                   f"{rest.PREFIX} (see {rest.SPEC_PATH}), metrics at "
                                   "/metrics, the dashboard at /"))

    def _authorized(self, app: HttpFace) -> bool:
        web = app.web
        if isinstance(self.connection, ssl.SSLSocket) and not web.allowed(
                self.connection.getpeercert()):
            self._json(403, _error("forbidden", "the client certificate names none of "
                                   "client_allowed_sans"))
            return False
        if not web.users:
            return True
        user = password = ""
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode(
                    ).partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
        if user and web.check_password(user, password):
            return True
        self._json(401, _error("unauthorized", "this server needs HTTP basic auth: a user "
                               "of basic_auth_users in the web config"),
                   headers={"WWW-Authenticate": 'Basic realm="taucg", charset="UTF-8"'})
        return False

    def _metrics(self, app: HttpFace) -> None:
        from prometheus_client.exposition import choose_encoder

        encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
        self._send(200, encoder(app.registry), ctype)

    def _rest(self, app: HttpFace, route: rest.Route, query: str) -> None:
        try:
            params = route.parameters(query)
        except rest.BadRequest as exc:
            self._json(400, _error("bad_params", str(exc), exc.parameter))
            return
        try:
            result = app.call(route.method, params)
        except ApiError as exc:
            self._json(rest.STATUS.get(exc.code, 500), _error(exc.code, exc.message))
            return
        except concurrent.futures.TimeoutError:
            self._json(503, _error("unavailable", f"the daemon did not answer within "
                                   f"{CALL_TIMEOUT:g} s; try again"))
            return
        self._json(200, result)

    def _json(self, status: int, doc: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(doc, allow_nan=False, default=str,
                          separators=(",", ":")).encode()
        self._send(status, body, "application/json", headers)

    def _send(self, status: int, body: bytes, ctype: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        for k, v in self.server.app.web.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if getattr(self, "_body", True):
            self.wfile.write(body)


def _error(code: str, message: str, parameter: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "parameter": parameter}}


def _static(name: str) -> bytes:
    return resources.files("taucg.faces.http").joinpath("static", name).read_bytes()


def _finite(doc: Any) -> Any:
    """NaN and infinities as null: JSON has neither."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_finite(v) for v in doc]
    return doc


class HttpFace:
    """Build it on the daemon's loop, then start(); shutdown() stops it."""

    def __init__(self, state: Callable[[], DaemonState], methods: Mapping[str, Method],
                 address: str, web: WebConfig, log: logging.Logger) -> None:
        from taucg.faces.metrics import registry

        self.log = log
        self.web = web
        self.tls = web.ssl_context()
        self.address = address
        self.loop = asyncio.get_running_loop()
        # Only reads: a route naming a mutation finds nothing to call.
        self.reads = {k: m for k, m in methods.items() if not m.mutation}
        missing = {r.method for r in rest.routes().values()} - set(self.reads)
        if missing:
            raise RuntimeError(f"REST routes name unknown read methods: {sorted(missing)}")
        self.registry = registry(state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def call(self, method: str, params: Mapping[str, Any]) -> Any:
        async def run() -> Any:
            return await self.reads[method].handler(HTTP_PEER, params)

        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            run(), self.loop)
        try:
            return _finite(future.result(CALL_TIMEOUT))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def start(self) -> None:
        host, port = parse_address(self.address)
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="taucg-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
