"""The daemon's flight recorder worker: after each sample tick, one cgroup
sweep of the watched units and their parent slices (the C sampler's
cpu.stat, memory.*, memory.events, pids and pressure files) goes into each
unit's ring (model/flight.py), with the tick's system memory and pressure
and the governor's actions. When the recovery watcher sees a unit fail it
calls ``freeze``, which takes one last sample and hands back the ring as
the compressed record the crash history stores.

A unit's cgroup is found in the last tick's tier members (free), else
asked of systemd (ControlGroup), and asked again when its directory is
gone or a minute has passed: a restart may move it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taucg.model.flight import FlightRecord, Recorder, point, ring_capacity
from taucg.readers import cgroupfs
from taucg.readers.sampler import Sampler, SamplerError

if TYPE_CHECKING:
    from taucg.actors.systemd_dbus import Systemd
    from taucg.config.schema import Config
    from taucg.faces.daemon_state import DaemonState
    from taucg.readers.samples import CgroupSample, SystemSample

RESOLVE_SECONDS = 60.0


def enabled(cfg: Config) -> bool:
    return (cfg.recovery.flight_recorder_minutes > 0 and cfg.resource_monitoring.enabled
            and cfg.crash_recovery.enabled)


class FlightRecorder:
    """The rings and their feeding; one per daemon, kept across reloads so
    a reload does not forget the minutes before the next crash."""

    def __init__(self, cfg: Config, log: Callable[[str], None] = lambda _m: None) -> None:
        self.recorder = Recorder(0.0, 2)
        self.log = log
        self.sampler = Sampler()
        self._paths: dict[str, tuple[Path, float]] = {}  # unit -> cgroup, when resolved
        self.configure(cfg)

    def configure(self, cfg: Config) -> None:
        from taucg.actors.recovery_watcher import watched_units

        minutes = cfg.recovery.flight_recorder_minutes
        units = watched_units(cfg) if enabled(cfg) else []
        fastest = float(cfg.resource_monitoring.min_interval_seconds)
        self.recorder.watch(units, minutes, ring_capacity(minutes, fastest))
        self._paths = {u: p for u, p in self._paths.items() if u in self.recorder.rings}

    @property
    def bound_bytes(self) -> int:
        return self.recorder.nbytes

    def action(self, action: Mapping[str, Any]) -> None:
        """A governor action, as the governor worker reports it."""
        self.recorder.action(action)

    async def run(self, state: Callable[[], DaemonState], system: Callable[[],
                  SystemSample | None], swept: asyncio.Event,
                  systemd: Callable[[], Awaitable[Systemd]]) -> None:
        """After each tick, until cancelled."""
        while True:
            await swept.wait()
            swept.clear()
            if not self.recorder.rings:
                continue
            await self._resolve(state(), systemd)
            self.sample(time.time(), system())

    async def _resolve(self, st: DaemonState, systemd: Callable[[], Awaitable[Systemd]]
                       ) -> None:
        from taucg.actors.systemd_dbus import SERVICE, SystemdError, SystemdUnavailable
        from taucg.faces.daemon import tier_paths

        now = time.monotonic()
        members = st.last.members if st.last is not None else {}
        tiers = tier_paths()
        for unit in self.recorder.rings:
            known = self._paths.get(unit)
            if known is not None and now - known[1] < RESOLVE_SECONDS and known[0].is_dir():
                continue
            found = next((Path(tiers[t]) / unit for t, m in members.items()
                          if unit in m and t in tiers), None)
            if found is None and unit.endswith(".service"):
                try:
                    client = await asyncio.wait_for(systemd(), 5)
                    group = await client.get_property(unit, "ControlGroup", SERVICE)
                except (SystemdError, SystemdUnavailable, TimeoutError, OSError):
                    group = None
                if group:
                    found = cgroupfs.ROOT / str(group).lstrip("/")
            if found is not None:
                self._paths[unit] = (found, now)

    def _read(self, paths: list[str]) -> dict[str, CgroupSample | None]:
        try:
            return dict(zip(paths, self.sampler.cgroups(paths), strict=True))
        except SamplerError as exc:
            self.log(f"flight recorder: cgroup sweep failed: {exc}")
            return {}

    def sample(self, now: float, system: SystemSample | None) -> None:
        """One sample per watched unit whose cgroup is known; a unit that is
        down gets a sample too (memory and tasks unknown), so the record
        shows the gap."""
        own = {u: str(p) for u, (p, _) in self._paths.items()}
        wanted = sorted(set(own.values()) | {str(Path(p).parent) for p in own.values()})
        got = self._read(wanted)
        for unit in self.recorder.rings:
            path = own.get(unit)
            unit_sample = got.get(path) if path else None
            parent = got.get(str(Path(path).parent)) if path else None
            self.recorder.add(unit, point(now, unit_sample, parent, system))

    def freeze(self, unit: str) -> bytes | None:
        """The unit's record at its failure, compressed (None: not recorded).
        Called by the recovery watcher on the loop, so it reads a handful of
        files and no more."""
        if unit not in self.recorder.rings:
            return None
        now = time.time()
        known = self._paths.get(unit)
        final = None
        if known is not None:
            path = str(known[0])
            # Its own directory is usually gone by now; its slice is not.
            got = self._read(sorted({path, str(known[0].parent)}))
            try:
                system = self.sampler.system()
            except (SamplerError, OSError):
                system = None
            final = point(now, got.get(path), got.get(str(known[0].parent)), system)
        record = self.recorder.freeze(unit, now, final)
        if record is None:
            return None
        blob = record.encode()
        self.log(f"flight recorder: froze {len(record.points)} samples of {unit} "
                 f"({len(blob)} bytes compressed)")
        return blob

    def live(self, unit: str) -> FlightRecord | None:
        """What the ring holds now, for the API."""
        return self.recorder.freeze(unit, time.time())

    def close(self) -> None:
        self.sampler.close()
