"""A D-Bus peer that dies under the client: a clear error, and nothing
left for asyncio to complain about.

A private dbus-daemon stands in for the system bus (the host has no
systemd); the test starts it and kills it by its own PID."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable

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


@pytest.fixture
def private_bus(tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("needs dbus-daemon (Debian package dbus-daemon; "
                    "scripts/setup --vm installs it)")
    sock = tmp_path / "bus"
    conf = tmp_path / "system.conf"
    conf.write_text(CONFIG.format(socket=sock))
    proc = subprocess.Popen([daemon, f"--config-file={conf}", "--nofork"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, f"dbus-daemon exited with {proc.returncode}"
            assert time.monotonic() < deadline, "dbus-daemon never made its socket"
            time.sleep(0.05)
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={sock}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


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
