"""A D-Bus peer that dies under the client: a clear error, and nothing
left for asyncio to complain about.

A private dbus-daemon stands in for the system bus (the host has no
systemd); the test starts it and kills it by its own PID."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable
from tests.support.private_bus import dbus_daemon


@pytest.fixture
def private_bus(tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    with dbus_daemon(tmp_path) as (address, proc):
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        yield proc


def test_a_peer_killed_mid_session_gives_unavailable_and_no_orphaned_futures(
        private_bus: subprocess.Popen[bytes]) -> None:
    complaints: list[dict[str, Any]] = []

    async def main() -> list[str]:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: complaints.append(context))
        client = await Systemd(timeout=30).connect()
        os.kill(private_bus.pid, signal.SIGKILL)
        private_bus.wait()
        said = []
        for _ in range(3):
            with pytest.raises(SystemdUnavailable) as err:
                await client.get_unit("x.service")
            said.append(str(err.value))
        await client.close()
        # Orphaned futures complain when collected: collect them while the
        # loop and its handler are still ours.
        gc.collect()
        await asyncio.sleep(0)
        return said

    said = asyncio.run(main())
    gc.collect()
    assert all("system bus" in s for s in said), said
    assert not complaints, [c.get("message") for c in complaints]
