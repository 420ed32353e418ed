"""Checks for the keys of [[notifiers]] and [[metrics.custom]]: the two
scalar kinds they add (a URL, a Prometheus-safe name) and what one entry's
keys say about each other (a webhook needs a url, a metric a source)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from taucg.config.schema import Config

METRIC_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,63}")

Add = Callable[[tuple[str | int, ...], str], None]
Has = Callable[[tuple[str | int, ...]], bool]


def check_scalar(kind: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} ({value!r})")
    if kind == "metricname":
        if not METRIC_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a metric name: use letters, digits and _, "
                             "starting with a letter, at most 64 characters "
                             "(Prometheus's rule, so it exports unchanged)")
        return value
    if kind == "url":
        url = urllib.parse.urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        try:
            url.port  # noqa: B018 -- a port out of range raises here
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value
    raise AssertionError(f"unknown check kind {kind}")


def notifier_names(cfg: Config) -> list[str]:
    """Each notifier's name: its own, or TYPE-N (N counting from 1 in the file)."""
    return [n.name or f"{n.type}-{i + 1}" for i, n in enumerate(cfg.notifiers)]


def cross_check(cfg: Config, add: Add, has: Has) -> None:
    """``has(path)``: that key already failed to convert (its default stands
    in for it), so a cross check about it would blame the wrong thing."""
    seen: dict[str, int] = {}
    for i, (n, name) in enumerate(zip(cfg.notifiers, notifier_names(cfg), strict=True)):
        where: tuple[str | int, ...] = ("notifiers", i)
        if n.type == "command" and n.command is None and not has((*where, "command")):
            add(where, 'a command notifier needs command = "..." (run by /bin/sh -c)')
        if n.type == "webhook" and n.url is None and not has((*where, "url")):
            add(where, 'a webhook notifier needs url = "http://..."')
        if n.command is not None and n.type != "command":
            add((*where, "command"), f"is for type = \"command\", not {n.type!r}")
        if n.url is not None and n.type != "webhook":
            add((*where, "url"), f"is for type = \"webhook\", not {n.type!r}")
        if n.retry_max_seconds < n.retry_initial_seconds:
            add((*where, "retry_max_seconds"),
                f"({n.retry_max_seconds:g}) is below retry_initial_seconds "
                f"({n.retry_initial_seconds:g})")
        if name in seen:
            add((*where, "name"), f"{name!r} is also notifier {seen[name] + 1}'s name; "
                "give each a name of its own (the webhook queue's file is named after it)")
        seen[name] = i
    names: dict[str, int] = {}
    for i, m in enumerate(cfg.metrics.custom):
        where = ("metrics", "custom", i)
        if (m.file is None) == (m.command is None) and not has((*where, "file")) \
                and not has((*where, "command")):
            add(where, "a custom metric needs exactly one of file = \"/path\" or "
                "command = \"...\"")
        if m.warning is not None and m.critical is not None and m.critical < m.warning:
            add((*where, "critical"), f"({m.critical:g}) is below warning ({m.warning:g})")
        if m.name in names:
            add((*where, "name"), f"{m.name!r} is also custom metric {names[m.name] + 1}'s "
                "name; metric names must be unique")
        names[m.name] = i
