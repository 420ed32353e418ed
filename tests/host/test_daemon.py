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
