"""The daemon's governor worker: every min_interval_seconds, the tier
slices' pressure and the hottest sensor -> model.governor ->
actors.governing, and a GovernorView published for the API and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from taucg.actors.governing import GovernorActor
from taucg.actors.systemd_dbus import Systemd
from taucg.config.schema import TIER_NAMES, Config
from taucg.faces.daemon_state import GovernorView
from taucg.model.governor import RESOURCES, Governor
from taucg.model.tiers import slice_name
from taucg.readers import cgroupfs
from taucg.readers.machine import Machine
from taucg.readers.sampler import Sampler
from taucg.readers.sysinfo import temperatures

ACTIONS_KEPT = 200


async def govern(cfg: Config, sampler: Sampler, client: Systemd, log: logging.Logger,
                 publish: Callable[..., None], pressing: Callable[[bool], None],
                 acted: Callable[[Mapping[str, Any]], None] = lambda _a: None) -> None:
    """Runs until cancelled; gives everything back when it stops (what a
    second cancellation interrupts stays recorded for the next start).
    ``acted`` hears each action as it is recorded (the API's subscribers)."""
    machine = Machine.probe()
    governor = Governor(cfg, machine.online_cpus, machine.total_memory)
    actor = GovernorActor(cfg, client, lambda m: log.warning("governor: %s", m))
    for line in await actor.restore():
        log.warning("governor: gave back %s, recorded by the previous run", line)
    paths = {t: str(cgroupfs.unit_cgroup(slice_name(t), machine.cgroup_root))
             for t in TIER_NAMES}
    g = cfg.governor
    targets = {"cpu": g.cpu_pressure_percent, "memory": g.memory_pressure_percent,
               "io": g.io_pressure_percent}
    recent: deque[dict[str, Any]] = deque(maxlen=ACTIONS_KEPT)
    try:
        while True:
            readings = dict(zip(paths, sampler.cgroups(list(paths.values())), strict=True))
            celsius = None
            if cfg.resource_monitoring.temperature_monitoring:
                temps = [t.celsius for t in temperatures()]
                celsius = max(temps) if temps else None
            decision = governor.step(readings, celsius)
            await actor.apply(decision)
            now = time.time()
            for a in decision.actions:
                action = {"time": now, "kind": a.kind, "tier": a.tier, "key": a.key,
                          "before": a.before, "after": a.after, "reason": a.reason}
                recent.append(action)
                acted(action)
                log.info("governor %s %s %s: %s -> %s (%s)", a.kind, a.tier, a.key,
                         a.before, a.after, a.reason)
            pressing(not governor.quiet or any(
                decision.stall_percent.get(r, 0.0) >= targets[r] / 2 for r in RESOURCES))
            publish(governor=GovernorView(
                tuple(g.protect), targets, decision.stall_percent, celsius, decision.pooled,
                decision.settings, decision.frozen, tuple(recent), dict(actor.actions_total)))
            await asyncio.sleep(cfg.resource_monitoring.min_interval_seconds)
    finally:
        # Shielded: the daemon's stop cancels its workers again and again, and
        # a give-back cut off half way would leave a tier tightened until the
        # next start reads governor.json.
        for line in await asyncio.shield(actor.restore()):
            log.info("governor: gave back %s", line)
