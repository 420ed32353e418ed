"""A private dbus-daemon standing in for the system bus on a host without
systemd, and a stand-in systemd on it that answers ListUnitsByPatterns.

The test that uses them starts both and ends both: the daemon by its own
PID, the stand-in by stopping its loop."""

from __future__ import annotations

import asyncio
import fnmatch
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
"""


@contextmanager
def private_system_bus(root: Path) -> Iterator[str]:
    """A dbus-daemon on a socket under root; yields its address, the value
    for DBUS_SYSTEM_BUS_ADDRESS."""
    with dbus_daemon(root) as (address, _proc):
        yield address


@contextmanager
def dbus_daemon(root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """private_system_bus, with the daemon's process (the test's own, to kill)."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("needs dbus-daemon (Debian package dbus-daemon; "
                    "scripts/setup --vm installs it)")
    sock = root / "bus"
    conf = root / "system.conf"
    conf.write_text(CONFIG.format(socket=sock))
    proc = subprocess.Popen([daemon, f"--config-file={conf}", "--nofork"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, f"dbus-daemon exited with {proc.returncode}"
            assert time.monotonic() < deadline, "dbus-daemon never made its socket"
            time.sleep(0.05)
        yield f"unix:path={sock}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# (name, description, active state, sub state)
UnitRow = tuple[str, str, str, str]


class ListingSystemd:
    """Owns org.freedesktop.systemd1 on the bus at `address` and answers
    ListUnitsByPatterns from `units`, matching the patterns as systemd
    does (fnmatch); records the patterns each call asked for."""

    def __init__(self, address: str, units: list[UnitRow]) -> None:
        self.address = address
        self.units = units
        self.asked: list[list[str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ListingSystemd:
        self._thread.start()
        assert self._ready.wait(60), "the stand-in systemd never got its name"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test by __enter__
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def _answer(self, msg: Message) -> Message | None:
        if msg.message_type != MessageType.METHOD_CALL or msg.member != "ListUnitsByPatterns":
            return None
        states, patterns = msg.body
        self.asked.append(list(patterns))
        rows = [[name, description, "loaded", active, sub, "",
                 "/org/freedesktop/systemd1/unit/x", 0, "", "/"]
                for name, description, active, sub in self.units
                if (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns))
                and (not states or active in states)]
        return Message.new_method_return(msg, "a(ssssssouso)", [rows])

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
        try:
            bus.add_message_handler(self._answer)
            await bus.request_name("org.freedesktop.systemd1")
            self._ready.set()
            await self._stop.wait()
        finally:
            bus.disconnect()
