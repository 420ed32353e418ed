"""The socket API's envelope and fan-out, without a socket: JSON-RPC 2.0
request checks, the error codes, the subscription hub's bounded queues,
and the recovery events told apart from two watcher views."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.jsonrpc import CODES, Invalid, error, parse_request
from taucg.faces.subscriptions import Hub, recovery_events

FACES = Path(__file__).resolve().parents[2] / "taucg" / "faces"


def test_a_request_is_parsed_with_its_id_and_params() -> None:
    req = parse_request({"jsonrpc": "2.0", "id": "a", "method": "ping", "params": {"x": 1}})
    assert (req.method, req.id, dict(req.params), req.notification) == ("ping", "a",
                                                                         {"x": 1}, False)
    # No id member: a notification. A null id is a request (the spec allows it).
    assert parse_request({"jsonrpc": "2.0", "method": "ping"}).notification is True
    assert parse_request({"jsonrpc": "2.0", "method": "ping", "id": None}).notification is False
    # Array params are valid JSON-RPC; the server answers bad_params for them.
    assert parse_request({"jsonrpc": "2.0", "method": "ping", "id": 1, "params": [1]}
                         ).params == [1]


@pytest.mark.parametrize(("obj", "reply_id", "why"), [
    ([], None, "a request is a JSON object"),
    ("ping", None, "a request is a JSON object"),
    ({"jsonrpc": "2.0", "method": "ping", "id": True}, None, '"id" must be'),
    ({"jsonrpc": "2.0", "method": "ping", "id": {"a": 1}}, None, '"id" must be'),
    ({"method": "ping", "id": 4}, 4, '"jsonrpc": "2.0"'),
    ({"jsonrpc": 2.0, "method": "ping", "id": 4}, 4, '"jsonrpc": "2.0"'),
    ({"jsonrpc": "2.0", "id": 4}, 4, '"method" must be a string'),
    ({"jsonrpc": "2.0", "method": ["ping"], "id": 4}, 4, '"method" must be a string'),
    ({"jsonrpc": "2.0", "method": "ping", "id": 4, "params": "x"}, 4, '"params" must be'),
    ({"jsonrpc": "2.0", "method": "ping", "id": 4, "param": {}}, 4, "unknown member 'param'"),
])
def test_what_is_no_request_is_an_invalid_request(obj: Any, reply_id: Any, why: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_request(obj)
    reply = err.value.reply()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == reply_id
    assert reply["error"]["code"] == -32600
    assert reply["error"]["data"] == {"code": "invalid_request"}
    assert why in reply["error"]["message"]


def test_the_codes_are_json_rpc_s_or_in_the_server_range() -> None:
    standard = {"parse_error": -32700, "invalid_request": -32600, "unknown_method": -32601,
                "bad_params": -32602, "internal": -32603}
    for code, number in standard.items():
        assert CODES[code] == number
    for code, number in CODES.items():
        if code not in standard and code != "too_large":
            assert -32099 <= number <= -32000, code
    # taucg's own codes are one each, so a client may switch on the number alone.
    own = [n for c, n in CODES.items() if c not in standard and c != "too_large"]
    assert len(own) == len(set(own))
    assert error(3, "not_root", "no")["error"] == {"code": -32000, "message": "no",
                                                   "data": {"code": "not_root"}}


def test_every_code_the_api_raises_has_a_number() -> None:
    """An ApiError code missing from CODES would reach clients as a bare -32000."""
    raised = set()
    for path in FACES.glob("*.py"):
        raised |= set(re.findall(r'(?:ApiError|jsonrpc\.error)\(\s*(?:[\w.]+,\s*)?"(\w+)"',
                                 path.read_text()))
    raised.discard("config")  # raised at start, printed by the daemon, never sent
    assert raised, "the pattern found no codes: it no longer matches the source"
    assert raised <= set(CODES), raised - set(CODES)
    assert {"not_root", "bad_params", "unavailable", "not_found", "busy"} <= raised


def _lines(sub: Any) -> list[dict[str, Any]]:
    out = []
    while not sub.queue.empty():
        out.append(json.loads(sub.queue.get_nowait()))
    return out


def test_the_hub_sends_each_topic_to_its_subscribers_only() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        hub = Hub(limit=4)
        alerts = hub.add(frozenset({"alert"}))
        every = hub.add(frozenset({"alert", "recovery", "governor"}))
        hub.publish("alert", {"metric": "memory_percent", "state": "raised"})
        hub.publish("governor", {"kind": "set"})
        hub.remove(every)
        hub.publish("alert", {"metric": "cpu_percent", "state": "raised"})
        return _lines(alerts), _lines(every)

    alerts, every = asyncio.run(main())
    assert [n["params"]["metric"] for n in alerts] == ["memory_percent", "cpu_percent"]
    assert [n["method"] for n in every] == ["taucg.alert", "taucg.governor"]
    assert all(n["jsonrpc"] == "2.0" and "id" not in n for n in alerts + every)


def test_a_subscriber_that_falls_behind_is_dropped_with_a_final_notification() -> None:
    async def main() -> tuple[Hub, list[Any], list[Any], bool]:
        hub = Hub(limit=3)
        slow = hub.add(frozenset({"alert"}))
        keeping_up = hub.add(frozenset({"alert"}))
        got = []
        for i in range(5):
            hub.publish("alert", {"n": i})
            got += _lines(keeping_up)
        return hub, _lines(slow), got, slow.dropped

    hub, slow, kept, dropped = asyncio.run(main())
    assert dropped and len(hub) == 1 and hub.dropped_total == 1
    assert [n["params"]["n"] for n in kept] == [0, 1, 2, 3, 4]  # the other one missed none
    # Only the final notification is left: what waited is dropped with it.
    assert [n["method"] for n in slow] == ["taucg.dropped"]
    assert slow[0]["params"]["lost"] == 4  # three waiting and the one that did not fit
    assert "read faster" in slow[0]["params"]["reason"]


def test_recovery_events_are_the_new_outcomes_and_safe_mode_changes() -> None:
    from taucg.actors.recovery_watcher import Outcome, RecoveryView
    from taucg.model.recovery_policy import Decision

    first = ("a.service", Outcome(Decision("restart", 1, 0.0), "exit-code", "restarted"))
    second = ("a.service", Outcome(Decision("restart", 2, 1.0), "signal", "restarted"))
    v1 = RecoveryView(("a.service",), False, {}, (first,), {})
    v2 = RecoveryView(("a.service",), True, {}, (first, second), {})
    assert [e["strategy"] for e in recovery_events(None, v1)] == ["restart"]
    events = recovery_events(v1, v2)
    assert [e["event"] for e in events] == ["action", "safe_mode"]
    assert events[0]["attempt"] == 2 and events[0]["result"] == "signal"
    assert events[1]["safe_mode"] is True
    assert recovery_events(v2, v2) == []
