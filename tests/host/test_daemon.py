"""The daemon's own mechanics, in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taucg.config import load
from taucg.daemon import Daemon

from .conftest import write_config


def test_stop_outlasts_a_worker_that_swallows_a_cancellation(tmp_path: Path) -> None:
    """A cancellation lost inside a worker (as asyncio.wait_for can lose one
    in Python 3.11) must not keep the daemon from stopping."""
    cfg = load(write_config(tmp_path))
    swallowed = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append(True)  # lost, as in the race
        await asyncio.sleep(3600)  # the next await takes the second cancel

    async def main() -> bool:
        d = Daemon(cfg, None)
        try:
            task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
            d._tasks["stubborn"] = task
            await asyncio.sleep(0.05)
            await asyncio.wait_for(d._stop_workers(grace=5), 10)
            return task.done()
        finally:
            d.sampler.close()
            for h in list(d.log.handlers):
                d.log.removeHandler(h)
                h.close()

    assert asyncio.run(main()) is True
    assert swallowed == [True]
