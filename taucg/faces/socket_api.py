"""The daemon's Unix-socket API, the server side: JSON requests and
responses, one per line (the client is socket_client.py).

Request:  {"method": "health", "params": {...}, "id": 1}
Response: {"id": 1, "ok": true, "result": ...}
      or  {"id": 1, "ok": false, "error": {"code": "forbidden", "message": "..."}}

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
from taucg.faces.socket_client import encode

MAX_REQUEST_BYTES = 1 << 16
MAX_CONNECTIONS = 64  # in all: past it a client is told "busy" and closed
MAX_PER_PEER = 16  # per peer uid, so one user cannot take every slot
IDLE_SECONDS = 30.0  # a connection that sends no complete request is closed
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


def _error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


class Server:
    def __init__(self, methods: Mapping[str, Method], audit: AuditHook,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.methods = methods
        self.audit = audit
        self.log = log
        self._server: asyncio.AbstractServer | None = None
        self.path: Path | None = None
        self._open: dict[int, int] = {}  # peer uid -> open connections

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
                writer.write(encode(_error(None, "busy", f"{why}; try again later")))
                await writer.drain()
                writer.close()
            return
        self._open[peer.uid] = self._open.get(peer.uid, 0) + 1
        try:
            await self._requests(peer, reader, writer)
        finally:
            self._open[peer.uid] -= 1
            if not self._open[peer.uid]:
                del self._open[peer.uid]

    async def _requests(self, peer: Peer, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), IDLE_SECONDS)
                except TimeoutError:
                    break  # silent too long: the slot goes to someone else
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial.strip():
                        break
                    line = exc.partial  # a last request without its newline
                except asyncio.LimitOverrunError:
                    writer.write(encode(_error(None, "too_large",
                                                f"request over {MAX_REQUEST_BYTES} bytes")))
                    await writer.drain()
                    break  # the rest of that line cannot be framed
                if not line.strip():
                    continue
                response = await self.dispatch(peer, line)
                writer.write(encode(response))
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        except Exception as exc:
            # Whatever it was, one line in the log and a clean close.
            self.log(f"API connection from {peer.describe()} closed: {exc!r}")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def dispatch(self, peer: Peer, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            self.log(f"API request from {peer.describe()} refused: nested too deep")
            return _error(None, "bad_request", "not JSON taucg takes: nested too deep")
        except ValueError as exc:  # JSONDecodeError, bad UTF-8, a 5,000-digit number
            self.log(f"API request from {peer.describe()} refused: {str(exc)[:200]}")
            return _error(None, "bad_request", f"not JSON taucg takes: {str(exc)[:200]}")
        if not isinstance(request, dict):
            return _error(None, "bad_request", "a request is a JSON object with a \"method\"")
        req_id = request.get("id")
        name = request.get("method")
        params = request.get("params", {})
        if not isinstance(name, str):
            return _error(req_id, "bad_request", "\"method\" must be a string")
        if not isinstance(params, dict):
            return _error(req_id, "bad_request", "\"params\" must be an object")
        method = self.methods.get(name)
        if method is None:
            return _error(req_id, "unknown_method",
                          f"no method {name!r}; methods: {', '.join(sorted(self.methods))}")
        if method.mutation and not peer.is_root:
            self.audit(peer, name, params, "refused: not root")
            return _error(req_id, "forbidden",
                          f"{name} changes the system and needs root; you are "
                          f"{describe_uid(peer.uid)}")
        try:
            result = await method.handler(peer, params)
        except ApiError as exc:
            if method.mutation:
                self.audit(peer, name, params, f"failed: {exc.message}")
            return _error(req_id, exc.code, exc.message)
        except Exception as exc:
            self.log(f"API {name} failed: {exc!r}")
            if method.mutation:
                self.audit(peer, name, params, f"failed: {exc}")
            return _error(req_id, "internal", f"{name} failed: {exc}")
        if method.mutation:
            self.audit(peer, name, params, "ok")
        return {"id": req_id, "ok": True, "result": result}


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
        raise ApiError("bad_request", f"missing parameter {name!r}")
    value = params.get(name, default)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ApiError("bad_request", f"parameter {name!r} must be {kind.__name__}, "
                                      f"got {type(value).__name__}")
    return value
