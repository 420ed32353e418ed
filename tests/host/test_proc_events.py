"""The netlink proc connector on this machine's kernel."""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest

from taucg.readers.sampler import EventsUnavailable, Sampler
from taucg.readers.samples import ProcEvent


def _collect(events, until, timeout: float = 5.0) -> list[ProcEvent]:  # type: ignore[no-untyped-def]
    got: list[ProcEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        select.select([events.fileno()], [], [], 0.2)
        got.extend(events.read())
    return got


def test_exec_and_exit_code_of_a_child() -> None:
    try:
        events = Sampler().events()
    except EventsUnavailable as exc:
        pytest.skip(f"proc connector unavailable here: {exc}")
    with events:
        child = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
        child.wait()
        got = _collect(events, lambda evs: any(e.kind == "exit" and e.pid == child.pid
                                               for e in evs))
    mine = [e for e in got if e.pid == child.pid]
    kinds = [e.kind for e in mine]
    assert "fork" in kinds and "exec" in kinds and "exit" in kinds
    fork = next(e for e in mine if e.kind == "fork")
    assert fork.parent_tgid == os.getpid()
    exit_ev = next(e for e in mine if e.kind == "exit")
    assert exit_ev.exit_status == 7
    assert exit_ev.killed_by is None


def test_exit_by_signal() -> None:
    try:
        events = Sampler().events()
    except EventsUnavailable as exc:
        pytest.skip(f"proc connector unavailable here: {exc}")
    with events:
        child = subprocess.Popen(["sleep", "30"])
        child.kill()
        child.wait()
        got = _collect(events, lambda evs: any(e.kind == "exit" and e.pid == child.pid
                                               for e in evs))
    exit_ev = next(e for e in got if e.kind == "exit" and e.pid == child.pid)
    assert exit_ev.killed_by == 9
    assert exit_ev.exit_status is None


def test_arrivals_yield_events_on_an_asyncio_loop() -> None:
    import asyncio

    try:
        events = Sampler().events()
    except EventsUnavailable as exc:
        pytest.skip(f"proc connector unavailable here: {exc}")

    async def first_exec_of_child() -> tuple[int, ProcEvent]:
        child = await asyncio.create_subprocess_exec("/bin/true")
        async for ev in events.arrivals():
            if ev.kind == "exec" and ev.pid == child.pid:
                await child.wait()
                return child.pid, ev
        raise AssertionError("the event stream ended")

    with events:
        pid, ev = asyncio.run(asyncio.wait_for(first_exec_of_child(), 10))
    assert ev.pid == pid and ev.timestamp > 0
