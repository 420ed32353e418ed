"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification), the socket API's
envelope: the error codes, the checks a request object passes, and the
objects sent each way. Pure and free of asyncio, so the CLI's client
(socket_client.py) and the server (socket_api.py) share it.

taucg's string codes are the stable, greppable part of an error: each maps
to JSON-RPC's own number or to one in the server range -32000..-32099,
and travels in ``error.data.code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VERSION = "2.0"
MAX_BATCH = 32  # requests in one batch; past it the batch is one invalid request

CODES: Mapping[str, int] = {
    "parse_error": -32700,  # not JSON taucg takes
    "invalid_request": -32600,  # JSON, but not a request object
    "too_large": -32600,  # a line over the request limit: it cannot be read as one
    "unknown_method": -32601,
    "bad_params": -32602,  # a parameter missing, of the wrong type or out of range
    "internal": -32603,  # a method failed unexpectedly
    "not_root": -32000,  # a mutation from a peer that is not uid 0
    "busy": -32001,  # the connection limits are reached
    "unavailable": -32002,  # systemd does not answer on the system bus
    "not_found": -32003,  # the thing a parameter names is not there
    "preflight": -32004,  # apply's preflight refused the machine
    "apply_failed": -32005,  # apply failed; the message says what state is left
}
SERVER_ERROR = -32000  # a code missing from CODES still lands in the server range

_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": req_id,
            "error": {"code": CODES.get(code, SERVER_ERROR), "message": message,
                      "data": {"code": code}}}


def result(req_id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": req_id, "result": value}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "method": method, "params": dict(params)}


def request(req_id: Any, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": VERSION, "id": req_id, "method": method, "params": dict(params)}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: Mapping[str, Any] | list[Any]  # a list is valid JSON-RPC; taucg answers bad_params
    id: Any
    notification: bool  # no "id" member: the server must not reply


class Invalid(Exception):
    """A request object taucg cannot take; answered even without an id."""

    def __init__(self, req_id: Any, code: str, message: str) -> None:
        super().__init__(message)
        self.id = req_id
        self.code = code
        self.message = message

    def reply(self) -> dict[str, Any]:
        return error(self.id, self.code, self.message)


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str | float) or (
        isinstance(value, int) and not isinstance(value, bool))


def parse_request(obj: Any) -> Request:
    """One request object (not a batch) -> Request, or Invalid naming the fault."""
    if not isinstance(obj, dict):
        raise Invalid(None, "invalid_request",
                      'a request is a JSON object: {"jsonrpc": "2.0", "method": ..., "id": ...}')
    req_id = obj.get("id")
    if not _valid_id(req_id):
        raise Invalid(None, "invalid_request",
                      f'"id" must be a string, a number or null, not {type(req_id).__name__}')
    if obj.get("jsonrpc") != VERSION:
        raise Invalid(req_id, "invalid_request", 'a request needs "jsonrpc": "2.0"')
    extra = sorted(set(obj) - _MEMBERS)
    if extra:
        raise Invalid(req_id, "invalid_request",
                      f"unknown member {extra[0]!r}; a request has only jsonrpc, method, "
                      "params and id")
    method = obj.get("method")
    if not isinstance(method, str):
        raise Invalid(req_id, "invalid_request", '"method" must be a string')
    params = obj.get("params", {})
    if not isinstance(params, dict | list):
        raise Invalid(req_id, "invalid_request",
                      f'"params" must be an object, not {type(params).__name__}')
    return Request(method, params, req_id, "id" not in obj)
