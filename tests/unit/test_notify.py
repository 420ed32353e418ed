"""Notifications: which events become one and how severe, each notifier's
severity filter and rate limit, the payloads (Alertmanager's against its
documented schema), the queue on disk, and the config's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from taucg.actors.notify.command import environment
from taucg.actors.notify.queue import DiskQueue
from taucg.actors.notify.webhook import Answer
from taucg.config.loading import ConfigError, loads
from taucg.config.schema import NOTIFY_EVENTS
from taucg.model.notify import (
    Gate,
    Notification,
    alertmanager_payload,
    from_event,
    taucg_payload,
)

pytestmark = pytest.mark.unit


def _n(severity: str = "warning", event: str = "alert", key: str = "alert x") -> Notification:
    return Notification(event, severity, "s", "b", 100.0, key)


def _gate(min_severity: str = "info", limit: int = 0, period: float = 60.0,
          events: tuple[str, ...] = NOTIFY_EVENTS) -> Gate:
    return Gate(frozenset(events), min_severity, limit, period)


# ------------------------------------------------------------- events ---


def test_alerts_oom_kills_and_their_clears() -> None:
    raised = from_event("alert", {"time": 5.0, "metric": "cpu_percent", "state": "raised",
                                  "value": 91.0, "threshold": 80.0, "severity": "warning",
                                  "message": "cpu_percent at 91.0 crossed the threshold 80"})
    assert raised is not None
    assert (raised.event, raised.severity, raised.state) == ("alert", "warning", "firing")
    assert raised.key == "alert cpu_percent" and raised.time == 5.0
    assert "crossed" in raised.body
    oom = from_event("alert", {"time": 6.0, "metric": "oom_kill low", "state": "raised",
                               "value": 1.0, "threshold": 0.0, "severity": "critical",
                               "message": "1 process OOM-killed in tier low"})
    assert oom is not None and (oom.event, oom.severity) == ("oom_kill", "critical")
    cleared = from_event("alert", {"time": 7.0, "metric": "oom_kill low", "state": "cleared",
                                   "value": 0.0, "threshold": 0.0, "severity": "critical",
                                   "message": "no new OOM kill in tier low"})
    assert cleared is not None
    assert (cleared.severity, cleared.state, cleared.key) == ("info", "resolved", oom.key)


def test_recovery_events_that_page_and_those_that_do_not() -> None:
    admin = from_event("recovery", {"time": 1.0, "event": "action", "unit": "a.service",
                                    "strategy": "notify_admin", "attempt": 4,
                                    "result": "exit-code", "outcome": "notified: journal"})
    assert admin is not None and (admin.event, admin.severity) == ("notify_admin", "critical")
    assert "a.service" in admin.summary and admin.fields["unit"] == "a.service"
    assert from_event("recovery", {"time": 1.0, "event": "action", "unit": "a.service",
                                   "strategy": "restart", "attempt": 1, "result": "exit-code",
                                   "outcome": "restarted"}) is None
    on = from_event("recovery", {"time": 2.0, "event": "safe_mode", "safe_mode": True})
    off = from_event("recovery", {"time": 3.0, "event": "safe_mode", "safe_mode": False})
    assert on is not None and off is not None
    assert (on.event, on.severity, on.state) == ("safe_mode", "critical", "firing")
    assert (off.severity, off.state, off.key) == ("info", "resolved", on.key)


def test_governor_freeze_and_thaw_only() -> None:
    base = {"time": 1.0, "tier": "background", "key": "freeze", "reason": "memory 12% > 5%"}
    freeze = from_event("governor", {**base, "kind": "freeze", "before": "running",
                                     "after": "frozen"})
    thaw = from_event("governor", {**base, "kind": "thaw", "before": "frozen",
                                   "after": "running"})
    assert freeze is not None and thaw is not None
    assert (freeze.event, freeze.severity, freeze.state) == ("governor_freeze", "warning",
                                                             "firing")
    assert (thaw.severity, thaw.state) == ("info", "resolved")
    assert from_event("governor", {**base, "kind": "tighten", "key": "cpu_weight"}) is None


def test_health_severity_follows_how_far_below_the_threshold() -> None:
    low = from_event("health", {"time": 1.0, "score": 0.6, "threshold": 0.7,
                                "healthy": False, "recommendations": ["free memory"]})
    very = from_event("health", {"time": 1.0, "score": 0.3, "threshold": 0.7,
                                 "healthy": False, "recommendations": []})
    back = from_event("health", {"time": 2.0, "score": 0.9, "threshold": 0.7, "healthy": True})
    assert low is not None and very is not None and back is not None
    assert (low.severity, very.severity, back.severity) == ("warning", "critical", "info")
    assert low.body == "free memory" and back.state == "resolved"
    assert from_event("nonsense", {}) is None


# --------------------------------------------------------------- gate ---


def test_severity_filter() -> None:
    g = _gate("warning")
    assert g.admit(_n("info"), 0) is None
    assert g.admit(_n("warning"), 0) is not None
    assert g.admit(_n("critical"), 0) is not None
    assert _gate("critical").admit(_n("warning"), 0) is None


def test_event_filter() -> None:
    g = _gate(events=("oom_kill",))
    assert g.admit(_n(event="alert"), 0) is None
    assert g.admit(_n(event="oom_kill"), 0) is not None


def test_rate_limit_holds_back_and_counts_then_slides() -> None:
    g = _gate(limit=2, period=10.0)
    assert g.admit(_n(), 0.0) is not None
    assert g.admit(_n(), 1.0) is not None
    assert g.admit(_n(), 2.0) is None
    assert g.admit(_n(), 9.0) is None
    # At 10.0 the first one leaves the window: one more fits, and says two were held.
    n = g.admit(_n(), 10.0)
    assert n is not None and n.suppressed == 2
    assert g.admit(_n(), 10.5) is None
    n = g.admit(_n(), 11.0)
    assert n is not None and n.suppressed == 1
    # A filtered-out notification is not counted as held back.
    g2 = _gate("critical", limit=1)
    assert g2.admit(_n("info"), 0) is None and g2.held == 0


def test_no_limit() -> None:
    g = _gate(limit=0)
    assert all(g.admit(_n(), 0.0) is not None for _ in range(1000))


# ------------------------------------------------------------ payloads ---

# Alertmanager's documented body of POST /api/v2/alerts (api/v2/openapi.yaml:
# postableAlerts = array of postableAlert), as JSON Schema.
POSTABLE_ALERTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {"type": "string", "format": "date-time"},
            "generatorURL": {"type": "string", "format": "uri"},
        },
        "additionalProperties": False,
    },
}


def test_alertmanager_payload_follows_its_schema_and_keeps_identity() -> None:
    firing = from_event("alert", {"time": 1_700_000_000.5, "metric": "custom.ups",
                                  "state": "raised", "value": 1.0, "threshold": 0.9,
                                  "severity": "critical", "message": "m"})
    resolved = from_event("alert", {"time": 1_700_000_060.0, "metric": "custom.ups",
                                    "state": "cleared", "value": 0.1, "threshold": 0.9,
                                    "severity": "critical", "message": "m"})
    assert firing is not None and resolved is not None
    checker = jsonschema.Draft202012Validator(
        POSTABLE_ALERTS, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    a, b = alertmanager_payload(firing, "node1"), alertmanager_payload(resolved, "node1")
    for body in (a, b):
        checker.validate(json.loads(json.dumps(body)))
    # A raise and its clear are one alert to Alertmanager: the same labels.
    assert a[0]["labels"] == b[0]["labels"]
    assert a[0]["labels"]["severity"] == "critical" and a[0]["labels"]["node"] == "node1"
    assert "endsAt" not in a[0] and b[0]["endsAt"] == "2023-11-14T22:14:20Z"
    assert a[0]["startsAt"] == "2023-11-14T22:13:20.500000Z"
    # Events without a severity of their own keep one label severity too.
    on = from_event("recovery", {"time": 1.0, "event": "safe_mode", "safe_mode": True})
    off = from_event("recovery", {"time": 2.0, "event": "safe_mode", "safe_mode": False})
    assert on is not None and off is not None
    assert alertmanager_payload(on, "n")[0]["labels"] == \
        alertmanager_payload(off, "n")[0]["labels"]


def test_taucg_payload_round_trips() -> None:
    n = _n("critical")
    doc = taucg_payload(n, "node1")
    assert doc["schema"] == "taucg.notification/1" and doc["node"] == "node1"
    assert Notification.from_dict(doc) == n


def test_command_environment_names_the_event() -> None:
    env = environment(Notification("oom_kill", "critical", "sum", "body", 1.5, "alert x",
                                   fields={"metric": "oom_kill low"}))
    assert env["TAUCG_EVENT"] == "oom_kill" and env["TAUCG_SEVERITY"] == "critical"
    assert env["TAUCG_FIELD_METRIC"] == "oom_kill low" and env["TAUCG_TIME"] == "1.500"


def test_answers_that_are_retried() -> None:
    assert Answer(200, "OK").delivered and Answer(204, "").delivered
    assert not Answer(None, "refused").delivered and Answer(None, "refused").retry
    assert Answer(503, "").retry and Answer(429, "").retry and Answer(408, "").retry
    assert not Answer(400, "").retry and not Answer(404, "").retry


# --------------------------------------------------------------- queue ---


def test_queue_keeps_order_across_reopen_and_removes_only_when_done(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path / "q", 100)
    sent = [_n(key=f"k{i}") for i in range(5)]
    for n in sent:
        q.put(n)
    head = q.head()
    assert head is not None and head[1] == sent[0]
    q.done(head[0])
    # A new daemon reads what the old one left, in the same order, and
    # numbers new ones after it.
    q2 = DiskQueue(tmp_path / "q", 100)
    assert len(q2) == 4
    q2.put(_n(key="k5"))
    got = []
    while (h := q2.head()) is not None:
        got.append(h[1].key)
        q2.done(h[0])
    assert got == ["k1", "k2", "k3", "k4", "k5"]
    assert len(DiskQueue(tmp_path / "q", 100)) == 0


def test_queue_limit_drops_the_oldest_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    q = DiskQueue(tmp_path / "q", 2, said.append)
    for i in range(3):
        q.put(_n(key=f"k{i}"))
    assert len(q) == 2 and len(said) == 1 and "dropped the oldest" in said[0]
    head = q.head()
    assert head is not None and head[1].key == "k1"


def test_queue_sets_a_damaged_file_aside(tmp_path: Path) -> None:
    said: list[str] = []
    q = DiskQueue(tmp_path / "q", 10, said.append)
    q.put(_n(key="a"))
    q.put(_n(key="b"))
    first = sorted((tmp_path / "q").glob("*.json"))[0]
    first.write_text("{half")
    q2 = DiskQueue(tmp_path / "q", 10, said.append)
    head = q2.head()
    assert head is not None and head[1].key == "b"
    assert first.with_suffix(".bad").exists() and "unreadable" in said[-1]


# -------------------------------------------------------------- config ---


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        loads(text, "t.toml")
    return str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ('[[notifiers]]\ntype = "pager"\n', "'pager' is not one of journald, command"),
    ('[[notifiers]]\nmin_severity = "warning"\n', "missing required key 'type'"),
    ('[[notifiers]]\ntype = "webhook"\n', "needs url"),
    ('[[notifiers]]\ntype = "webhook"\nurl = "ftp://x/"\n', "not an http:// or https://"),
    ('[[notifiers]]\ntype = "webhook"\nurl = "http://x:99999/"\n', "out of range"),
    ('[[notifiers]]\ntype = "command"\n', "needs command"),
    ('[[notifiers]]\ntype = "desktop"\nurl = "http://x/"\n', 'is for type = "webhook"'),
    ('[[notifiers]]\ntype = "journald"\nmin_severity = "loud"\n', "'loud' is not one of"),
    ('[[notifiers]]\ntype = "journald"\nevents = ["alert", "oops"]\n', "'oops' is not one"),
    ('[[notifiers]]\ntype = "journald"\nrate_limit = -1\n', "below the minimum"),
    ('[[notifiers]]\ntype = "webhook"\nurl = "http://x/"\nretry_initial_seconds = 10.0\n'
     'retry_max_seconds = 5.0\n', "below retry_initial_seconds"),
    ('[[notifiers]]\ntype = "journald"\n[[notifiers]]\ntype = "journald"\nname = '
     '"journald-1"\n', "is also notifier 1's name"),
    ('[[metrics.custom]]\nname = "x"\n', "exactly one of file"),
    ('[[metrics.custom]]\nname = "x"\nfile = "/a"\ncommand = "b"\n', "exactly one of file"),
    ('[[metrics.custom]]\nname = "9lives"\nfile = "/a"\n', "is not a metric name"),
    ('[[metrics.custom]]\nname = "a-b"\nfile = "/a"\n', "is not a metric name"),
    ('[[metrics.custom]]\nname = "a"\nfile = "relative"\n', "expected an absolute path"),
    ('[[metrics.custom]]\nname = "a"\nfile = "/a"\nunit = "°C"\n', "is not a metric name"),
    ('[[metrics.custom]]\nname = "a"\nfile = "/a"\nwarning = 5.0\ncritical = 1.0\n',
     "below warning"),
    ('[[metrics.custom]]\nname = "a"\nfile = "/a"\n[[metrics.custom]]\nname = "a"\n'
     'command = "true"\n', "must be unique"),
    ('[[metrics.custom]]\nname = "a"\nfile = "/a"\nwarning = nan\n', "finite"),
])
def test_bad_notifier_and_custom_metric_configs(text: str, expected: str) -> None:
    assert expected in _problems(text)


def test_good_config_and_defaults() -> None:
    cfg = loads('[[notifiers]]\ntype = "webhook"\nurl = "https://am:9093/api/v2/alerts"\n'
                'format = "alertmanager"\n[[notifiers]]\ntype = "desktop"\n'
                '[[metrics.custom]]\nname = "ups_load"\nunit = "ratio"\n'
                'command = "upsc ups"\ncritical = 0.9\n')
    hook, desk = cfg.notifiers
    assert hook.min_severity == "warning" and hook.rate_limit == 20 and hook.url
    assert desk.runtime_directory == "/run/user" and desk.events == NOTIFY_EVENTS
    m = cfg.metrics.custom[0]
    assert (m.name, m.unit, m.critical, m.warning, m.timeout_seconds) == \
        ("ups_load", "ratio", 0.9, None, 5.0)
    assert loads("").notifiers == () and loads("").metrics.custom == ()


def test_webhook_body_in_both_formats() -> None:
    from taucg.actors.notify.webhook import body

    n = _n()
    mine: Any = json.loads(body(n, "taucg", "h"))
    theirs: Any = json.loads(body(n, "alertmanager", "h"))
    assert mine["id"] == n.id and isinstance(theirs, list) and theirs[0]["labels"]["node"] == "h"


def test_hub_listeners_hear_every_topic_and_a_failing_one_is_logged() -> None:
    import asyncio

    from taucg.faces.subscriptions import Hub

    said: list[str] = []
    heard: list[tuple[str, Any]] = []

    def broken(_topic: str, _params: Any) -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        hub = Hub(log=said.append)
        hub.listeners += [broken, lambda t, p: heard.append((t, dict(p)))]
        sub = hub.add(frozenset({"alert"}))
        hub.publish("health", {"healthy": False})  # no subscriber takes this topic
        hub.publish("alert", {"metric": "m"})
        assert sub.queue.qsize() == 1

    asyncio.run(scenario())
    assert heard == [("health", {"healthy": False}), ("alert", {"metric": "m"})]
    assert len(said) == 2 and "boom" in said[0]


def test_journal_fields_never_collide() -> None:
    from taucg.actors.notify.journald import fields

    n = from_event("alert", {"time": 1.0, "metric": "custom.x", "state": "cleared",
                             "value": 1.0, "threshold": 2.0, "severity": "critical",
                             "message": "m"})
    assert n is not None and "severity" in n.fields
    f = fields(n)
    # The notification's severity (info: a clear) wins over the condition's.
    assert f["TAUCG_SEVERITY"] == "info" and f["PRIORITY"] == 6
    assert f["TAUCG_METRIC"] == "custom.x" and f["TAUCG_STATE"] == "resolved"
