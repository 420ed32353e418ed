"""The daemon: one asyncio loop composing the sampler ticks, proc-connector
placement, the recovery watcher, health checks, the socket API, metrics
and sd_notify.

Everything runs on one thread except the Prometheus HTTP server (its own
thread, reading a snapshot). A loop that stops turning stops the watchdog
pings too, so systemd restarts a daemon that hangs.

Signals: SIGTERM and SIGINT stop cleanly; SIGHUP reloads the config, and a
config that does not validate keeps the old one and logs why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taucg import (
    __version__,
)
from taucg.actors import records
from taucg.actors.placement import place_by_rules
from taucg.actors.zombies import ZombieReaper, in_tiers
from taucg.config.loading import ConfigError
from taucg.config.loading import load as load_config
from taucg.config.schema import TIER_NAMES, Config
from taucg.faces import logs
from taucg.faces.socket_api import ApiError, Method, Peer, Server, param
from taucg.model.monitor import Monitor, Thresholds, TierUsage, tier_usage
from taucg.model.tiers import PARENT, slice_name
from taucg.readers import cgroupfs
from taucg.readers.sampler import EventsUnavailable, Sampler
from taucg.readers.samples import SystemSample

if TYPE_CHECKING:
    from taucg.actors.recovery_watcher import RecoveryWatcher
    from taucg.actors.sample_store import SampleStore
    from taucg.actors.systemd_dbus import Systemd
    from taucg.model.health import Health

ALERTS_KEPT = 200
WALL_MINUS_MONOTONIC = time.time() - time.monotonic()


def notify(state: str) -> None:
    """sd_notify; a no-op when not started by systemd (no NOTIFY_SOCKET)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd import daemon as sd

    sd.notify(state)


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, as sd_watchdog_enabled(3) advises, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def tier_paths(root: Path = cgroupfs.ROOT) -> dict[str, str]:
    """tier -> its slice's cgroup directory, plus "all" for tau.slice."""
    paths = {t: str(cgroupfs.unit_cgroup(slice_name(t), root)) for t in TIER_NAMES}
    paths["all"] = str(cgroupfs.unit_cgroup(PARENT, root))
    return paths


@dataclass(frozen=True, slots=True)
class Tick:
    time: float  # wall clock
    seconds: float  # what the sweep cost
    processes: int
    cpu_percent: float | None
    memory_percent: float | None
    tiers: dict[str, TierUsage]


class Daemon:
    def __init__(self, cfg: Config, config_path: str | None, *, to_stderr: bool = False
                 ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.to_stderr = to_stderr
        self.log = logs.setup(cfg.logging, to_stderr=to_stderr)
        self.started = time.time()
        self.generation = 1
        self.loaded_at = self.started
        self.sampler = Sampler(fd_budget=cfg.sampler.process_fd_budget)
        self.monitor = self._new_monitor()
        self.samples: SampleStore | None = None
        self.alerts: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self.health: Health | None = None
        self.last: Tick | None = None
        self._prev: SystemSample | None = None
        self._cur: SystemSample | None = None
        self._prev_cgroups: dict[str, Any] = {}
        self.sweeps = 0
        self.sweep_seconds_total = 0.0
        self.placements = 0
        self.recovery: RecoveryWatcher | None = None
        self._client: Systemd | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self.server = Server(self._methods(), self._audit_api, self.log.error)
        self.metrics_address: str | None = None
        self._metrics: tuple[Any, Any] | None = None
        self.reaper = ZombieReaper(in_scope=in_tiers)
        self._stubborn: set[int] = set()
        self._leaking: set[str] = set()

    # ------------------------------------------------------------ life ---

    async def run(self, on_ready: Callable[[str | None], None] = lambda _e: None) -> int:
        """Serves until SIGTERM/SIGINT. on_ready(None) once serving, or
        on_ready(why) when it cannot start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._reload_logged()))
        try:
            await self.server.start(Path(self.cfg.daemon.socket_path),
                                    self.cfg.daemon.socket_group)
        except (ApiError, OSError) as exc:
            self.log.critical("cannot serve the API: %s", exc)
            on_ready(f"cannot serve the API: {exc}")
            return 1
        self._open_samples()
        self._start_metrics()
        self._start_workers()
        self.log.info("taucg %s started: config %s, socket %s", __version__,
                      self.cfg.file or "built-in default", self.cfg.daemon.socket_path,
                      extra={"config": self.cfg.file, "pid": os.getpid()})
        notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=started")
        on_ready(None)
        await self._stop.wait()
        notify("STOPPING=1\nSTATUS=stopping")
        self.log.info("stopping")
        await self._stop_workers()
        await self.server.close()
        if self._metrics is not None:
            self._metrics[0].shutdown()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        if self.samples is not None:
            self.samples.close()
        self.sampler.close()
        self.log.info("stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _start_metrics(self) -> None:
        address = self.cfg.daemon.metrics_address
        if not address:
            return
        from taucg.faces.metrics import serve

        try:
            self._metrics = serve(self, address)
        except OSError as exc:
            self.log.error("cannot serve metrics on %s: %s; check [daemon] metrics_address",
                           address, exc)
            return
        self.metrics_address = address
        self.log.info("serving Prometheus metrics on http://%s/metrics", address)

    def _new_monitor(self) -> Monitor:
        rm = self.cfg.resource_monitoring
        return Monitor(Thresholds(rm.cpu_threshold_percent, rm.memory_threshold_percent,
                                  rm.disk_threshold_percent, rm.alert_hysteresis_percent),
                       rm.history_length)

    def _open_samples(self) -> None:
        """Opens the persistent history and loads it into the monitor, so
        trends continue across a restart."""
        from taucg.actors.sample_store import SampleStore
        from taucg.actors.sqlite_db import StoreError

        rm = self.cfg.resource_monitoring
        keep = rm.history_length * rm.interval_seconds
        path = Path(self.cfg.crash_recovery.state_directory) / "samples.db"
        try:
            self.samples = SampleStore(path, keep)
            stored = self.samples.load(time.time() - keep)
        except StoreError as exc:
            self.log.error("sample history disabled: %s", exc)
            self.samples = None
            return
        for metric, points in stored.items():
            for t, v in points:
                self.monitor.history.add(metric, t - WALL_MINUS_MONOTONIC, v)
        if stored:
            self.log.info("loaded %d metrics of history from %s", len(stored), path)

    def _start_workers(self) -> None:
        cfg = self.cfg
        workers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        if cfg.resource_monitoring.enabled:
            workers["sampler"] = self._ticks
        if cfg.health_checking.enabled:
            workers["health"] = self._health_checks
        if cfg.process_management.enabled and cfg.rules:
            workers["placement"] = self._placement
        if cfg.crash_recovery.enabled and cfg.crash_recovery.auto_recovery:
            workers["recovery"] = self._recovery
        interval = watchdog_interval()
        if interval is not None:
            workers["watchdog"] = lambda: self._watchdog(interval)
        for name, work in workers.items():
            self._tasks[name] = asyncio.get_running_loop().create_task(
                self._guard(name, work), name=f"taucg-{name}")

    async def _stop_workers(self, grace: float = 10.0) -> None:
        """Cancels the workers, and cancels again while any is still running:
        a cancellation that lands as an inner await completes can be lost
        (asyncio.wait_for in Python 3.11), and a worker that swallowed one
        would otherwise keep the daemon from stopping."""
        pending = set(self._tasks.values())
        self._tasks.clear()
        deadline = time.monotonic() + grace
        while pending and time.monotonic() < deadline:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        if pending:
            self.log.error("workers did not stop within %g s: %s", grace,
                           ", ".join(t.get_name() for t in pending))

    async def _guard(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Keeps one worker alive: an unexpected error is logged and the
        worker starts again after a pause, instead of taking the daemon down."""
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("%s worker failed; restarting it in 5 s", name)
                await asyncio.sleep(5)

    # ---------------------------------------------------------- reload ---

    async def reload(self) -> dict[str, Any]:
        """Loads the config again. A config with problems is refused and the
        running one stays; the problems are logged and returned."""
        notify("RELOADING=1\nSTATUS=reloading the config")
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            for p in problems:
                self.log.error("reload refused, keeping the running config: %s", p,
                               extra={"problem": p})
            notify("READY=1\nSTATUS=reload refused: config has problems; running on the "
                   "old config")
            return {"reloaded": False, "problems": problems, "generation": self.generation}
        restart_needed = [f"[daemon] {k}" for k in ("socket_path", "socket_group",
                                                    "metrics_address")
                          if getattr(new.daemon, k) != getattr(self.cfg.daemon, k)]
        if new.sampler != self.cfg.sampler:
            restart_needed.append("[sampler] process_fd_budget")
        await self._stop_workers()
        self.cfg = new
        self.log = logs.setup(new.logging, to_stderr=self.to_stderr)
        self.monitor = self._new_monitor()
        if self.samples is not None:
            self.samples.close()
        self._open_samples()
        self._start_workers()
        self.generation += 1
        self.loaded_at = time.time()
        self.log.info("reloaded the config from %s (generation %d)",
                      new.file or "built-in default", self.generation)
        for k in restart_needed:
            self.log.warning("%s changed; it takes effect at the next restart", k)
        notify("READY=1\nSTATUS=config reloaded")
        return {"reloaded": True, "problems": [], "generation": self.generation,
                "restart_needed": restart_needed}

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:
            self.log.exception("reload failed")

    # --------------------------------------------------------- workers ---

    async def _ticks(self) -> None:
        paths = tier_paths()
        while True:
            self.tick(paths)
            await asyncio.sleep(self.cfg.resource_monitoring.interval_seconds)

    def tick(self, paths: Mapping[str, str]) -> Tick:
        """One sweep: system, tier cgroups, processes -> monitor, alerts,
        history, zombies."""
        from taucg.readers.sysinfo import filesystems

        cfg = self.cfg
        began = time.monotonic()
        sample = self.sampler.system()
        cgroups = dict(zip(paths.values(), self.sampler.cgroups(list(paths.values())),
                           strict=True))
        procs = self.sampler.processes()
        swept = time.monotonic() - began
        disks = {fs.mountpoint: fs.percent for fs in filesystems()}
        update = self.monitor.update(sample, disks, procs)
        tiers = tier_usage({t: p for t, p in paths.items() if t != "all"},
                           self._prev_cgroups, cgroups)
        self._prev_cgroups = cgroups
        self._prev, self._cur = self._cur, sample
        # The history's clock: the sample's own time, so points read back
        # from the store after a restart line up with those served before.
        now = sample.monotonic + WALL_MINUS_MONOTONIC
        values: dict[str, float] = {}
        if update.rates is not None and update.rates.cpu_percent is not None:
            values["cpu_percent"] = update.rates.cpu_percent
        if update.memory_percent is not None:
            values["memory_percent"] = update.memory_percent
        if sample.load is not None:
            values["load1"] = sample.load.load1
        for tier, u in tiers.items():
            for attr in ("cpu_percent", "memory_bytes"):
                v = getattr(u, attr)
                if v is not None:
                    values[f"tier.{tier}.{attr}"] = float(v)
                    self.monitor.history.add(f"tier.{tier}.{attr}", sample.monotonic, float(v))
        if self.samples is not None and values:
            try:
                self.samples.add(now, values)
            except Exception as exc:
                self.log.error("cannot write the sample history: %s", exc)
        for alert in update.alerts:
            self._alert(now, alert.metric, alert.state, alert.value, alert.threshold,
                        alert.message())
        self.report_leaks(now)
        if cfg.process_management.enabled and cfg.process_management.auto_cleanup_zombies:
            _, stubborn = self.reaper.sweep(procs)
            for parent in stubborn:
                if parent.pid not in self._stubborn:
                    self.log.warning("pid %d (%s) has not reaped %d zombies %.0f s after "
                                     "SIGCHLD; restarting its unit would clear them",
                                     parent.pid, parent.unit or "no unit", parent.zombies,
                                     parent.signaled_for, extra={"parent": parent.pid})
            self._stubborn = {p.pid for p in stubborn}
        self.sweeps += 1
        self.sweep_seconds_total += swept
        records.perf(cfg.logging, "sweep", swept, processes=len(procs), cgroups=len(paths))
        tick = Tick(now, swept, len(procs), values.get("cpu_percent"),
                    update.memory_percent, tiers)
        self.last = tick
        if cfg.resource_monitoring.log_resource_usage:
            self.log.debug("usage", extra={"usage": values})
        notify(f"STATUS=sweep {self.sweeps}: {len(procs)} processes, "
               f"{len(self.active_alerts())} alerts"
               + (f", health {self.health.score:.2f}" if self.health else ""))
        return tick

    def _alert(self, now: float, metric: str, state: str, value: float, threshold: float,
               message: str) -> None:
        self.alerts.append({"time": now, "metric": metric, "state": state,
                            "value": round(value, 2), "threshold": threshold,
                            "message": message})
        if self.cfg.resource_monitoring.alert_on_threshold:
            level = logging.WARNING if state == "raised" else logging.INFO
            self.log.log(level, "alert: %s", message, extra={"alert": metric, "state": state})

    def report_leaks(self, now: float) -> None:
        """Raises an alert when a process starts to look like it leaks, and
        clears it when it stops (or exits)."""
        suspects = {s.subject: s for s in self.monitor.leaks.suspects()}
        for subject, s in suspects.items():
            if subject not in self._leaking:
                mib = s.growth_bytes / (1 << 20)
                self._alert(now, f"leak {subject}", "raised", s.bytes_per_second, 0.0,
                            f"{subject} grew {mib:.0f} MiB steadily over "
                            f"{s.window_seconds:.0f} s ({s.bytes_per_second / 1024:.0f} KiB/s): "
                            "a memory leak is likely")
        for subject in self._leaking - set(suspects):
            self._alert(now, f"leak {subject}", "cleared", 0.0, 0.0,
                        f"{subject} no longer grows steadily")
        self._leaking = set(suspects)

    async def _health_checks(self) -> None:
        from taucg.model.health import assess

        while True:
            prev, cur = self._prev, self._cur
            if prev is None or cur is None:
                # No two ticks yet (or sampling is off): a pair of our own.
                prev = self.sampler.system()
                await asyncio.sleep(0.5)
                cur = self.sampler.system()
            health = await assess(self.cfg, prev, cur)
            was_healthy = self.health.healthy if self.health else True
            self.health = health
            if not health.healthy and self.cfg.health_checking.alert_on_failure:
                self.log.warning("health %.2f is below %.2f: %s", health.score,
                                 health.threshold, "; ".join(health.recommendations()),
                                 extra={"health": health.score})
            elif health.healthy and not was_healthy:
                self.log.info("health back to %.2f", health.score)
            await asyncio.sleep(self.cfg.health_checking.check_interval_seconds)

    async def _connect(self) -> Systemd:
        """A new systemd client; waits while there is no system bus instead
        of failing the worker."""
        from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable

        warned = False
        while True:
            try:
                return await Systemd().connect()
            except SystemdUnavailable as exc:
                if not warned:
                    self.log.warning("no systemd on the system bus (%s); placement and "
                                     "recovery wait for it", exc)
                    warned = True
                await asyncio.sleep(5)

    async def _systemd(self) -> Systemd:
        """The client shared by placement and API actions."""
        if self._client is None:
            self._client = await self._connect()
        return self._client

    async def _placement(self) -> None:
        if os.geteuid() != 0:
            self.log.warning("placement needs root (the proc connector and systemd); off")
            return
        try:
            events = self.sampler.events()
        except EventsUnavailable as exc:
            self.log.error("placement off: %s", exc)
            return
        client = await self._systemd()
        try:
            for r in self.sampler.processes():
                await self._place(client, r.pid, None)
            async for ev in events.arrivals():
                if ev.kind == "exec":
                    await self._place(client, ev.pid, ev.timestamp)
        finally:
            events.close()

    async def _place(self, client: Systemd, pid: int, since: float | None) -> None:
        entry = await place_by_rules(self.cfg, client, pid, since=since)
        if entry is None:
            return
        if entry.get("placed"):
            self.placements += 1
            self.log.info("placed %d (%s) in %s", pid, entry["comm"], entry["tier"],
                          extra={"placement": entry})
        elif "refused" in entry or "error" in entry:
            self.log.warning("did not place %d (%s): %s", pid, entry["comm"],
                             entry.get("refused") or entry.get("error"),
                             extra={"placement": entry})

    async def _recovery(self) -> None:
        from taucg.actors.crash_history import CrashHistory
        from taucg.actors.recovery_watcher import RecoveryWatcher, history_path
        from taucg.actors.systemd_dbus import Systemd

        if os.geteuid() != 0:
            self.log.warning("crash recovery needs root to restart units; off")
            return
        # The watcher owns its connection: it closes it when the bus goes away.
        watcher = RecoveryWatcher(self.cfg, await self._connect(),
                                  CrashHistory(history_path(self.cfg)),
                                  log=lambda m: self.log.warning("recovery: %s", m))
        self.recovery = watcher
        self.log.info("recovery: watching %s", ", ".join(watcher.units))
        try:
            await watcher.run_forever(lambda: Systemd().connect())
        finally:
            await watcher.client.close()

    async def _watchdog(self, every: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(every)

    # ------------------------------------------------------------- API ---

    def _audit_api(self, peer: Peer, method: str, params: Mapping[str, Any], result: str
                   ) -> None:
        records.audit(self.cfg.logging, f"api {method}", str(self.cfg.daemon.socket_path),
                   after=dict(params) or None, result=result, who=peer.describe())
        if result.startswith("refused"):
            self.log.warning("API %s refused for %s", method, peer.describe())

    def active_alerts(self) -> list[str]:
        active: dict[str, bool] = {}
        for a in self.alerts:
            active[a["metric"]] = a["state"] == "raised"
        return [m for m, on in active.items() if on]

    def _methods(self) -> dict[str, Method]:
        return {
            "ping": Method(self._ping, help="daemon pid, version, uptime, config"),
            "status": Method(self._status, help="the last sweep: system and tiers"),
            "health": Method(self._health, help="the last health check"),
            "alerts": Method(self._alerts, help="recent alerts; which are active"),
            "history": Method(self._history, help="metric series and trends"),
            "logs.stats": Method(self._log_stats, help="sizes, levels, rotations"),
            "logs.recent": Method(self._log_recent, help="the last N records"),
            "recovery.state": Method(self._recovery_state, help="watched units, safe mode"),
            "reload": Method(self._reload_api, mutation=True, help="reload the config"),
            "apply": Method(self._apply, mutation=True, help="taucg apply, in the daemon"),
            "recovery.leave_safe_mode": Method(self._leave_safe_mode, mutation=True,
                                               help="thaw the tiers safe mode froze"),
            "recovery.save_state": Method(self._save_state, mutation=True,
                                          help="keep a file as a unit's state blob"),
        }

    async def _ping(self, _peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": __version__, "started": self.started,
                "uptime_seconds": round(time.time() - self.started, 1),
                "config": self.cfg.file, "generation": self.generation,
                "loaded_at": self.loaded_at, "workers": sorted(self._tasks),
                "sweeps": self.sweeps,
                "interval_seconds": self.cfg.resource_monitoring.interval_seconds}

    async def _status(self, _peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        t = self.last
        if t is None:
            return {"sweeps": 0}
        return {"sweeps": self.sweeps, "time": t.time, "sweep_seconds": t.seconds,
                "processes": t.processes, "cpu_percent": t.cpu_percent,
                "memory_percent": t.memory_percent,
                "tiers": {k: asdict(v) for k, v in t.tiers.items()},
                "placements": self.placements}

    async def _health(self, _peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.health.to_dict() if self.health else None

    async def _alerts(self, _peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        count = param(params, "count", int, 50)
        return {"active": self.active_alerts(), "recent": list(self.alerts)[-count:]}

    async def _history(self, _peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        wanted = param(params, "metric", str, "")
        h = self.monitor.history
        window = self.cfg.resource_monitoring.trend_window_seconds
        out = {}
        for metric in h.metrics():
            if wanted and metric != wanted:
                continue
            series = [(round(t + WALL_MINUS_MONOTONIC, 3), v) for t, v in h.series(metric)]
            out[metric] = {"points": series, "trend_per_second": h.trend(metric, window)}
        if wanted and not out:
            raise ApiError("not_found", f"no history for {wanted!r}; metrics: "
                                        f"{', '.join(h.metrics()) or 'none yet'}")
        return {"window_seconds": window, "metrics": out}

    async def _log_stats(self, _peer: Peer, _params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [logs.stats(name, path).to_dict()
                for name, path in logs.log_paths(self.cfg.logging).items()]

    async def _log_recent(self, _peer: Peer, params: Mapping[str, Any]
                          ) -> list[dict[str, Any]]:
        count = param(params, "count", int, 20)
        level = param(params, "level", str, "debug")
        which = param(params, "log", str, "main")
        if count < 1 or count > 100_000:
            raise ApiError("bad_request", "count must be between 1 and 100000")
        if level not in records.LEVELS:
            raise ApiError("bad_request", f"level must be one of {', '.join(records.LEVELS)}")
        paths = logs.log_paths(self.cfg.logging)
        if which not in paths:
            raise ApiError("bad_request", f"log must be one of {', '.join(paths)}")
        return logs.recent(paths[which], count, level)

    async def _recovery_state(self, _peer: Peer, _params: Mapping[str, Any]
                              ) -> dict[str, Any]:
        w = self.recovery
        if w is None:
            return {"running": False}
        return {"running": True, "units": w.units, "safe_mode": w.safe_mode,
                "attempts": {u: t.failures for u, t in w.trackers.items()},
                "outcomes": [{"unit": u, "strategy": o.decision.strategy,
                              "attempt": o.decision.attempt, "result": o.result,
                              "outcome": o.outcome} for u, o in w.outcomes[-50:]]}

    async def _reload_api(self, _peer: Peer, _params: Mapping[str, Any]) -> dict[str, Any]:
        return await self.reload()

    async def _apply(self, peer: Peer, params: Mapping[str, Any]) -> dict[str, Any]:
        from taucg.actors import apply as ap

        restart_moved = param(params, "restart_moved", bool, False)
        machine = ap.Machine.probe()
        problems = ap.preflight(self.cfg, machine)
        if problems:
            raise ApiError("preflight", "; ".join(str(p) for p in problems))
        try:
            done = await ap.apply_now(self.cfg, machine, ap.DEFAULT_UNIT_DIR,
                                      await self._systemd(), restart_moved)
        except ap.ApplyError as exc:
            raise ApiError("apply_failed", str(exc)) from None
        for record in done.audit_records(self.cfg.file):
            records.audit(self.cfg.logging, who=peer.describe(), **record)
        return done.to_dict()

    async def _leave_safe_mode(self, _peer: Peer, _params: Mapping[str, Any]) -> list[str]:
        from taucg.actors.recovery_watcher import leave_safe_mode

        thawed = await leave_safe_mode(await self._systemd())
        if self.recovery is not None:
            self.recovery.safe_mode = False
        return thawed

    async def _save_state(self, _peer: Peer, params: Mapping[str, Any]) -> str:
        from taucg.actors.recovery_state import save_blob
        from taucg.config.values import check_unit_name

        try:
            unit = check_unit_name(param(params, "unit", str))
        except ValueError as exc:
            raise ApiError("bad_request", str(exc)) from None
        source = Path(param(params, "path", str))
        if not source.is_file():
            raise ApiError("bad_request", f"{source} is not a file")
        return str(save_blob(self.cfg, unit, source))


def run(cfg: Config, config_path: str | None, *, to_stderr: bool = False,
        on_ready: Callable[[str | None], None] = lambda _e: None) -> int:
    async def main() -> int:
        try:
            daemon = Daemon(cfg, config_path, to_stderr=to_stderr)
        except OSError as exc:
            why = (f"cannot open {exc.filename or 'a log file'}: {exc.strerror}; check the "
                   "[logging] paths and that the daemon runs as root")
            print(f"taucg: {why}", file=sys.stderr)
            on_ready(why)
            return 1
        return await daemon.run(on_ready)

    return asyncio.run(main())
