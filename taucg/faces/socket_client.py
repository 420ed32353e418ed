"""The client of the daemon's Unix-socket API: one request, one answer.
Kept apart from the server so that a CLI command asking the daemon loads
neither asyncio nor the audit log.

Request:  {"method": "health", "params": {...}, "id": 1}
Response: {"id": 1, "ok": true, "result": ...}
      or  {"id": 1, "ok": false, "error": {"code": "forbidden", "message": "..."}}
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class DaemonNotRunning(Exception):
    """No daemon answers on the socket; the message says how to start one."""


class DaemonError(Exception):
    """The daemon answered with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(obj: Any) -> bytes:
    """One JSON line; never NaN or Infinity, which are not JSON."""
    try:
        return json.dumps(obj, default=str, allow_nan=False).encode() + b"\n"
    except ValueError:
        return json.dumps({"id": obj.get("id") if isinstance(obj, dict) else None,
                           "ok": False, "error": {"code": "internal", "message":
                                                  "the answer held a non-finite number"}}
                          ).encode() + b"\n"


def call(path: str | Path, method: str, params: Mapping[str, Any] | None = None,
         timeout: float = 30.0) -> Any:
    """One request to the daemon; returns its result or raises."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                f"the taucg daemon is not running (nothing answers on {path}); start it "
                "with 'systemctl start taucg' (or 'taucg daemon')") from None
        except BlockingIOError:
            raise DaemonError("busy", f"the daemon's socket {path} has a full backlog; it "
                                      "is overloaded or stuck: try again, or see "
                                      "'journalctl -u taucg'") from None
        except PermissionError:
            raise DaemonNotRunning(
                f"permission denied on {path}: the daemon's state is for root and the "
                "group in [daemon] socket_group; ask an admin to add you to it") from None
        sock.sendall(encode({"id": 1, "method": method, "params": dict(params or {})}))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise DaemonError("closed", "the daemon closed the connection without "
                                            "answering; see 'journalctl -u taucg'")
            buf += chunk
    except TimeoutError:
        raise DaemonError("timeout", f"the daemon did not answer {method} within "
                                     f"{timeout:g} s") from None
    finally:
        sock.close()
    response = json.loads(buf)
    if not response.get("ok"):
        err = response.get("error") or {}
        raise DaemonError(str(err.get("code", "error")), str(err.get("message", response)))
    return response.get("result")
