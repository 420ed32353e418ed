"""The daemon's Unix-socket API, the server side: JSON-RPC 2.0, one
object (or batch) per line each way (the envelope is jsonrpc.py, the
client socket_client.py, the methods daemon_api.py).

A request with an id gets one response; a notification (no id) gets none;
a batch (an array of at most MAX_BATCH requests) gets an array of the
responses its requests with ids earned, or nothing. ``subscribe`` turns
the connection into a stream of the daemon's events (subscriptions.py)
until ``unsubscribe`` or the close; a subscribed connection is exempt from
the idle timeout and still counts against the connection limits.

Access: the socket is 0660 root:<socket_group>, so only root and that group
can connect; reads are open to whoever connects, mutations need uid 0 as
the kernel reports it (SO_PEERCRED), never as the request claims. Every
refusal and every mutation goes to the audit log. A malformed request gets
an error response; the connection and the daemon carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import math
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taucg.actors.records import describe_uid
from taucg.faces import jsonrpc
from taucg.faces.jsonrpc import MAX_BATCH, Invalid, Request, parse_request
from taucg.faces.socket_client import encode
from taucg.faces.subscriptions import TOPICS, Hub, Subscriber

MAX_REQUEST_BYTES = 1 << 16
MAX_CONNECTIONS = 64  # in all: past it a client is told "busy" and closed
MAX_PER_PEER = 16  # per peer uid, so one user cannot take every slot
IDLE_SECONDS = 30.0  # a connection that sends no complete request is closed
DROP_GRACE_SECONDS = 30.0  # a dropped subscriber's last chance to read the final notification
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ApiError(Exception):
    """An error the API answers with; code is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def describe(self) -> str:
        return f"{describe_uid(self.uid)} pid {self.pid} via the API"


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return Peer(*_UCRED.unpack(raw))


Handler = Callable[[Peer, Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    handler: Handler
    mutation: bool = False
    help: str = ""


# What the server reports to its owner: (peer, method, params, result or error).
AuditHook = Callable[[Peer, str, Mapping[str, Any], str], None]


@dataclass(eq=False, slots=True)
class Connection:
    peer: Peer
    writer: asyncio.StreamWriter
    sub: Subscriber | None = None
    sender: asyncio.Task[None] | None = None


class Server:
    def __init__(self, methods: Mapping[str, Method], audit: AuditHook,
                 log: Callable[[str], None] = lambda _m: None, hub: Hub | None = None) -> None:
        self.methods = methods
        self.audit = audit
        self.log = log
        self.hub = hub if hub is not None else Hub(log=log)
        self._server: asyncio.AbstractServer | None = None
        self.path: Path | None = None
        self._open: dict[int, int] = {}  # peer uid -> open connections
        self._conns: set[Connection] = set()
        self._names = sorted([*methods, "subscribe", "unsubscribe"])

    async def start(self, path: Path, group: str) -> None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ApiError("config", f"[daemon] socket_group {group!r} does not exist: create "
                                     f"it (groupadd {group}) or set socket_group to a group "
                                     "that does") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bind under a tight umask so the socket is never, even briefly,
        # connectable by anyone outside root and the group.
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        if os.geteuid() == 0:
            os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock,
                                                       limit=MAX_REQUEST_BYTES)
        self.path = path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Subscribers never go idle: without this, wait_closed waits on them.
            for conn in list(self._conns):
                conn.writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("socket"))
        total = sum(self._open.values())
        if total >= MAX_CONNECTIONS or self._open.get(peer.uid, 0) >= MAX_PER_PEER:
            why = (f"{MAX_CONNECTIONS} connections are open" if total >= MAX_CONNECTIONS
                   else f"{describe_uid(peer.uid)} has {MAX_PER_PEER} connections open")
            with contextlib.suppress(Exception):
                writer.write(encode(jsonrpc.error(None, "busy", f"{why}; try again later")))
                await writer.drain()
                writer.close()
            return
        self._open[peer.uid] = self._open.get(peer.uid, 0) + 1
        conn = Connection(peer, writer)
        self._conns.add(conn)
        try:
            await self._requests(conn, reader)
        finally:
            self._conns.discard(conn)
            self._end_subscription(conn)
            self._open[peer.uid] -= 1
            if not self._open[peer.uid]:
                del self._open[peer.uid]

    async def _requests(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        writer = conn.writer
        try:
            while True:
                try:
                    # A subscriber listens and may say nothing for hours.
                    idle = None if conn.sub is not None else IDLE_SECONDS
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), idle)
                except TimeoutError:
                    break  # silent too long: the slot goes to someone else
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial.strip():
                        break
                    line = exc.partial  # a last request without its newline
                except asyncio.LimitOverrunError:
                    writer.write(encode(jsonrpc.error(
                        None, "too_large", f"request over {MAX_REQUEST_BYTES} bytes")))
                    await writer.drain()
                    break  # the rest of that line cannot be framed
                if not line.strip():
                    continue
                response = await self.dispatch(conn.peer, line, conn)
                if response is not None:
                    writer.write(encode(response))
                    await writer.drain()
                if conn.sub is not None and conn.sender is None:
                    # Only now, so the subscribe answer comes before any notification.
                    conn.sender = asyncio.get_running_loop().create_task(
                        self._send(conn, conn.sub), name="taucg-api-subscriber")
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        except Exception as exc:
            # Whatever it was, one line in the log and a clean close.
            self.log(f"API connection from {conn.peer.describe()} closed: {exc!r}")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, conn: Connection, sub: Subscriber) -> None:
        """Writes one subscriber's notifications; after the final one of a
        drop, closes the connection (at once if the peer never reads it)."""
        writer = conn.writer
        try:
            while True:
                line = await sub.queue.get()
                writer.write(line)
                if sub.dropped and sub.queue.empty():
                    try:
                        await asyncio.wait_for(writer.drain(), DROP_GRACE_SECONDS)
                        writer.close()
                    except TimeoutError:
                        writer.transport.abort()
                    return
                await writer.drain()
        except (ConnectionError, OSError):
            writer.transport.abort()

    def _end_subscription(self, conn: Connection) -> None:
        if conn.sub is not None:
            self.hub.remove(conn.sub)
            conn.sub = None
        if conn.sender is not None:
            conn.sender.cancel()
            conn.sender = None

    async def dispatch(self, peer: Peer, line: bytes, conn: Connection | None = None
                       ) -> dict[str, Any] | list[dict[str, Any]] | None:
        """One line -> its response, a batch's responses, or None (nothing to send)."""
        try:
            doc = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            self.log(f"API request from {peer.describe()} refused: nested too deep")
            return jsonrpc.error(None, "parse_error", "not JSON taucg takes: nested too deep")
        except ValueError as exc:  # JSONDecodeError, bad UTF-8, a 5,000-digit number
            self.log(f"API request from {peer.describe()} refused: {str(exc)[:200]}")
            return jsonrpc.error(None, "parse_error", f"not JSON taucg takes: {str(exc)[:200]}")
        if not isinstance(doc, list):
            return await self._one(peer, doc, conn)
        if not doc:
            return jsonrpc.error(None, "invalid_request", "an empty batch; send at least one "
                                                          "request")
        if len(doc) > MAX_BATCH:
            return jsonrpc.error(None, "invalid_request", f"a batch of {len(doc)} requests; "
                                                          f"at most {MAX_BATCH} in one batch")
        replies = [r for obj in doc if (r := await self._one(peer, obj, conn)) is not None]
        return replies or None

    async def _one(self, peer: Peer, obj: Any, conn: Connection | None
                   ) -> dict[str, Any] | None:
        try:
            req = parse_request(obj)
        except Invalid as exc:
            return exc.reply()  # answered even without an id: it is no notification
        reply = await self._call(peer, req, conn)
        return None if req.notification else reply

    async def _call(self, peer: Peer, req: Request, conn: Connection | None) -> dict[str, Any]:
        name, req_id = req.method, req.id
        if name in ("subscribe", "unsubscribe"):
            if conn is None:
                return jsonrpc.error(req_id, "invalid_request", f"{name} needs a connection")
            try:
                params = _named(req)
                value = self._subscribe(conn, params) if name == "subscribe" else \
                    self._unsubscribe(conn)
            except ApiError as exc:
                return jsonrpc.error(req_id, exc.code, exc.message)
            return jsonrpc.result(req_id, value)
        method = self.methods.get(name)
        if method is None:
            return jsonrpc.error(req_id, "unknown_method",
                                 f"no method {name!r}; methods: {', '.join(self._names)}")
        try:
            params = _named(req)
        except ApiError as exc:
            return jsonrpc.error(req_id, exc.code, exc.message)
        if method.mutation and not peer.is_root:
            self.audit(peer, name, params, "refused: not root")
            return jsonrpc.error(req_id, "not_root",
                                 f"{name} changes the system and needs root; you are "
                                 f"{describe_uid(peer.uid)}")
        try:
            value = await method.handler(peer, params)
        except ApiError as exc:
            if method.mutation:
                self.audit(peer, name, params, f"failed: {exc.message}")
            return jsonrpc.error(req_id, exc.code, exc.message)
        except Exception as exc:
            self.log(f"API {name} failed: {exc!r}")
            if method.mutation:
                self.audit(peer, name, params, f"failed: {exc}")
            return jsonrpc.error(req_id, "internal", f"{name} failed: {exc}")
        if method.mutation:
            self.audit(peer, name, params, "ok")
        return jsonrpc.result(req_id, value)

    def _subscribe(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any]:
        topics = params.get("topics", list(TOPICS))
        if not isinstance(topics, list) or not topics or not all(
                isinstance(t, str) and t in TOPICS for t in topics):
            raise ApiError("bad_params", f"parameter 'topics' must be a non-empty list of "
                                         f"{', '.join(TOPICS)}; got {topics!r:.100}")
        wanted = frozenset(topics)
        if conn.sub is not None and conn.sub.dropped:
            raise ApiError("busy", "this subscription was dropped for reading too slowly; "
                                   "the connection closes: connect and subscribe again")
        if conn.sub is None:
            conn.sub = self.hub.add(wanted)
        else:
            conn.sub.topics = wanted  # a second subscribe changes the topics
        return {"topics": sorted(wanted), "queue_limit": self.hub.limit}

    def _unsubscribe(self, conn: Connection) -> dict[str, Any]:
        was = conn.sub is not None
        self._end_subscription(conn)
        return {"unsubscribed": was}


def _named(req: Request) -> Mapping[str, Any]:
    if isinstance(req.params, list):
        raise ApiError("bad_params", f"{req.method} takes named params: an object, not an "
                                     "array")
    return req.params


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of a double's range")
    return value


def _clear_stale(path: Path) -> None:
    """Removes a socket left by a daemon that died; refuses to take over
    from one that still answers."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise ApiError("busy", f"another taucg daemon answers on {path}; stop it first "
                           "(systemctl stop taucg)")


def param(params: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """A request parameter of the given type, or an ApiError naming it."""
    if name not in params and default is None:
        raise ApiError("bad_params", f"missing parameter {name!r}")
    value = params.get(name, default)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ApiError("bad_params", f"parameter {name!r} must be {kind.__name__}, "
                                      f"got {type(value).__name__}")
    return value
