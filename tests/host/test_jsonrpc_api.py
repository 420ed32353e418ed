"""The socket API as JSON-RPC 2.0, against a real daemon on this host: the
envelope of every method, a code for each error class, notifications that
get no reply, batches, a subscription that hears a real alert, the
README's example client; and, against the API server in this process, a
slow subscriber dropped while the others carry on."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.faces import socket_api
from taucg.faces.jsonrpc import CODES, MAX_BATCH
from taucg.faces.socket_api import Method, Peer, Server
from taucg.faces.socket_client import DaemonError, call, subscribe
from taucg.faces.subscriptions import Hub
from tests.host.test_api import as_nobody, raw, strict

README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE = 120.0  # generous: two cores shared with other work


def req(req_id: Any, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params}


def note(method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def lines(*objs: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def is_error(r: dict[str, Any], code: str) -> bool:
    return ("result" not in r and r["error"]["code"] == CODES[code]
            and r["error"]["data"]["code"] == code and bool(r["error"]["message"]))


# ------------------------------------------------------- the envelope ---

READS: dict[str, dict[str, Any]] = {
    "ping": {}, "status": {}, "health": {}, "alerts": {"count": 5}, "history": {},
    "logs.stats": {}, "logs.recent": {"count": 1}, "recovery.state": {},
    "governor": {"count": 1}, "forecasts": {},
    "tiers": {}, "processes": {"count": 1}, "recovery.history": {"count": 1},
    "history.metrics": {},
}


def test_every_method_answers_in_the_json_rpc_envelope(start_daemon: Any,
                                                       daemon_root: Path) -> None:
    d = start_daemon()
    blob = daemon_root / "app.state"
    blob.write_text("state\n")
    mutations = {"reload": {}, "recovery.save_state": {"unit": "app.service",
                                                       "path": str(blob)}}
    # No system bus on this host: the two that need systemd answer unavailable.
    need_bus: dict[str, dict[str, Any]] = {"apply": {}, "recovery.leave_safe_mode": {}}
    own = {"subscribe": {"topics": ["alert"]}, "unsubscribe": {}}
    # Nothing watched, nothing crashed: the flight record is not_found.
    missing = {"recovery.flight": {"unit": "app.service"}}
    table = {**READS, **mutations, **need_bus, **own, **missing}
    unknown = raw(d.socket, lines(req(0, "no.such")))[0]
    listed = set(unknown["error"]["message"].split("methods: ")[1].split(", "))
    assert listed == set(table), "a method without an envelope test, or one gone"

    names = list(table)
    responses = raw(d.socket, lines(*(req(i, n, **table[n]) for i, n in enumerate(names))),
                    timeout=DEADLINE)
    assert [r["id"] for r in responses] == list(range(len(names)))
    for r, name in zip(responses, names, strict=True):
        assert r["jsonrpc"] == "2.0" and set(r) in ({"jsonrpc", "id", "result"},
                                                    {"jsonrpc", "id", "error"}), (name, r)
        if name in need_bus:
            assert is_error(r, "unavailable") and "system bus" in r["error"]["message"], r
        elif name in missing:
            assert is_error(r, "not_found") and "app.service" in r["error"]["message"], r
        else:
            assert "result" in r, (name, r)
    by = dict(zip(names, responses, strict=True))
    assert by["ping"]["result"]["pid"] == d.proc.pid
    assert by["reload"]["result"]["reloaded"] is True
    assert Path(by["recovery.save_state"]["result"]).read_text() == "state\n"
    assert by["subscribe"]["result"] == {"topics": ["alert"], "queue_limit": 256}
    assert by["unsubscribe"]["result"] == {"unsubscribed": True}
    assert set(by["alerts"]["result"]) == {"active", "recent"}
    assert by["forecasts"]["result"]["enabled"] is True
    assert isinstance(by["forecasts"]["result"]["forecasts"], list)
    # A string id and a null id come back as they went.
    assert [r["id"] for r in raw(d.socket, lines(req("a-1", "ping"), req(None, "ping")))] == [
        "a-1", None]


def test_each_error_class_has_its_code(start_daemon: Any, daemon_root: Path) -> None:
    d = start_daemon(group="nogroup")
    # The daemon's own state is broken under it: an unexpected failure.
    (daemon_root / "session").mkdir(exist_ok=True)
    (daemon_root / "session" / "blobs").write_text("a file where a directory belongs\n")
    blob = daemon_root / "app.state"
    blob.write_text("x\n")
    cases: list[tuple[bytes, str]] = [
        (b"{nope\n", "parse_error"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "extra": 1}\n', "invalid_request"),
        (lines(req(1, "no.such.method")), "unknown_method"),
        (lines(req(1, "logs.recent", level="loud")), "bad_params"),
        (lines(req(1, "subscribe", topics=["weather"])), "bad_params"),
        (lines(req(1, "recovery.save_state", unit="app.service", path=str(blob))), "internal"),
        (lines(req(1, "history", metric="no-such-metric")), "not_found"),
    ]
    for payload, code in cases:
        (r,) = raw(d.socket, payload)
        assert is_error(r, code), (payload, r)
        if code == "internal":
            assert r["error"]["message"].startswith("recovery.save_state failed: "), r
    refused = as_nobody(d.socket, "reload")
    assert is_error(refused, "not_root") and refused["id"] == 7, refused
    # The CLI's client raises them with both codes.
    with pytest.raises(DaemonError) as err:
        call(d.socket, "history", {"metric": "no-such-metric"})
    assert (err.value.code, err.value.number) == ("not_found", -32003)
    assert d.proc.poll() is None


def test_notifications_get_no_reply_and_still_run(start_daemon: Any) -> None:
    d = start_daemon()
    before = d.call("ping")["generation"]
    responses = raw(d.socket, lines(
        note("ping"),
        note("reload"),  # runs: the generation moves
        note("no.such.method"),  # errors of a notification are not answered either
        note("logs.recent", count=0),
        req(9, "ping")))
    assert [r["id"] for r in responses] == [9] and "result" in responses[0], responses
    assert d.call("ping")["generation"] == before + 1


def test_batches(start_daemon: Any) -> None:
    d = start_daemon()
    mixed = [req(1, "ping"), note("ping"), {"foo": 1}, 5, req(4, "no.such"),
             req(5, "logs.recent", count=0), [req(6, "ping")], req(7, "status")]
    (answer,) = raw(d.socket, lines(mixed))
    assert isinstance(answer, list), answer
    assert [r["id"] for r in answer] == [1, None, None, 4, 5, None, 7]
    assert answer[0]["result"]["pid"] == d.proc.pid and "result" in answer[6]
    for r, code in zip(answer[1:6], ["invalid_request", "invalid_request", "unknown_method",
                                     "bad_params", "invalid_request"], strict=True):
        assert is_error(r, code), r
    # At the limit: every request answered; past it: one error, nothing run.
    (full,) = raw(d.socket, lines([req(i, "ping") for i in range(MAX_BATCH)]))
    assert [r["id"] for r in full] == list(range(MAX_BATCH))
    (over,) = raw(d.socket, lines([req(i, "ping") for i in range(MAX_BATCH + 1)]))
    assert isinstance(over, dict) and is_error(over, "invalid_request") and over["id"] is None
    assert f"at most {MAX_BATCH}" in over["error"]["message"]
    (empty,) = raw(d.socket, b"[]\n")
    assert isinstance(empty, dict) and is_error(empty, "invalid_request"), empty
    # A batch of notifications only: no reply at all, not even [].
    responses = raw(d.socket, lines([note("ping"), note("status")], req(2, "ping")))
    assert [r["id"] for r in responses] == [2], responses


# ------------------------------------------------------ subscriptions ---


def test_a_subscriber_hears_a_real_alert(start_daemon: Any) -> None:
    # Any memory use crosses 0 %: the sweep after a reload (which starts the
    # thresholds afresh) raises the alert again, now with a subscriber.
    d = start_daemon(resource_monitoring={"memory_threshold_percent": 0.0})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(DEADLINE)
        s.connect(str(d.socket))
        stream = s.makefile("rb")
        s.sendall(lines(req(1, "subscribe", topics=["alert"])))
        answer = strict(stream.readline())
        assert answer == {"jsonrpc": "2.0", "id": 1,
                          "result": {"topics": ["alert"], "queue_limit": 256}}
        assert d.call("ping")["subscribers"] == 1
        d.call("reload")
        while True:  # the socket's timeout is the deadline
            n = strict(stream.readline())
            assert "id" not in n and n["jsonrpc"] == "2.0", n  # a notification
            assert n["method"] == "taucg.alert", n
            if n["params"]["metric"] == "memory_percent":
                break
        p = n["params"]
        assert p["state"] == "raised" and p["threshold"] == 0.0 and p["value"] > 0, p
        assert "memory_percent" in p["message"] and p["time"] > 0
        # Unsubscribed, the connection answers requests again, and is one less.
        s.sendall(lines(req(2, "unsubscribe")))
        while "id" not in (r := strict(stream.readline())):
            pass  # alerts queued before the unsubscribe
        assert r == {"jsonrpc": "2.0", "id": 2, "result": {"unsubscribed": True}}
    assert d.call("ping")["subscribers"] == 0


def readme_client() -> str:
    m = re.search(r"<!-- api-client:begin -->\s*```python\n(.*?)```\s*<!-- api-client:end -->",
                  README.read_text(), re.S)
    assert m, "README has no api-client example"
    return m.group(1)


def test_the_readme_client_works(start_daemon: Any, daemon_root: Path) -> None:
    d = start_daemon(resource_monitoring={"memory_threshold_percent": 0.0})
    client = daemon_root / "client.py"
    client.write_text(readme_client())
    # The system Python: the example needs nothing but the standard library.
    r = subprocess.run(["/usr/bin/python3", "-I", str(client), str(d.socket)],
                       capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == d.proc.pid
    follow = subprocess.Popen(["/usr/bin/python3", "-I", str(client), str(d.socket), "follow"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in follow.stdout or ():
            out.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert json.loads(out.get(timeout=DEADLINE))["topics"] == ["alert", "governor",
                                                                   "recovery"]
        d.call("reload")
        while True:
            method, _, params = out.get(timeout=DEADLINE).partition(" ")
            if method == "taucg.alert" and json.loads(params)["metric"] == "memory_percent":
                break
    finally:
        follow.kill()  # our own child, by its Popen
        follow.wait()


# ---------------------------------------- the server in this process ---


def serve_here(path: Path, hub: Hub) -> Server:
    async def ping(_peer: Peer, _params: Any) -> dict[str, Any]:
        return {"pong": True, "subscribers": len(hub)}

    return Server({"ping": Method(ping)}, audit=lambda *_a: None, hub=hub)


def blocking_client(path: Path) -> tuple[socket.socket, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(DEADLINE)
    s.connect(str(path))
    return s, s.makefile("rb")


def subscribed(path: Path, topics: list[str] | None = None) -> tuple[socket.socket, Any]:
    s, stream = blocking_client(path)
    s.sendall(lines(req(1, "subscribe", **({"topics": topics} if topics else {}))))
    assert "result" in json.loads(stream.readline())
    return s, stream


def drain(stream: Any) -> Iterator[dict[str, Any]]:
    while line := stream.readline():
        yield json.loads(line)


def test_a_slow_subscriber_is_dropped_and_blocks_no_one(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    pad = "x" * 4000  # a few hundred of these fill the socket's buffers

    async def main() -> None:
        hub = Hub(limit=8)
        server = serve_here(path, hub)
        await server.start(path, "root")
        try:
            # One subscriber never reads; another reads everything.
            slow, slow_stream = await asyncio.to_thread(subscribed, path)
            got: list[dict[str, Any]] = []
            ended = threading.Event()

            def keep_up() -> None:
                for n in subscribe(path, ["alert"], timeout=DEADLINE):
                    got.append(n)
                ended.set()

            reader = threading.Thread(target=keep_up, daemon=True)
            reader.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while len(hub) < 2:
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
            published = 0
            while hub.dropped_total == 0:
                assert published < 100_000, "the slow subscriber was never dropped"
                hub.publish("alert", {"n": published, "pad": pad})  # never waits
                published += 1
                # Pace by the reader that keeps up, so only the slow one falls behind.
                while len(got) < published - 2:
                    assert loop.time() < deadline, "the subscriber that reads fell behind"
                    await asyncio.sleep(0.01)
            assert len(hub) == 1
            # Others are served while the dropped one has not read a byte.
            assert (await asyncio.to_thread(call, path, "ping"))["pong"] is True
            hub.publish("alert", {"n": published, "pad": ""})
            while len(got) < published + 1:
                assert loop.time() < deadline
                await asyncio.sleep(0.01)
            assert [n["params"]["n"] for n in got] == list(range(published + 1))
            # The slow one reads at last: what fit, then the final notice, then EOF.
            notes = await asyncio.to_thread(lambda: list(drain(slow_stream)))
            slow.close()
            assert notes[-1]["method"] == "taucg.dropped", notes[-1]
            assert all(n["method"] == "taucg.alert" for n in notes[:-1])
            assert [n["params"]["n"] for n in notes[:-1]] == list(range(len(notes) - 1))
            assert len(notes) - 1 + notes[-1]["params"]["lost"] == published
        finally:
            await server.close()
        await asyncio.to_thread(ended.wait, DEADLINE)
        assert ended.is_set()  # the server's close ends the other subscription too

    asyncio.run(main())


def test_subscribers_skip_the_idle_timeout_but_count_against_the_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket_api, "IDLE_SECONDS", 1.0)
    monkeypatch.setattr(socket_api, "MAX_PER_PEER", 2)
    path = tmp_path / "api.sock"

    async def main() -> None:
        hub = Hub()
        server = serve_here(path, hub)
        await server.start(path, "root")
        try:
            sub, sub_stream = await asyncio.to_thread(subscribed, path)
            # A silent connection opened after the subscription is closed for idling...
            plain, plain_stream = await asyncio.to_thread(blocking_client, path)
            assert await asyncio.to_thread(plain_stream.readline) == b""
            plain.close()
            # ...so the subscriber has been silent longer, and is still served.
            sub.sendall(lines(req(2, "ping")))
            answer = json.loads(await asyncio.to_thread(sub_stream.readline))
            assert answer["id"] == 2 and answer["result"] == {"pong": True, "subscribers": 1}
            # Two subscribers are this uid's two connections: a third is refused.
            other, _ = await asyncio.to_thread(subscribed, path)
            third, third_stream = await asyncio.to_thread(blocking_client, path)
            busy = json.loads(await asyncio.to_thread(third_stream.readline))
            third.close()
            assert is_error(busy, "busy") and busy["id"] is None, busy
            # The CLI's client says so too, even when its request met a closed socket.
            with pytest.raises(DaemonError) as err:
                await asyncio.to_thread(call, path, "ping")
            assert (err.value.code, err.value.number) == ("busy", -32001), err.value
            other.close()
            sub.close()
        finally:
            await server.close()

    asyncio.run(main())
