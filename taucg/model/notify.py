"""Notifications: what the daemon's events mean to a person, and which of
them each notifier takes.

The daemon already fans its events out (faces/subscriptions.py): alert
records, recovery events and governor actions. ``from_event`` turns one
into a ``Notification`` with a severity, or None when it is not one of the
events a person is told about. ``Gate`` is one notifier's severity and
event filter with its rate limit. The payloads a webhook sends are built
here too, so that their format is pure and tested apart from any socket.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taucg.config.schema import SEVERITIES

SCHEMA = "taucg.notification/1"


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing a person should hear about. ``key`` names the condition
    (the same for its raise and its clear), ``state`` is "firing" or
    "resolved", and ``id`` is unique per notification: a receiver that sees
    an id twice (a retry whose answer was lost) can drop the second."""

    event: str  # one of config.schema.NOTIFY_EVENTS
    severity: str  # one of config.schema.SEVERITIES
    summary: str
    body: str
    time: float  # Unix seconds
    key: str
    state: str = "firing"
    fields: Mapping[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    suppressed: int = 0  # dropped by the rate limit since the last one sent

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "id": self.id, "event": self.event,
                "severity": self.severity, "state": self.state, "key": self.key,
                "summary": self.summary, "body": self.body, "time": self.time,
                "fields": dict(self.fields), "suppressed": self.suppressed}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Notification:
        return Notification(str(d["event"]), str(d["severity"]), str(d["summary"]),
                            str(d["body"]), float(d["time"]), str(d["key"]),
                            str(d.get("state", "firing")),
                            {str(k): str(v) for k, v in dict(d.get("fields", {})).items()},
                            str(d["id"]), int(d.get("suppressed", 0)))


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


# ------------------------------------------------------------- events ---


def from_event(topic: str, params: Mapping[str, Any]) -> Notification | None:
    """A Hub event as a notification, or None for events nobody is paged for
    (a plain restart, a governor weight change)."""
    t = float(params.get("time", 0.0))
    if topic == "alert":
        return _from_alert(params, t)
    if topic == "recovery":
        return _from_recovery(params, t)
    if topic == "governor":
        return _from_governor(params, t)
    if topic == "health":
        return _from_health(params, t)
    return None


def _from_alert(a: Mapping[str, Any], t: float) -> Notification:
    metric = str(a["metric"])
    raised = a["state"] == "raised"
    event = "oom_kill" if metric.startswith("oom_kill") else "alert"
    severity = str(a.get("severity", "warning")) if raised else "info"
    verb = "raised" if raised else "cleared"
    return Notification(event, severity, f"taucg: {metric} {verb}", str(a.get("message", "")),
                        t, f"alert {metric}", "firing" if raised else "resolved",
                        {"metric": metric, "value": str(a.get("value")),
                         "threshold": str(a.get("threshold")),
                         # The condition's own severity, the same for its clear.
                         "severity": str(a.get("severity", "warning"))})


def _from_recovery(r: Mapping[str, Any], t: float) -> Notification | None:
    if r.get("event") == "safe_mode":
        on = bool(r.get("safe_mode"))
        return Notification(
            "safe_mode", "critical" if on else "info",
            "taucg: safe mode entered" if on else "taucg: safe mode left",
            "recovery gave up on a critical service and froze the lower tiers; "
            "`taucg recovery leave-safe-mode` leaves it" if on else
            "the lower tiers run again", t, "safe_mode", "firing" if on else "resolved",
            {"safe_mode": str(on).lower()})
    if r.get("event") == "action" and r.get("strategy") == "notify_admin":
        unit = str(r.get("unit"))
        return Notification(
            "notify_admin", "critical", f"taucg: {unit} keeps failing",
            f"{unit} failed ({r.get('result')}) and recovery gave up restarting it "
            f"(attempt {r.get('attempt')}); `taucg recovery history {unit}` shows why",
            t, f"notify_admin {unit}", "firing",
            {"unit": unit, "result": str(r.get("result")), "attempt": str(r.get("attempt"))})
    return None


def _from_governor(g: Mapping[str, Any], t: float) -> Notification | None:
    if g.get("kind") not in ("freeze", "thaw"):
        return None
    frozen = g["kind"] == "freeze"
    tier = str(g.get("tier"))
    return Notification(
        "governor_freeze", "warning" if frozen else "info",
        f"taucg: {tier} {'frozen' if frozen else 'thawed'} by the governor",
        str(g.get("reason", "")), t, f"governor_freeze {tier}",
        "firing" if frozen else "resolved", {"tier": tier})


def _from_health(h: Mapping[str, Any], t: float) -> Notification:
    healthy = bool(h.get("healthy"))
    score, threshold = float(h.get("score", 0.0)), float(h.get("threshold", 0.0))
    # Half the threshold or less: most checks fail at once; that pages.
    severity = "info" if healthy else "critical" if score <= threshold / 2 else "warning"
    recs = [str(r) for r in h.get("recommendations", [])]
    return Notification(
        "health", severity,
        f"taucg: health {score:.2f} {'back over' if healthy else 'below'} {threshold:g}",
        "; ".join(recs) or ("healthy again" if healthy else "see `taucg health`"), t,
        "health", "resolved" if healthy else "firing",
        {"score": f"{score:.3f}", "threshold": f"{threshold:g}"})


# --------------------------------------------------------------- gate ---


@dataclass(slots=True)
class Gate:
    """One notifier's filter: its events, its least severity, and at most
    ``limit`` notifications per ``period`` seconds (0: no limit). A
    notification over the limit is counted, and the next one let through
    carries the count, so a person learns that some were held back."""

    events: frozenset[str]
    min_severity: str
    limit: int
    period: float
    sent: deque[float] = field(default_factory=deque)
    held: int = 0
    held_total: int = 0

    def admit(self, n: Notification, now: float) -> Notification | None:
        if n.event not in self.events or rank(n.severity) < rank(self.min_severity):
            return None
        if self.limit:
            while self.sent and self.sent[0] <= now - self.period:
                self.sent.popleft()
            if len(self.sent) >= self.limit:
                self.held += 1
                self.held_total += 1
                return None
            self.sent.append(now)
        if self.held:
            from dataclasses import replace

            n, self.held = replace(n, suppressed=self.held), 0
        return n


@dataclass(frozen=True, slots=True)
class NotifierView:
    """One notifier's counts since the daemon started, for /metrics."""

    name: str
    type: str
    sent: int  # passed its gate and handed to the notifier
    suppressed: int  # held back by its rate limit
    queued: int | None  # webhook: waiting on disk
    failures: int | None  # webhook: failed attempts


# ------------------------------------------------------------ payloads ---


def taucg_payload(n: Notification, node: str) -> dict[str, Any]:
    """The webhook's own JSON document (README: "The webhook payload")."""
    return {**n.to_dict(), "node": node}


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


# Alertmanager tells alerts apart by their labels, so a raise and its clear
# must carry the same severity label: the event's, not the clear's "info".
LABEL_SEVERITY = {"notify_admin": "critical", "oom_kill": "critical", "safe_mode": "critical",
                  "governor_freeze": "warning", "health": "warning"}


def alertmanager_payload(n: Notification, node: str) -> list[dict[str, Any]]:
    """Alertmanager's POST /api/v2/alerts body (postableAlerts): one alert,
    labelled so that a raise and its clear are the same alert (alertname +
    key + node); a resolved one carries endsAt = its time. A firing one
    gets no endsAt from us: Alertmanager's resolve_timeout ends it, unless
    its clear arrives first."""
    severity = n.fields.get("severity") or LABEL_SEVERITY.get(n.event, n.severity)
    labels = {"alertname": f"taucg_{n.event}", "severity": severity, "node": node,
              "key": n.key, "job": "taucg"}
    labels.update({k: v for k, v in n.fields.items() if k in ("tier", "unit", "metric")})
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": n.summary, "description": n.body, "taucg_id": n.id,
                        "taucg_severity": n.severity},
        "startsAt": _rfc3339(n.time),
    }
    if n.state == "resolved":
        # The clear's start is unknown here; Alertmanager keys on labels only.
        alert["endsAt"] = _rfc3339(n.time)
    return [alert]
