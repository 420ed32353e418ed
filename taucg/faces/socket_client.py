"""The client of the daemon's Unix-socket API (JSON-RPC 2.0, one object per
line; see jsonrpc.py): one request and its answer, or a subscription's
notifications. Kept apart from the server so that a CLI command asking the
daemon loads neither asyncio nor the audit log.

Request:  {"jsonrpc": "2.0", "id": 1, "method": "health", "params": {...}}
Response: {"jsonrpc": "2.0", "id": 1, "result": ...}
      or  {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "...",
                                                "data": {"code": "not_root"}}}
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from taucg.faces.jsonrpc import VERSION, error, request


class DaemonNotRunning(Exception):
    """No daemon answers on the socket; the message says how to start one."""


class DaemonError(Exception):
    """The daemon answered with an error; code is taucg's string code
    (error.data.code), number JSON-RPC's."""

    def __init__(self, code: str, message: str, number: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.number = number


def encode(obj: Any) -> bytes:
    """One JSON line; never NaN or Infinity, which are not JSON."""
    try:
        return json.dumps(obj, default=str, allow_nan=False).encode() + b"\n"
    except ValueError:
        req_id = obj.get("id") if isinstance(obj, dict) else None
        return json.dumps(error(req_id, "internal", "the answer held a non-finite number")
                          ).encode() + b"\n"


def _connect(path: str | Path, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise DaemonNotRunning(
            f"the taucg daemon is not running (nothing answers on {path}); start it "
            "with 'systemctl start taucg' (or 'taucg daemon')") from None
    except BlockingIOError:
        sock.close()
        raise DaemonError("busy", f"the daemon's socket {path} has a full backlog; it "
                                  "is overloaded or stuck: try again, or see "
                                  "'journalctl -u taucg'") from None
    except PermissionError:
        sock.close()
        raise DaemonNotRunning(
            f"permission denied on {path}: the daemon's state is for root and the "
            "group in [daemon] socket_group; ask an admin to add you to it") from None
    return sock


def _lines(sock: socket.socket) -> Iterator[dict[str, Any]]:
    """The daemon's objects, one per line, until it closes."""
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        try:
            obj = json.loads(line)
        except ValueError:
            raise DaemonError("bad_response", f"the daemon sent what is not JSON: "
                                              f"{line[:200]!r}") from None
        if not isinstance(obj, dict) or obj.get("jsonrpc") != VERSION:
            raise DaemonError("bad_response", f"the daemon sent what is not JSON-RPC 2.0: "
                                              f"{line[:200]!r}")
        yield obj


def _answer(response: dict[str, Any], req_id: Any) -> Any:
    err = response.get("error")
    if isinstance(err, dict):
        data = err.get("data")
        if not isinstance(data, dict):
            data = {}
        number = err.get("code")
        raise DaemonError(str(data.get("code", number)), str(err.get("message", response)),
                          number if isinstance(number, int) else None)
    if response.get("id") != req_id or "result" not in response:
        raise DaemonError("bad_response", f"the daemon answered another request: {response}")
    return response["result"]


def _ask(sock: socket.socket, method: str, params: Mapping[str, Any] | None,
         req_id: int) -> tuple[Any, Iterator[dict[str, Any]]]:
    # Refused at once ("busy"), the send may fail; the refusal is still there to read.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(encode(request(req_id, method, params or {})))
    lines = _lines(sock)
    for obj in lines:
        # A notification is no answer; anything with an id (or an error
        # with a null id: the daemon refused the connection) is.
        if "method" not in obj:
            return _answer(obj, req_id), lines
    raise DaemonError("closed", "the daemon closed the connection without answering; "
                                "see 'journalctl -u taucg'")


def call(path: str | Path, method: str, params: Mapping[str, Any] | None = None,
         timeout: float = 30.0) -> Any:
    """One request to the daemon; returns its result or raises."""
    sock = _connect(path, timeout)
    try:
        return _ask(sock, method, params, 1)[0]
    except TimeoutError:
        raise DaemonError("timeout", f"the daemon did not answer {method} within "
                                     f"{timeout:g} s") from None
    finally:
        sock.close()


def subscribe(path: str | Path, topics: list[str] | None = None,
              timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """The daemon's notifications ({"method": "taucg.alert", "params": {...}},
    ...) as they come, until the daemon ends the subscription; ``timeout``
    bounds the wait for each one (TimeoutError)."""
    sock = _connect(path, 30.0)
    try:
        _, lines = _ask(sock, "subscribe", {"topics": topics} if topics else {}, 1)
        sock.settimeout(timeout)
        for obj in lines:
            yield {"method": obj.get("method"), "params": obj.get("params")}
    finally:
        sock.close()
