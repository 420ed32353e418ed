"""The desktop notifier against a private bus standing in for a user's
session bus (<runtime>/UID/bus, owned by root or by nobody), with a test
org.freedesktop.Notifications service written with dbus-fast: the real
notify worker's call arrives, made as the bus's owner (the service asks
the bus for the caller's uid), with the severity as its urgency. A
runtime directory without any bus is said once and skipped."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from taucg.config.loading import loads
from taucg.faces.notify_worker import NotifyWorker
from tests.support.private_bus import dbus_daemon

NOBODY = 65534


class Notifications:
    """Answers Notify after asking the bus who called."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.calls: list[dict[str, Any]] = []

    def handle(self, msg: Message) -> bool | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.member != "Notify" \
                or msg.interface != "org.freedesktop.Notifications":
            return None
        asyncio.get_running_loop().create_task(self._answer(msg))
        return True  # answered later, by _answer

    async def _answer(self, msg: Message) -> None:
        uid = await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
            signature="s", body=[msg.sender]))
        assert uid is not None
        app, _replaces, _icon, summary, body, _actions, hints, _timeout = msg.body
        self.calls.append({"app": app, "summary": summary, "body": body,
                           "urgency": hints["urgency"].value, "uid": uid.body[0]})
        self.bus.send(Message.new_method_return(msg, "u", [len(self.calls)]))


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logger(name: str) -> tuple[logging.Logger, Lines]:
    log = logging.getLogger(f"taucg-test-{name}")
    lines = Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    return log, lines


def _worker(root: Path, runtime: Path, log: logging.Logger) -> NotifyWorker:
    cfg = loads(f'[crash_recovery]\nstate_directory = "{root / "state"}"\n'
                f'[[notifiers]]\ntype = "desktop"\nruntime_directory = "{runtime}"\n'
                'min_severity = "info"\nrate_limit = 0\ntimeout_seconds = 20.0\n')
    return NotifyWorker(cfg, log)


OOM = {"time": 1.0e9, "metric": "oom_kill low", "state": "raised", "value": 1.0,
       "threshold": 0.0, "severity": "critical",
       "message": "1 process OOM-killed in tier low: hog (pid 42, x.scope)"}


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def _runs_as(uid: int) -> bool:
    """Whether this interpreter can be run as uid (a venv under /root cannot)."""
    try:
        subprocess.run([sys.executable, "-c", ""], user=uid, group=uid, extra_groups=[],
                       check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


@pytest.mark.parametrize("uid", [0, NOBODY], ids=["root", "nobody"])
def test_desktop_notification_reaches_the_session_bus_as_its_user(
        tmp_path: Path, uid: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the notifier runs its call as the bus's owner")
    if uid != 0 and not _runs_as(uid):
        pytest.skip(f"{sys.executable} cannot be run by uid {uid} here (a venv in a "
                    "private home): the call as another user is not covered on this host")
    runtime = tmp_path / "run" / "user"
    userdir = runtime / str(uid)
    userdir.mkdir(parents=True)
    for p in (tmp_path, tmp_path / "run", runtime, userdir):
        p.chmod(0o755)  # nobody's child must reach its bus
    log, lines = _logger("desktop")

    async def scenario(address: str) -> list[dict[str, Any]]:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        service = Notifications(bus)
        bus.add_message_handler(service.handle)
        await bus.request_name("org.freedesktop.Notifications")
        worker = _worker(tmp_path, runtime, log)
        task = asyncio.get_running_loop().create_task(worker.run())
        try:
            worker.hear("alert", OOM)
            worker.hear("alert", {**OOM, "state": "cleared", "severity": "warning",
                                  "message": "no new OOM kill in tier low"})
            await _until(lambda: len(service.calls) == 2 or any(
                "cannot notify" in x for x in lines.lines), 120, "two Notify calls")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            bus.disconnect()
        return service.calls

    with dbus_daemon(userdir) as (address, _proc):
        os.chown(userdir / "bus", uid, uid)  # a session bus is its user's
        calls = asyncio.run(scenario(address))
    by_summary = {c["summary"]: c for c in calls}
    raised = by_summary["taucg: oom_kill low raised"]
    assert raised["app"] == "taucg" and "hog (pid 42" in raised["body"]
    assert raised["urgency"] == 2  # critical
    assert by_summary["taucg: oom_kill low cleared"]["urgency"] == 0  # info: low
    assert {c["uid"] for c in calls} == {uid}
    assert not [line for line in lines.lines if "cannot notify" in line], lines.lines


def test_no_session_bus_is_said_once_and_skipped(tmp_path: Path) -> None:
    runtime = tmp_path / "run" / "user"
    (runtime / "1000").mkdir(parents=True)  # a user directory without a bus
    log, lines = _logger("nobus")

    async def scenario() -> None:
        worker = _worker(tmp_path, runtime, log)
        task = asyncio.get_running_loop().create_task(worker.run())
        try:
            for _ in range(3):
                worker.hear("alert", OOM)
            await _until(lambda: sum("-> no session bus" in x for x in lines.lines) == 3, 60,
                         "three deliveries skipped")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    said = [x for x in lines.lines if "no session bus under" in x]
    assert len(said) == 1 and str(runtime) in said[0]
