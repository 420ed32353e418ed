"""Helpers shared by the VM tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import UNIT, SystemdError
from tests.support.blocking_systemd import BlockingSystemd

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Units:
    """Hands out unique unit names and removes every unit a test made."""

    _counter = itertools.count()

    def __init__(self, client: BlockingSystemd) -> None:
        self.client = client
        self.made: list[str] = []

    def name(self, label: str, suffix: str = "service") -> str:
        name = f"taucg-test-{label}-{os.getpid()}-{next(self._counter)}.{suffix}"
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        # Services and scopes first, slices last: stopping a slice stops its
        # members too, but the order keeps each stop's job small.
        for name in sorted(self.made, key=lambda n: n.endswith(".slice")):
            for action in (self.client.stop, self.client.reset_failed):
                with contextlib.suppress(SystemdError):
                    action(name)


def cgroup_dir(systemd: BlockingSystemd, unit: str) -> Path:
    interface = {"service": "org.freedesktop.systemd1.Service",
                 "scope": "org.freedesktop.systemd1.Scope",
                 "slice": "org.freedesktop.systemd1.Slice"}[unit.rsplit(".", 1)[1]]
    group = systemd.get_property(unit, "ControlGroup", interface)
    assert group, f"{unit} has no control group (is it running?)"
    return CGROUP_ROOT / str(group).lstrip("/")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls until predicate() is truthy; fails naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


def unit_state(systemd: BlockingSystemd, unit: str) -> str:
    return str(systemd.get_property(unit, "ActiveState", UNIT))


def stop_process(proc: subprocess.Popen[bytes] | None) -> bool:
    """SIGTERM, as systemctl stop would, to a process the test started;
    SIGKILL after 120 s. False when it had to be killed."""
    if proc is None or proc.poll() is not None:
        return True
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=60)
        return False
    return True
