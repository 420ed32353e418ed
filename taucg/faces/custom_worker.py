"""The custom-metrics worker: after each sample tick, every [[metrics.custom]]
source is read again (each on its own, so a slow command delays only its
own metric), and the number left for the next tick to record. A metric
whose read failed or is still running has no value at that tick.

A failure is said once per metric, with the metric's name, why and the
fix, and once more when the metric reads again; not at every tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from taucg.config.schema import CustomMetric
from taucg.model.custom_metrics import parse_number
from taucg.readers.custom_metrics import ReadFailed, read_command, read_file


async def read_one(m: CustomMetric) -> float:
    if m.file is not None:
        text = await read_file(m.file, m.timeout_seconds)
        source = m.file
    else:
        assert m.command is not None  # the config's cross check
        text = await read_command(m.command, m.timeout_seconds)
        source = f"command {m.command!r}"
    try:
        return parse_number(text)
    except ValueError as exc:
        raise ReadFailed(f"{source} {exc}") from None


async def watch_metric(m: CustomMetric, swept: asyncio.Event, sink: dict[str, float],
                       log: logging.Logger) -> None:
    failing: str | None = None
    while True:
        await swept.wait()
        swept.clear()
        try:
            sink[m.name] = await read_one(m)
        except ReadFailed as exc:
            if failing is None:
                log.warning("custom metric %s has no value until this is fixed: %s", m.name,
                            exc, extra={"custom_metric": m.name})
            failing = str(exc)
            continue
        if failing is not None:
            log.info("custom metric %s reads again", m.name, extra={"custom_metric": m.name})
            failing = None


async def watch_custom(metrics: Sequence[CustomMetric], sweeps: Callable[[], asyncio.Event],
                       sink: dict[str, float], log: logging.Logger) -> None:
    """Runs until cancelled; ``sweeps()`` gives an event set after each tick."""
    async with asyncio.TaskGroup() as group:
        for m in metrics:
            group.create_task(watch_metric(m, sweeps(), sink, log), name=f"custom-{m.name}")
