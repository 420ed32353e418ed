"""The REST routes, read from the shipped OpenAPI document itself: each
path's ``x-taucg-method`` names the socket API method that answers it, and
its query parameters' schemas say how the text of a query becomes the
method's typed parameters. The server and its description cannot drift
apart, and only methods that are not mutations can ever be routed."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

PREFIX = "/api/v1/"
SPEC_PATH = "/api/v1/openapi.json"


class BadRequest(Exception):
    """A parameter the route cannot take: 400, naming it and the fix."""

    def __init__(self, parameter: str | None, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Mapping[str, Any]
    description: str

    def convert(self, text: str) -> Any:
        s = self.schema
        kind = s.get("type")
        hint = f"{self.name}: {self.description}"
        if kind == "integer":
            try:
                value: Any = int(text, 10)
            except ValueError:
                raise BadRequest(self.name, f"{self.name} must be an integer, got {text!r} "
                                 f"({hint})") from None
        elif kind == "number":
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise BadRequest(self.name, f"{self.name} must be a finite number, got "
                                 f"{text!r} ({hint})")
        elif kind == "boolean":
            # OpenAPI's query serialisation of a boolean: true or false.
            if text not in ("true", "false"):
                raise BadRequest(self.name, f"{self.name} must be true or false, got {text!r} "
                                 f"({hint})")
            return text == "true"
        else:
            value = text
            if "enum" in s and value not in s["enum"]:
                raise BadRequest(self.name, f"{self.name} must be one of "
                                 f"{', '.join(s['enum'])}, got {text!r}")
        lo, hi = s.get("minimum"), s.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise BadRequest(self.name, f"{self.name} must be between {lo} and {hi}, got "
                             f"{text!r} ({hint})")
        return value


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str  # the socket API method
    params: Mapping[str, Param]

    def parameters(self, query: str) -> dict[str, Any]:
        """The query string as the method's parameters, or BadRequest."""
        try:
            raw = parse_qs(query, keep_blank_values=True, strict_parsing=False,
                           errors="strict", max_num_fields=len(self.params) + 1)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(None, f"too many or malformed query parameters; {self.path} "
                             f"takes {self._takes()}") from None
        out: dict[str, Any] = {}
        for name, values in raw.items():
            p = self.params.get(name)
            if p is None:
                raise BadRequest(name, f"unknown parameter {name!r}; {self.path} takes "
                                 f"{self._takes()}")
            if len(values) > 1:
                raise BadRequest(name, f"{name} is given {len(values)} times; give it once")
            out[name] = p.convert(values[0])
        return out

    def _takes(self) -> str:
        return ", ".join(self.params) or "no parameters"


@cache
def spec_text() -> bytes:
    return resources.files("taucg.faces.http").joinpath("openapi.json").read_bytes()


@cache
def routes() -> Mapping[str, Route]:
    spec = json.loads(spec_text())
    out = {}
    for path, item in spec["paths"].items():
        get = item["get"]
        params = {p["name"]: Param(p["name"], p["schema"], p.get("description", ""))
                  for p in get.get("parameters", ()) if p["in"] == "query"}
        out[path] = Route(path, get["x-taucg-method"], params)
    return out


# ApiError codes -> HTTP statuses; anything else is the server's fault.
STATUS = {"bad_params": 400, "not_found": 404, "unavailable": 503, "busy": 503}
