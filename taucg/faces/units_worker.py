"""The daemon's units worker: systemd's word on the units inside the tier
slices (ActiveState, NRestarts), which no cgroup file holds, published for
the metrics beside the cgroup figures each sweep reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from taucg.actors.systemd_dbus import read_service_states
from taucg.faces.daemon_state import DaemonState


async def watch_units(state: Callable[[], DaemonState], publish: Callable[..., None],
                      interval: float) -> None:
    """Runs until cancelled. Without systemd the last answer stands (none at
    first): a bus outage must not show every unit as gone."""
    while True:
        tick = state().last
        units = sorted({u for m in tick.members.values() for u in m}) if tick else []
        if units:
            states = await read_service_states(units)
            if states.unavailable is None:
                publish(units={s.unit: s for s in states.units if s.error is None})
        elif state().units:
            publish(units={})
        await asyncio.sleep(interval)

