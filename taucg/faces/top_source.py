"""Where `taucg top`'s snapshots come from: the C sampler (system, the tier
slices and their units, the process sweep), governor.json for governed
values, and the daemon when one answers: its subscription for alerts,
recovery and governor actions as they happen, and its metric history to
seed the sparklines. Without a daemon the events come from this process's
own sampling (OOM kills, memory.max hits, units started and gone,
governor changes) and the sparklines from its own ring.

Without taucg's tiers (no tau.slice: no systemd, or nothing applied) the
view says so and shows the machine's processes grouped by their cgroup.
The snapshot it returns is pure data for taucg/faces/top_model.py.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from taucg.config.schema import TIER_NAMES, Config
from taucg.faces.top_model import (
    EVENTS_KEPT,
    MACHINE,
    Event,
    Pressure,
    ProcessRow,
    Snapshot,
    TierView,
    UnitView,
    forecast_cells,
)
from taucg.model.tiers import PARENT, slice_name
from taucg.readers import cgroupfs
from taucg.readers.procfs import ProcessGone, read_cgroup, unit_of_cgroup
from taucg.readers.sampler import Sampler
from taucg.readers.samples import CgroupSample, ProcessSample, SystemSample

HISTORY_KEPT = 120  # samples per sparkline ring
FORECAST_EVERY = 5.0  # seconds between asking the daemon for its forecasts
RECHECK_PER_TICK = 64  # cached process cgroups read again per refresh (processes move)


def _pressure(s: CgroupSample | SystemSample | None) -> Pressure:
    if s is None:
        return Pressure()
    return Pressure(*(None if p is None else p.some.avg10
                      for p in (s.pressure_cpu, s.pressure_memory, s.pressure_io)))


def _limit(v: Any) -> int | None:
    return v if isinstance(v, int) else None


def event_of(method: str, params: Mapping[str, Any]) -> Event | None:
    """A daemon notification as one line of the event pane."""
    t = float(params.get("time") or time.time())
    if method == "taucg.alert":
        return Event(t, "alert", f"{params.get('state', '?')}: "
                                 f"{params.get('message') or params.get('metric', '')}")
    if method == "taucg.recovery":
        if params.get("event") == "safe_mode":
            return Event(t, "recovery", "safe mode " + ("entered" if params.get("safe_mode")
                                                        else "left"))
        return Event(t, "recovery", f"{params.get('unit')} {params.get('result')}: "
                                    f"{params.get('strategy')} (attempt "
                                    f"{params.get('attempt')}) -> {params.get('outcome')}")
    if method == "taucg.governor":
        return Event(t, "governor", f"{params.get('kind')} {params.get('tier')} "
                                    f"{params.get('key')} {params.get('before')} -> "
                                    f"{params.get('after')}: {params.get('reason')}")
    if method == "taucg.dropped":
        return Event(time.time(), "daemon", f"subscription dropped: {params.get('reason')}")
    return None


class DaemonFeed:
    """The daemon's subscription on a thread: its notifications become
    events in a queue that the refresh drains; ``alive`` is False once it
    ended (no daemon, or it went away), and the source samples events itself."""

    def __init__(self, socket_path: str | Path) -> None:
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.alive = True
        self.why = ""
        self._thread = threading.Thread(target=self._run, args=(socket_path,), daemon=True,
                                        name="taucg-top-subscription")
        self._thread.start()

    def _run(self, path: str | Path) -> None:
        from taucg.faces.socket_client import DaemonError, DaemonNotRunning, subscribe

        try:
            stream = subscribe(path)
            for n in stream:
                ev = event_of(str(n.get("method")), n.get("params") or {})
                if ev is not None:
                    self.events.put(ev)
        except DaemonNotRunning as exc:
            self.why = str(exc)
        except (DaemonError, OSError, ValueError) as exc:
            self.why = f"the daemon's subscription failed: {exc}"
            self.events.put(Event(time.time(), "daemon", self.why))
        else:
            self.why = "the daemon ended the subscription"
            self.events.put(Event(time.time(), "daemon", self.why))
        finally:
            self.alive = False


class Source:
    def __init__(self, cfg: Config, interval: float, use_daemon: bool = True,
                 cgroup_root: Path = cgroupfs.ROOT) -> None:
        self.cfg = cfg
        self.interval = interval
        self.root = cgroup_root
        self.sampler = Sampler()
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.history: dict[str, deque[float]] = {}
        self.history_source = "own samples"
        self._prev_sys: SystemSample | None = None
        self._prev_cg: dict[str, CgroupSample] = {}
        self._prev_cpu: dict[tuple[int, float], float] = {}
        self._prev_mono: float | None = None
        self._cg_of: dict[tuple[int, float], str] = {}  # machine mode: process -> cgroup
        self._recheck = 0
        self._units_seen: dict[str, set[str]] | None = None
        self._oom_seen: dict[str, int] = {}
        self._max_seen: dict[str, int] = {}
        self._governed_seen: tuple[dict[str, dict[str, Any]], frozenset[str]] | None = None
        self.feed: DaemonFeed | None = None
        self.daemon = False
        self._forecasts: dict[str, str] = {}
        self._forecasts_read = -FORECAST_EVERY
        if use_daemon:
            self._connect()

    # -- the daemon ----------------------------------------------------------

    def _connect(self) -> None:
        from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

        path = self.cfg.daemon.socket_path
        try:
            call(path, "ping", timeout=2.0)
        except (DaemonNotRunning, DaemonError, OSError, ValueError) as exc:
            # Said once in the event pane: why the events are top's own.
            self._event("daemon", f"{exc}; events from this view's own sampling",
                        time.time())
            return
        self.feed = DaemonFeed(path)
        self.daemon = True
        self._seed_history(call, DaemonError)

    def _seed_history(self, call: Any, daemon_error: type[Exception]) -> None:
        """The daemon's recent CPU series, so the sparklines start full."""
        seeded = False
        for key, metric in [("system", "cpu_percent"),
                            *((t, f"tier.{t}.cpu_percent") for t in TIER_NAMES)]:
            try:
                got = call(self.cfg.daemon.socket_path, "history", {"metric": metric},
                           timeout=5.0)
            except (daemon_error, OSError, ValueError):
                continue
            points = got.get("metrics", {}).get(metric, {}).get("points", [])
            if points:
                ring = self._ring(key)
                ring.extend(float(v) for _, v in points[-HISTORY_KEPT:])
                seeded = True
        if seeded:
            self.history_source = "daemon history + own samples"

    @property
    def events_source(self) -> str:
        if self.feed is not None and self.feed.alive:
            return "daemon subscription"
        return "own sampling"

    def _ring(self, key: str) -> deque[float]:
        ring = self.history.get(key)
        if ring is None:
            ring = self.history[key] = deque(maxlen=HISTORY_KEPT)
        return ring

    def _event(self, kind: str, text: str, now: float) -> None:
        self.events.append(Event(now, kind, text))

    # -- one refresh ---------------------------------------------------------

    def refresh(self, expanded: Iterable[str] | None = None) -> Snapshot:
        """One snapshot; ``expanded`` is the unit keys whose processes are
        read (None: all of them)."""
        now = time.time()
        if self.feed is not None:
            while True:
                try:
                    self.events.append(self.feed.events.get_nowait())
                except queue.Empty:
                    break
        own_events = self.events_source == "own sampling"
        sys_s = self.sampler.system()
        procs = self.sampler.processes()
        mono = time.monotonic()
        dt = mono - self._prev_mono if self._prev_mono is not None else None
        cpu_now: dict[tuple[int, float], float] = {}
        shares: dict[int, float | None] = {}
        by_pid: dict[int, ProcessSample] = {}
        for p in procs:
            key = (p.pid, p.start_seconds)
            used = p.user_seconds + p.system_seconds
            cpu_now[key] = used
            by_pid[p.pid] = p
            was = self._prev_cpu.get(key)
            shares[p.pid] = (None if was is None or not dt
                             else max(0.0, 100.0 * (used - was) / dt))
        self._prev_cpu = cpu_now
        self._prev_mono = mono
        # Rows only for the processes shown: building 1,000 of them a second
        # for collapsed units would be most of a refresh's cost.
        rows = _Rows(by_pid, shares)
        cpu_pct = self._system_cpu(sys_s)
        mem_pct = None
        if sys_s.memory is not None and sys_s.memory.total:
            mem_pct = 100.0 * sys_s.memory.used / sys_s.memory.total
        if cpu_pct is not None:
            self._ring("system").append(cpu_pct)
        wanted = None if expanded is None else set(expanded)
        tau = self.root / PARENT
        if tau.is_dir() and (self.root / "cgroup.controllers").exists():
            mode, note = "tiers", ""
            tiers = self._tiers(rows, wanted, now, own_events)
        else:
            mode = "machine"
            note = ("no taucg tiers here: " + (
                f"{tau} does not exist (run 'sudo taucg apply')"
                if (self.root / "cgroup.controllers").exists()
                else f"no cgroup v2 hierarchy at {self.root} (no systemd?)")
                + "; the machine's processes, by cgroup")
            tiers = (self._machine(procs, rows, wanted, sys_s),)
        if self.daemon:
            cells = self._forecast_cells()
            tiers = tuple(replace(t, extra={**t.extra, "forecast": cells[t.tier]})
                          if t.tier in cells else t for t in tiers)
        system_ring = self.history.get("system", ())
        return Snapshot(now, mode, note, cpu_pct, mem_pct, len(procs), tiers,
                        tuple(self.events), tuple(system_ring), self.events_source,
                        self.history_source, self.interval)

    def _forecast_cells(self) -> dict[str, str]:
        """The daemon's tier memory forecasts, asked at most every
        FORECAST_EVERY seconds (they change once a sweep)."""
        from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

        mono = time.monotonic()
        if mono - self._forecasts_read >= FORECAST_EVERY:
            self._forecasts_read = mono
            try:
                got = call(self.cfg.daemon.socket_path, "forecasts", timeout=2.0)
                self._forecasts = forecast_cells(got.get("forecasts") or ())
            except (DaemonNotRunning, DaemonError, OSError, ValueError, AttributeError):
                self._forecasts = {}  # the subscription's pane says why
        return self._forecasts

    def _system_cpu(self, cur: SystemSample) -> float | None:
        prev, self._prev_sys = self._prev_sys, cur
        if prev is None or prev.cpu is None or cur.cpu is None:
            return None
        total = cur.cpu.total - prev.cpu.total
        return None if total <= 0 else max(0.0, 100.0 * (cur.cpu.busy - prev.cpu.busy) / total)

    def _cg_cpu(self, path: str, cur: CgroupSample) -> float | None:
        prev = self._prev_cg.get(path)
        if prev is None or prev.cpu is None or cur.cpu is None:
            return None
        elapsed = cur.monotonic - prev.monotonic
        if elapsed <= 0:
            return None
        return max(0.0, 100.0 * (cur.cpu.usage_seconds - prev.cpu.usage_seconds) / elapsed)

    # -- tiers ---------------------------------------------------------------

    def _tiers(self, rows: _Rows, wanted: set[str] | None, now: float,
               own_events: bool) -> tuple[TierView, ...]:
        tier_paths = {t: cgroupfs.unit_cgroup(slice_name(t), self.root) for t in TIER_NAMES}
        members: dict[str, list[str]] = {}
        for tier, path in tier_paths.items():
            try:
                # Every child: a tier's units are named anything, tau-* too.
                members[tier] = cgroupfs.children(path)
            except cgroupfs.CgroupError:
                members[tier] = []
        paths = [str(p) for p in tier_paths.values()]
        paths += [str(tier_paths[t] / n) for t in TIER_NAMES for n in members[t]]
        samples = dict(zip(paths, self.sampler.cgroups(paths), strict=True))
        from taucg.actors.governor_state import load_state

        governor = load_state(self.cfg)
        held: Mapping[str, Mapping[str, Any]] = governor.get("tiers") or {}
        frozen = set(governor.get("frozen") or [])
        if own_events:
            self._governor_events(held, frozen, now)
            self._unit_events(members, now)
        views = []
        for tier, path in tier_paths.items():
            s = samples.get(str(path))
            if s is None:
                views.append(TierView(tier, slice_name(tier), False))
                continue
            units = []
            for name in members[tier]:
                upath = str(path / name)
                us = samples.get(upath)
                if us is None:
                    continue  # stopped while we looked
                procs = None
                if wanted is None or upath in wanted:
                    procs = rows.of(_procs_below(Path(upath)))
                units.append(UnitView(name, upath, self._cg_cpu(upath, us), us.memory_current,
                                      us.pids_current, _pressure(us), procs))
            ev = s.memory_events
            if own_events and ev is not None:
                self._limit_events(tier, ev.oom_kill, ev.max, now)
            cpu = self._cg_cpu(str(path), s)
            if cpu is not None:
                self._ring(tier).append(cpu)
            views.append(TierView(
                tier, slice_name(tier), True, cpu, s.memory_current, _limit(s.memory_max),
                _limit(s.memory_high), _pressure(s),
                {k: str(v) for k, v in (held.get(tier) or {}).items()}, tier in frozen,
                ev.oom_kill if ev is not None else None, tuple(units),
                tuple(self.history.get(tier, ())), tasks=s.pids_current))
        self._prev_cg = {p: s for p, s in samples.items() if s is not None}
        return tuple(views)

    def _limit_events(self, tier: str, oom: int, hit_max: int, now: float) -> None:
        was_oom, was_max = self._oom_seen.get(tier), self._max_seen.get(tier)
        self._oom_seen[tier], self._max_seen[tier] = oom, hit_max
        if was_oom is not None and oom > was_oom:
            self._event("oom", f"{slice_name(tier)}: {oom - was_oom} process(es) OOM-killed "
                               f"({oom} since the slice started)", now)
        if was_max is not None and hit_max > was_max:
            self._event("memory", f"{slice_name(tier)} hit MemoryMax {hit_max - was_max} "
                                  "time(s)", now)

    def _unit_events(self, members: Mapping[str, list[str]], now: float) -> None:
        seen = {t: set(m) for t, m in members.items()}
        if self._units_seen is not None:
            for tier, names in seen.items():
                before = self._units_seen.get(tier, set())
                for n in sorted(names - before):
                    self._event("unit", f"{n} started in {tier}", now)
                for n in sorted(before - names):
                    self._event("unit", f"{n} left {tier}", now)
        self._units_seen = seen

    def _governor_events(self, held: Mapping[str, Any], frozen: set[str], now: float) -> None:
        state = ({t: dict(v) for t, v in held.items()}, frozenset(frozen))
        was, self._governed_seen = self._governed_seen, state
        if was is None or was == state:
            return
        for tier in TIER_NAMES:
            a, b = was[0].get(tier, {}), state[0].get(tier, {})
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    self._event("governor", f"{tier} {key} {a.get(key, 'as configured')} -> "
                                            f"{b.get(key, 'as configured')}", now)
            if (tier in was[1]) != (tier in frozen):
                self._event("governor", f"{tier} {'frozen' if tier in frozen else 'thawed'}",
                            now)

    # -- no tiers: the machine's cgroups --------------------------------------

    def _machine(self, procs: list[ProcessSample], rows: _Rows, wanted: set[str] | None,
                 sys_s: SystemSample) -> TierView:
        live = {(p.pid, p.start_seconds) for p in procs}
        self._cg_of = {k: v for k, v in self._cg_of.items() if k in live}
        # Read each new process's cgroup once; recheck a few known ones per
        # refresh, because processes move (placement, systemd-run --scope).
        known = list(self._cg_of)
        if known:
            start = self._recheck % len(known)
            for k in known[start:start + RECHECK_PER_TICK]:
                del self._cg_of[k]
            self._recheck = start + RECHECK_PER_TICK
        groups: dict[str, list[int]] = {}
        cpu: dict[str, float | None] = {}
        rss: dict[str, int] = {}
        for p in procs:
            key = (p.pid, p.start_seconds)
            name = self._cg_of.get(key)
            if name is None:
                try:
                    path = read_cgroup(p.pid)
                except (ProcessGone, OSError):
                    continue
                name = self._cg_of[key] = unit_of_cgroup(path) or path or "(outside cgroup v2)"
            pids = groups.get(name)
            if pids is None:
                pids = groups[name] = []
                cpu[name], rss[name] = None, 0
            pids.append(p.pid)
            share = rows.shares[p.pid]
            if share is not None:
                cpu[name] = (cpu[name] or 0.0) + share
            rss[name] += p.rss
        units = []
        for name, pids in groups.items():
            ukey = f"cgroup:{name}"
            units.append(UnitView(name, ukey, cpu[name], rss[name], len(pids), Pressure(),
                                  rows.of(pids) if wanted is None or ukey in wanted else None))
        # The pseudo-tier's CPU in one CPU's terms, like its units'.
        shares = [u.cpu_percent for u in units if u.cpu_percent is not None]
        return TierView(MACHINE, f"{os.uname().nodename}: processes by cgroup", True,
                        sum(shares) if shares else None,
                        sys_s.memory.used if sys_s.memory else None,
                        sys_s.memory.total if sys_s.memory else None, None,
                        _pressure(sys_s), units=tuple(units), tasks=len(procs),
                        history=tuple(self.history.get("system", ())))

    def close(self) -> None:
        self.sampler.close()


class _Rows:
    """The process rows of one sweep, built on demand."""

    def __init__(self, by_pid: Mapping[int, ProcessSample],
                 shares: Mapping[int, float | None]) -> None:
        self.by_pid = by_pid
        self.shares = shares

    def of(self, pids: Iterable[int]) -> tuple[ProcessRow, ...]:
        out = []
        for pid in pids:
            p = self.by_pid.get(pid)
            if p is not None:
                out.append(ProcessRow(pid, p.comm, p.state, self.shares[pid], p.rss))
        return tuple(out)


def _procs_below(cg: Path) -> list[int]:
    """The PIDs in a unit's cgroup and every cgroup below it (a service's
    delegated subtree, a slice's own units)."""
    out: list[int] = []
    stack = [cg]
    while stack:
        here = stack.pop()
        try:
            out += cgroupfs.procs(here)
            stack += [here / n for n in cgroupfs.children(here)]
        except cgroupfs.CgroupError:
            continue
    return out
