"""The daemon's own mechanics, in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

from taucg.config.loading import load
from taucg.faces.daemon import Daemon
from tests.support.configs import daemon_config


@contextlib.contextmanager
def in_process_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A Daemon object (not started), closed afterwards; call inside a loop."""
    d = Daemon(load(daemon_config(tmp_path)), None)
    try:
        yield d
    finally:
        d.sampler.close()
        for h in list(d.log.handlers):
            d.log.removeHandler(h)
            h.close()


def test_stop_outlasts_a_worker_that_swallows_a_cancellation(tmp_path: Path) -> None:
    """A cancellation lost inside a worker (as asyncio.wait_for can lose one
    in Python 3.11) must not keep the daemon from stopping."""
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(True)  # lost, as in the race
        await asyncio.sleep(3600)  # the next await takes the second cancel

    async def main() -> bool:
        with in_process_daemon(tmp_path) as d:
            task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
            d._tasks["stubborn"] = task
            await asyncio.sleep(0.05)
            await asyncio.wait_for(d._stop_workers(grace=5), 10)
            return task.done()

    assert asyncio.run(main()) is True
    assert swallowed == [True]


def test_sweeps_between_full_listings_see_new_processes_through_events(tmp_path: Path
                                                                         ) -> None:
    """The sweep lists /proc once, then follows fork/exec events: a process
    started afterwards is in the next sweep, which does not list /proc."""
    import subprocess
    import time

    from taucg.faces.daemon import tier_paths

    async def main() -> tuple[bool, bool, bool]:
        with in_process_daemon(tmp_path) as d:
            tracker = asyncio.get_running_loop().create_task(d._track_processes())
            try:
                deadline = time.monotonic() + 30
                while not d._tracking and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                d.tick(tier_paths())  # the full listing
                full_at = d._last_full
                child = subprocess.Popen(["sleep", "30"])
                try:
                    seen = False
                    while not seen and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)  # let the fork/exec events arrive
                        d.tick(tier_paths())
                        seen = any(p.pid == child.pid for p in d._processes)
                    return d._tracking, seen, d._last_full == full_at
                finally:
                    child.kill()
                    child.wait()
            finally:
                tracker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tracker

    tracking, seen, not_listed = asyncio.run(main())
    assert tracking, "the proc connector was not available"
    assert seen, "the new process never showed up in a tracked sweep"
    assert not_listed, "the sweep that found it listed /proc anyway"
