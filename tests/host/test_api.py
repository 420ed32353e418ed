"""The socket API against a real daemon process: access by SO_PEERCRED,
audit of refusals and mutations, malformed requests, reload, shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.jsonrpc import CODES
from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call
from tests.support.cli import taucg

NOBODY = 65534


# The client as nobody uses the system Python and the standard library only:
# the test venv's interpreter may sit under a directory nobody cannot enter.
NOBODY_CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError as e:
    print(json.dumps({"connect_error": "permission"}))
    sys.exit(0)
s.sendall(json.dumps({"jsonrpc": "2.0", "id": 7, "method": sys.argv[2]}).encode() + b"\\n")
buf = b""
while not buf.endswith(b"\\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.decode())
"""


def as_nobody(sock: Path, method: str) -> dict[str, Any]:
    """Calls the API from a process running as nobody:nogroup, no other groups."""
    r = subprocess.run(["/usr/bin/python3", "-c", NOBODY_CLIENT, str(sock), method],
                       user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, check=False,
                       text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout)
    return result


@contextlib.contextmanager
def effective_nobody() -> Iterator[None]:
    """This process as nobody for a moment (effective ids only)."""
    groups = os.getgroups()
    os.setgroups([NOBODY])
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def audit_records(d: Any, name: str = "audit.log") -> list[dict[str, Any]]:
    path = d.log_dir / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def raw(sock: Path, payload: bytes, timeout: float = 10) -> list[dict[str, Any]]:
    """Sends bytes as they are; returns every response line."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    buf = b""
    while chunk := s.recv(65536):
        buf += chunk
    s.close()
    return [strict(line) for line in buf.splitlines()]


def strict(line: bytes) -> Any:
    """json.loads, except that NaN and Infinity, which are not JSON, fail."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"the daemon sent {name}, which is not JSON: {line[:200]!r}")

    return json.loads(line, parse_constant=refuse)


def test_socket_mode_and_group(start_daemon: Any) -> None:
    d = start_daemon(group="nogroup")
    st = d.socket.stat()
    assert oct(st.st_mode & 0o777) == "0o660"
    assert st.st_uid == 0 and st.st_gid == NOBODY


def test_group_member_reads_but_cannot_mutate_and_is_audited(start_daemon: Any) -> None:
    d = start_daemon(group="nogroup")
    ping = as_nobody(d.socket, "ping")
    assert ping["jsonrpc"] == "2.0" and ping["id"] == 7
    assert ping["result"]["pid"] == d.proc.pid
    refused = as_nobody(d.socket, "reload")
    assert "result" not in refused and refused["id"] == 7, refused
    assert refused["error"]["code"] == -32000, refused
    assert refused["error"]["data"]["code"] == "not_root", refused
    assert "needs root" in refused["error"]["message"]
    assert "nobody" in refused["error"]["message"]
    # Refusals go to the refusals log, apart from root's records.
    records = [r for r in audit_records(d, "audit.refused.log") if r["action"] == "api reload"]
    assert len(records) == 1
    assert records[0]["result"] == "refused: not root"
    assert records[0]["who"].startswith("nobody (uid 65534)")
    # Root may, and that is audited in the audit log.
    assert call(d.socket, "reload")["reloaded"] is True
    results = [r["result"] for r in audit_records(d) if r["action"] == "api reload"]
    assert results == ["ok"]
    assert d.proc.poll() is None


def test_outside_the_group_cannot_connect(start_daemon: Any) -> None:
    d = start_daemon(group="root")
    assert as_nobody(d.socket, "ping") == {"connect_error": "permission"}
    # The CLI's client turns that into advice.
    with effective_nobody(), pytest.raises(DaemonNotRunning) as err:
        call(d.socket, "ping")
    assert "permission denied" in str(err.value) and "socket_group" in str(err.value)


def test_malformed_requests_get_errors_and_the_daemon_lives(start_daemon: Any) -> None:
    d = start_daemon()
    rpc = b'"jsonrpc": "2.0", "id": 1, '
    # (payload, taucg's code, the id the answer carries: null when the
    # request's own could not be read)
    cases: list[tuple[bytes, str, int | None]] = [
        (b"this is not json\n", "parse_error", None),
        (b'"a string"\n', "invalid_request", None),
        (b'{"id": 1, "method": "ping"}\n', "invalid_request", 1),  # no "jsonrpc"
        (b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}\n', "invalid_request", 1),
        (b"{" + rpc + b'"method": 5}\n', "invalid_request", 1),
        (b"{" + rpc + b'"method": "ping", "params": 5}\n', "invalid_request", 1),
        (b"{" + rpc + b'"method": "ping", "param": {}}\n', "invalid_request", 1),
        (b'{"jsonrpc": "2.0", "id": [1], "method": "ping"}\n', "invalid_request", None),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}\n', "invalid_request", None),
        (b"{" + rpc + b'"method": "ping", "params": [1]}\n', "bad_params", 1),
        (b"{" + rpc + b'"method": "no.such.method"}\n', "unknown_method", 1),
        (b"{" + rpc + b'"method": "logs.recent", "params": {"count": "many"}}\n',
         "bad_params", 1),
        (b"{" + rpc + b'"method": "logs.recent", "params": {"count": 0}}\n', "bad_params", 1),
        (b"{" + rpc + b'"method": "logs.recent", "params": {"level": "loud"}}\n',
         "bad_params", 1),
        (b"{" + rpc + b'"method": "history", "params": {"metric": "no-such-metric"}}\n',
         "not_found", 1),
        (b"\xff\xfe\x00garbage\n", "parse_error", None),
        (b"[" * 1000 + b"\n", "parse_error", None),  # deep nesting: RecursionError before
        (b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b', "method": "ping"}\n',
         "parse_error", None),  # past Python's int digit limit
        (b'{"jsonrpc": "2.0", "id": 1e999, "method": "ping"}\n', "parse_error", None),
        (b'{"jsonrpc": "2.0", "id": NaN, "method": "ping"}\n', "parse_error", None),
        (b"{" + rpc + b'"method": "ping", "params": {"x": -Infinity}}\n', "parse_error", None),
    ]
    for payload, code, req_id in cases:
        responses = raw(d.socket, payload)  # strict JSON on the way back too
        assert len(responses) == 1, (payload, responses)
        (r,) = responses
        assert r["jsonrpc"] == "2.0" and "result" not in r, (payload, r)
        assert r["error"]["data"]["code"] == code, (payload, r)
        assert r["error"]["code"] == CODES[code], (payload, r)
        assert r["id"] == req_id, (payload, r)
    # Several requests on one connection, a bad one among them.
    responses = raw(d.socket, b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\nnope\n'
                              b'{"jsonrpc": "2.0", "id": 3, "method": "ping"}\n')
    assert ["result" in r for r in responses] == [True, False, True]
    assert [r["id"] for r in responses] == [1, None, 3]
    # A request over the limit is answered and the connection closed.
    responses = raw(d.socket, b'{"jsonrpc": "2.0", "method": "ping", "id": "' + b"x" * 200_000
                    + b'"}\n')
    assert responses[0]["error"]["data"]["code"] == "too_large"
    assert responses[0]["error"]["code"] == -32600
    # A client that connects and vanishes, and one that sends half a line.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.socket))
    s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.socket))
    s.sendall(b'{"method": "pi')
    s.close()
    assert d.call("ping")["pid"] == d.proc.pid
    assert d.proc.poll() is None


def test_reads_return_daemon_state(start_daemon: Any) -> None:
    d = start_daemon()
    deadline = time.monotonic() + 30
    while d.call("status")["sweeps"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    status = d.call("status")
    assert status["sweeps"] >= 3 and status["processes"] > 0
    history = d.call("history")
    assert len(history["metrics"]["memory_percent"]["points"]) >= 2
    while d.call("health") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    health = d.call("health")
    assert 0.0 <= health["score"] <= 1.0
    stats = {s["log"]: s for s in d.call("logs.stats")}
    assert stats["main"]["levels"].get("INFO", 0) >= 1
    assert stats["performance"]["records"] >= 3  # one per sweep
    recent = d.call("logs.recent", count=2, log="performance")
    assert len(recent) == 2 and all(r["operation"] == "sweep" for r in recent)


def test_sighup_with_a_bad_config_keeps_the_old_one(start_daemon: Any) -> None:
    d = start_daemon()
    before = d.call("ping")
    good = d.config.read_text()
    d.config.write_text(good + "\n[resource_monitoring]\ninterval_seconds = -4\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 20
    refused: list[dict[str, Any]] = []
    while not refused and time.monotonic() < deadline:
        refused = [r for r in d.call("logs.recent", count=50, level="error")
                   if "reload refused" in r["message"]]
        time.sleep(0.2)
    assert refused, "no 'reload refused' record in the log"
    after = d.call("ping")
    assert after["generation"] == before["generation"]
    assert after["interval_seconds"] == 1
    assert d.proc.poll() is None
    # A good config then reloads.
    d.config.write_text(good.replace("interval_seconds = 1", "interval_seconds = 2"))
    os.kill(d.proc.pid, signal.SIGHUP)
    while d.call("ping")["generation"] == before["generation"] and time.monotonic() < deadline:
        time.sleep(0.2)
    after = d.call("ping")
    assert after["generation"] == before["generation"] + 1 and after["interval_seconds"] == 2


def test_sigterm_stops_cleanly_and_removes_the_socket(start_daemon: Any) -> None:
    d = start_daemon()
    assert d.stop() == 0
    assert not d.socket.exists()


def test_a_second_daemon_on_the_same_socket_is_refused(start_daemon: Any) -> None:
    d = start_daemon()
    r = taucg("daemon", config=d.config, check=False, timeout=60)
    assert r.returncode == 1
    assert "another taucg daemon answers" in r.stdout + r.stderr
    assert d.call("ping")["pid"] == d.proc.pid


def test_root_mutation_errors_are_answered(start_daemon: Any) -> None:
    d = start_daemon()
    with pytest.raises(DaemonError) as err:
        d.call("recovery.save_state", unit="a.service", path="/nonexistent")
    assert err.value.code == "bad_params" and "/nonexistent" in str(err.value)
    assert err.value.number == -32602
    failed = [r for r in audit_records(d) if r["action"] == "api recovery.save_state"]
    assert failed and failed[-1]["result"].startswith("failed:")


def test_metrics_endpoint_serves_the_daemon_state(start_daemon: Any) -> None:
    import urllib.request

    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = start_daemon(daemon={"metrics_address": f"127.0.0.1:{port}"})
    deadline = time.monotonic() + 30
    while d.call("status")["sweeps"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        body = r.read().decode()
    sweeps = [line for line in body.splitlines() if line.startswith("taucg_sampler_sweeps_total")]
    assert sweeps and float(sweeps[0].split()[1]) >= 2
    assert "taucg_sampler_sweep_seconds_total" in body
    assert "taucg_system_memory_used_ratio" in body
    assert 'taucg_system_cpu_seconds_total{mode="idle"}' in body
    assert "process_resident_memory_bytes" in body  # the daemon's own
    stamp = [line for line in body.splitlines()
             if line.startswith("taucg_sampler_last_sweep_timestamp_seconds ")]
    assert stamp and abs(float(stamp[0].split()[1]) - time.time()) < 600
    assert 'taucg_build_info{' in body
    assert "percent" not in body and 'tier="all"' not in body
    check_with_promtool(body)


def check_with_promtool(body: str) -> None:
    """promtool's lint (Prometheus's naming conventions) on an exposition.
    CI installs promtool (scripts/setup: Debian's prometheus); elsewhere a
    missing promtool skips, in CI it fails."""
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup installs Debian's prometheus")
        pytest.skip("promtool not installed (Debian package prometheus)")
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        r.stdout + r.stderr)


def test_promtool_finds_every_tier_metric_clean() -> None:
    """The host has no tier slices, so the daemon above exports no tier or
    unit metric: the same lint on a state with all five tiers, their units,
    limits and limit hits and the governor."""
    from tests.unit.test_metrics import exposition, state

    body = exposition(state())
    assert 'taucg_tier_oom_kills_total{tier="low"}' in body
    assert "taucg_unit_state{" in body
    check_with_promtool(body)


def test_metrics_are_off_by_default() -> None:
    from taucg.config.loading import builtin

    assert builtin().daemon.metrics_address == ""


FLOOD_CLIENT = """
import json, socket, sys
pad = "x" * 60_000
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": "reload",
                          "params": {"pad": pad}}).encode() + b"\\n")
    s.recv(65536)
    s.close()
"""


def test_a_refusal_flood_evicts_no_root_record(start_daemon: Any) -> None:
    d = start_daemon(group="nogroup")
    assert call(d.socket, "reload")["reloaded"] is True  # root's record, first
    r = subprocess.run(["/usr/bin/python3", "-c", FLOOD_CLIENT, str(d.socket), "300"],
                       user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                       check=False, text=True, timeout=300, cwd="/")
    assert r.returncode == 0, r.stderr
    ok = [x for x in audit_records(d) if x["action"] == "api reload"]
    assert [x["result"] for x in ok] == ["ok"]  # root's record stays where it was
    refused = audit_records(d, "audit.refused.log")
    assert 1 <= len(refused) <= 20, len(refused)  # rate-limited per uid
    assert all(len(json.dumps(x)) < 2000 for x in refused)  # params bounded
    assert d.proc.poll() is None


def test_mutations_answer_in_bounded_time_without_dbus_and_leak_no_fds(
        start_daemon: Any) -> None:
    """This host has no system bus: leave_safe_mode used to wait for one forever."""
    d = start_daemon()

    def sockets() -> int:
        """Open sockets only: the sampler keeps a /proc fd per process on the
        machine, which moves with whatever else runs here."""
        out = 0
        for fd in os.listdir(f"/proc/{d.proc.pid}/fd"):
            try:
                out += os.readlink(f"/proc/{d.proc.pid}/fd/{fd}").startswith("socket:")
            except OSError:
                continue
        return out

    fds = sockets()
    for _ in range(3):
        t0 = time.monotonic()
        with pytest.raises(DaemonError) as err:
            call(d.socket, "recovery.leave_safe_mode", timeout=60)
        assert err.value.code == "unavailable", err.value
        assert "system bus" in str(err.value)
        assert time.monotonic() - t0 < 50
    assert sockets() <= fds + 1  # a bus attempt that failed keeps no socket
    assert d.call("ping")["pid"] == d.proc.pid


def test_connection_limits_and_idle_timeout(start_daemon: Any) -> None:
    d = start_daemon()
    silent = []
    try:
        for _ in range(16):  # the per-peer limit, all root's
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(str(d.socket))
            # One answered request proves the daemon holds the connection open.
            s.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
            assert s.recv(65536).endswith(b"\n")
            silent.append(s)
        # The 17th is told at once, before it says anything, and closed.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(str(d.socket))
        extra = json.loads(s.recv(65536))
        s.close()
        assert extra["id"] is None and extra["error"]["code"] == -32001, extra
        assert extra["error"]["data"]["code"] == "busy", extra
        # A silent connection is closed by the daemon after its idle timeout.
        silent[0].settimeout(90)
        assert silent[0].recv(1) == b""
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            assert d.call("ping")["pid"] == d.proc.pid
            break
        except DaemonError:
            time.sleep(0.5)  # slots free as the daemon notices the closes
    else:
        raise AssertionError("the daemon never served again after the clients left")
