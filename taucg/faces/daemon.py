"""The daemon: one asyncio loop composing the workers (sampling, zombie
reaping, health checks, proc-connector placement, the recovery watcher,
the watchdog), the socket API, metrics and sd_notify.

A sample tick is one straight line: read (C sampler, filesystems) ->
``Monitor.update`` (one typed Update: values, alerts, tier totals) ->
store (the sample history) -> publish a new immutable DaemonState, which
the API and the metrics thread read. Workers that act on a sweep (zombie
reaping) wait for the tick's event instead of sweeping again.

Everything runs on one thread except the Prometheus HTTP server (its own
thread, reading the published state). A loop that stops turning stops the
watchdog pings too, so systemd restarts a daemon that hangs.

Signals: SIGTERM and SIGINT stop cleanly; SIGHUP reloads the config, and a
config that does not validate keeps the old one and logs why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taucg import __version__
from taucg.actors import records
from taucg.actors.placement import place_by_rules
from taucg.actors.zombies import ZombieReaper, in_tiers
from taucg.config.loading import ConfigError
from taucg.config.loading import load as load_config
from taucg.config.schema import TIER_NAMES, Config
from taucg.faces import logs
from taucg.faces.ananicy_load import load_logged as load_ananicy
from taucg.faces.daemon_api import methods
from taucg.faces.daemon_state import DaemonState, Tick
from taucg.faces.socket_api import ApiError, Peer, Server
from taucg.faces.subscriptions import Hub, recovery_events
from taucg.model.custom_metrics import CustomMetrics
from taucg.model.monitor import Alert, MetricSeries, Monitor, Thresholds, Update
from taucg.model.process_table import ProcessTable
from taucg.model.tiers import slice_name
from taucg.readers import cgroupfs
from taucg.readers.kmsg import JournalKernelLog, KernelLog, KernelMessages
from taucg.readers.sampler import EventsUnavailable, Sampler
from taucg.readers.samples import ProcessSample, SystemSample

if TYPE_CHECKING:
    from taucg.actors.recovery_watcher import RecoveryView, RecoveryWatcher
    from taucg.actors.sample_store import SampleStore
    from taucg.actors.sqlite_db import StoreError
    from taucg.actors.systemd_dbus import Systemd
    from taucg.model.ananicy import AnanicyIndex

WALL_MINUS_MONOTONIC = time.time() - time.monotonic()
# Between full /proc listings the sweep reads only the processes it knows,
# which fork and exec events keep complete; a full listing at least this
# often is the safety net, and at once after the kernel dropped events.
FULL_SWEEP_SECONDS = 60.0
REFUSALS_PER_MINUTE = 10  # audited per peer uid; the rest are counted


def notify(state: str) -> None:
    """sd_notify; a no-op when not started by systemd (no NOTIFY_SOCKET)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from taucg.actors.libsystemd import module

    module("daemon", "sd_notify under systemd").notify(state)


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, as sd_watchdog_enabled(3) advises, or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def tier_paths(root: Path = cgroupfs.ROOT) -> dict[str, str]:
    """tier -> its slice's cgroup directory."""
    return {t: str(cgroupfs.unit_cgroup(slice_name(t), root)) for t in TIER_NAMES}



def kernel_messages() -> KernelMessages:
    """/dev/kmsg where it can be read; else the journal's copy of it (the
    hardened unit has no /dev/kmsg), naming both if neither works."""
    kmsg = KernelLog()
    if kmsg.unavailable is None:
        return kmsg
    from taucg.actors.libsystemd import SystemdModuleMissing, module

    try:
        journal = JournalKernelLog(module("journal", "reading the kernel's messages"))
    except SystemdModuleMissing:
        return kmsg
    if journal.unavailable is not None:
        journal.unavailable = f"{kmsg.unavailable}; {journal.unavailable}"
    return journal

class Daemon:
    def __init__(self, cfg: Config, config_path: str | None, *, to_stderr: bool = False
                 ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.to_stderr = to_stderr
        self.wall_minus_monotonic = WALL_MINUS_MONOTONIC
        self.log = logs.setup(cfg.logging, to_stderr=to_stderr)
        now = time.time()
        self.state = DaemonState(pid=os.getpid(), version=__version__, started=now,
                                 config_file=cfg.file, generation=1, loaded_at=now,
                                 interval_seconds=cfg.resource_monitoring.interval_seconds)
        self.sampler = Sampler(fd_budget=cfg.sampler.process_fd_budget)
        self.kernel_log = kernel_messages()  # names OOM victims; opened once, at the end
        self.monitor = self._new_monitor()
        self.custom = CustomMetrics(cfg.metrics.custom)
        self._custom_values: dict[str, float] = {}  # read since the last tick
        self.samples: SampleStore | None = None
        # The last two system samples, for the health check's CPU rate.
        self._system: tuple[SystemSample | None, SystemSample | None] = (None, None)
        self._processes = ProcessTable()  # kept from changed-only sweeps
        # One event per worker that acts after each sweep, so none misses one.
        self._sweep_events: list[asyncio.Event] = []
        self._wake = asyncio.Event()  # cuts the sweep's sleep short
        self._pressing = False  # the governor sees pressure: sample fast
        self._tracking = False  # fork/exec events keep the known PIDs complete
        self._full_due = True
        self._last_full = 0.0
        self._recovery: RecoveryWatcher | None = None
        self._client: Systemd | None = None
        self.ananicy: AnanicyIndex | None = None  # [rule_sources] ananicy, read at (re)load
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._reloading = asyncio.Lock()
        self._reload_queued = False
        self._emfile_said = -1e9
        self._disks: dict[str, float] = {}
        self._fs_bytes: dict[str, tuple[int, int]] = {}  # mount -> used, usable
        self._disk_read: asyncio.Future[dict[str, float]] | None = None
        self._disks_stuck = False
        # Alerts, recovery and governor actions, to the API's subscribers.
        self.hub = Hub(log=lambda m: self.log.warning("%s", m))
        self.server = Server(methods(self), self._audit_api, self.log.error, self.hub)
        self._metrics: Any = None  # the HTTP server (faces/http/server.HttpFace)
        self.reaper = ZombieReaper(in_scope=in_tiers)
        self._stubborn: set[int] = set()
        self._refusals: dict[int, tuple[float, int, int]] = {}  # uid -> window, n, dropped
        # The crash flight recorder's rings outlive reloads (faces/flight_worker.py).
        from taucg.faces.flight_worker import FlightRecorder

        self.flight = FlightRecorder(cfg, log=lambda m: self.log.info("%s", m))

    @property
    def history(self) -> MetricSeries:
        return self.monitor.history

    @property
    def processes(self) -> list[ProcessSample]:
        """The last sweep's processes (the API's processes method reads them).
        A copy: the reader runs on a thread, and the loop updates the table."""
        return list(self._processes.records())

    def publish(self, **changes: Any) -> None:
        """Replaces the published state; readers on other threads see the
        old state or the new one, never a mix."""
        self.state = replace(self.state, **changes)

    # ------------------------------------------------------------ life ---

    async def run(self, on_ready: Callable[[str | None], None] = lambda _e: None) -> int:
        """Serves until SIGTERM/SIGINT. on_ready(None) once serving, or
        on_ready(why) when it cannot start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        loop.set_exception_handler(self._loop_error)
        try:
            await self.server.start(Path(self.cfg.daemon.socket_path),
                                    self.cfg.daemon.socket_group)
        except (ApiError, OSError) as exc:
            self.log.critical("cannot serve the API: %s", exc)
            on_ready(f"cannot serve the API: {exc}")
            return 1
        refused = self._start_metrics()
        if refused:
            self.log.critical("cannot serve HTTP: %s", refused)
            on_ready(f"cannot serve HTTP: {refused}")
            await self.server.close()
            return 1
        self._open_samples()
        if self.kernel_log.unavailable:
            self.log.warning("OOM-kill alerts will not name the killed process: %s",
                             self.kernel_log.unavailable)
        self.ananicy = await load_ananicy(self.cfg, self.log)
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
            self._metrics.shutdown()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        if self.samples is not None:
            self.samples.close()
        self.sampler.close()
        self.flight.close()
        self.kernel_log.close()
        self.log.info("stopped")
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of descriptors, asyncio's accept loop reports every retry with a
        traceback (23 MB in 20 s were seen): one line a minute instead."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            now = time.monotonic()
            if now - self._emfile_said >= 60:
                self._emfile_said = now
                self.log.error("out of file descriptors (%s): new API connections wait; "
                               "raise LimitNOFILE or find what holds them", exc.strerror)
            return
        loop.default_exception_handler(context)

    def _start_metrics(self) -> str | None:
        """The HTTP server (metrics, REST, dashboard), imported only when
        configured; a reason when the config must not be served."""
        d = self.cfg.daemon
        address = d.http_address or d.metrics_address
        if not address:
            return None
        from taucg.faces.http.start import HttpRefused, address_of, open_http

        key = address_of(self.cfg)[1]
        try:
            face = open_http(self.cfg, lambda: self.state, methods(self), self.log)
            face.start()
        except HttpRefused as exc:
            return str(exc)
        except OSError as exc:
            self.log.error("cannot serve HTTP on %s: %s; check [daemon] %s", address, exc, key)
            return None
        self._metrics = face
        self.publish(metrics_address=address)
        self.log.info("serving metrics, the REST API and the dashboard on %s://%s/",
                      face.scheme, address)
        return None

    def _new_monitor(self) -> Monitor:
        rm = self.cfg.resource_monitoring
        from taucg.faces.forecasts import process_tier

        return Monitor(Thresholds(rm.cpu_threshold_percent, rm.memory_threshold_percent,
                                  rm.disk_threshold_percent, rm.alert_hysteresis_percent),
                       rm.history_length, self.cfg.forecast, process_tier)

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
            self._drop_samples(exc, path)
            return
        for metric, points in stored.items():
            for t, v in points:
                self.monitor.history.add(metric, t - WALL_MINUS_MONOTONIC, v)
        if stored:
            self.log.info("loaded %d metrics of history from %s", len(stored), path)

    def _start_workers(self) -> None:
        cfg = self.cfg
        pm = cfg.process_management
        workers: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        if cfg.resource_monitoring.enabled:
            workers["sampler"] = self._ticks
            workers["tracking"] = self._track_processes
            workers["units"] = self._units
            if pm.enabled and pm.auto_cleanup_zombies:
                workers["zombies"] = self._zombies
        if cfg.governor.enabled or cfg.resource_monitoring.temperature_monitoring:
            workers["governor"] = self._governor
        if cfg.health_checking.enabled:
            workers["health"] = self._health_checks
        if pm.enabled and (cfg.rules or self.ananicy):
            workers["placement"] = self._placement
        if cfg.crash_recovery.enabled and cfg.crash_recovery.auto_recovery:
            workers["recovery"] = self._recovery_worker
        self.flight.configure(cfg)
        if self.flight.recorder.rings:
            workers["flight"] = self._flight_worker
        if cfg.resource_monitoring.enabled and cfg.metrics.custom:
            workers["custom"] = self._custom_metrics
        if cfg.notifiers:
            workers["notify"] = self._notify
        interval = watchdog_interval()
        if interval is not None:
            workers["watchdog"] = lambda: self._watchdog(interval)
        for name, work in workers.items():
            self._tasks[name] = asyncio.get_running_loop().create_task(
                self._guard(name, work), name=f"taucg-{name}")
        self.publish(workers=tuple(sorted(self._tasks)))

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
        running one stays; the problems are logged and returned. Reloads
        run one at a time, so a burst of SIGHUPs never doubles a worker."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> dict[str, Any]:
        notify("RELOADING=1\nSTATUS=reloading the config")
        generation = self.state.generation
        try:
            # Off the loop: a slow disk or NFS must not stop the watchdog pings.
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            for p in problems:
                self.log.error("reload refused, keeping the running config: %s", p,
                               extra={"problem": p})
            notify("READY=1\nSTATUS=reload refused: config has problems; running on the "
                   "old config")
            return {"reloaded": False, "problems": problems, "generation": generation}
        restart_needed = [f"[daemon] {k}" for k in ("socket_path", "socket_group",
                                                    "metrics_address", "http_address",
                                                    "web_config_file", "insecure")
                          if getattr(new.daemon, k) != getattr(self.cfg.daemon, k)]
        if new.sampler != self.cfg.sampler:
            restart_needed.append("[sampler] process_fd_budget")
        await self._stop_workers()
        self.cfg = new
        self.log = logs.setup(new.logging, to_stderr=self.to_stderr)
        self.monitor = self._new_monitor()
        self.custom = CustomMetrics(new.metrics.custom)
        if self.samples is not None:
            self.samples.close()
        self._open_samples()
        self.ananicy = await load_ananicy(new, self.log)
        self.publish(generation=generation + 1, loaded_at=time.time(), config_file=new.file,
                     interval_seconds=new.resource_monitoring.interval_seconds)
        self._start_workers()
        self.log.info("reloaded the config from %s (generation %d)",
                      new.file or "built-in default", generation + 1)
        for k in restart_needed:
            self.log.warning("%s changed; it takes effect at the next restart", k)
        notify("READY=1\nSTATUS=config reloaded")
        return {"reloaded": True, "problems": [], "generation": generation + 1,
                "restart_needed": restart_needed}

    def _on_sighup(self) -> None:
        """A burst of SIGHUPs is one reload, plus at most one queued behind a
        reload already running (which may have read the file too early)."""
        if self._reload_queued:
            return
        self._reload_queued = True
        asyncio.get_running_loop().create_task(self._reload_logged())

    async def _reload_logged(self) -> None:
        try:
            async with self._reloading:
                self._reload_queued = False
                await self._reload()
        except Exception:
            self.log.exception("reload failed")

    # ------------------------------------------------------ sampling ---

    async def _ticks(self) -> None:
        paths = tier_paths()
        while True:
            await self._refresh_disks()
            tick = self.tick(paths)
            interval = self._interval(tick)
            if interval != self.state.interval_in_use:
                self.log.info("sampling every %g s (%s)", interval,
                              "a value nears its threshold or the governor sees pressure"
                              if interval < self.cfg.resource_monitoring.interval_seconds
                              else "calm again")
                self.publish(interval_in_use=interval)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def _refresh_disks(self, timeout: float = 5.0) -> None:
        """Disk usage on a thread of its own: statvfs on a hung NFS mount
        blocks, and must not stop the loop (and its watchdog pings). While an
        earlier read is still stuck, no second one starts and the last
        figures stand."""
        from taucg.readers.sysinfo import filesystems

        def read() -> dict[str, float]:
            found = filesystems()
            # Used and usable bytes as well, for the forecasts (swapped in whole).
            self._fs_bytes = {fs.mountpoint: (fs.used, fs.used + fs.available) for fs in found}
            return {fs.mountpoint: fs.percent for fs in found}

        if self._disk_read is None or self._disk_read.done():
            self._disk_read = asyncio.get_running_loop().run_in_executor(None, read)
        try:
            self._disks = await asyncio.wait_for(asyncio.shield(self._disk_read), timeout)
            self._disks_stuck = False
        except TimeoutError:
            if not self._disks_stuck:
                self._disks_stuck = True
                self.log.error("statvfs has not returned in %g s (a hung NFS mount?): disk "
                               "usage stays as last read until it does", timeout)

    def _interval(self, tick: Tick) -> float:
        """Smart sampling: the floor while a value nears its threshold (within
        the alert hysteresis) or the governor sees pressure, else the config."""
        rm = self.cfg.resource_monitoring
        near = any(v is not None and v >= limit - rm.alert_hysteresis_percent
                   for v, limit in ((tick.cpu_percent, rm.cpu_threshold_percent),
                                    (tick.memory_percent, rm.memory_threshold_percent)))
        return float(rm.min_interval_seconds if near or self._pressing
                     else rm.interval_seconds)

    def _sweeps(self) -> asyncio.Event:
        ev = asyncio.Event()
        self._sweep_events.append(ev)
        return ev

    def tick(self, paths: Mapping[str, str]) -> Tick:
        """One sweep: read -> monitor -> store -> publish."""
        began = time.monotonic()
        sample = self.sampler.system()
        cgroups = dict(zip(paths, self.sampler.cgroups(list(paths.values())), strict=True))
        rescan = (not self._tracking or self._full_due
                  or began - self._last_full >= FULL_SWEEP_SECONDS)
        # Only what changed since the last tick, applied to the table: the
        # Python work per tick follows the changes, not the process count.
        changes = self.sampler.process_changes(rescan=rescan)
        procs = self._processes
        procs.apply(changes)
        if rescan:
            self._full_due, self._last_full = False, began
        kills = self.kernel_log.oom_kills()  # after the cgroups: see readers/kmsg.py
        members = {t: cgroupfs.members_usage(Path(p)) for t, p in paths.items()
                   if cgroups[t] is not None}
        limits = {t: m for t, p in paths.items() if (m := cgroupfs.cpu_max(Path(p)))}
        swept = time.monotonic() - began
        update = self.monitor.update(sample, self._disks, procs, cgroups, kills,
                                     self.kernel_log.unavailable, self._fs_bytes)
        fresh = dict(self._custom_values)  # the custom worker holds this dict: clear, keep
        self._custom_values.clear()
        custom = self.custom.fold(update, fresh, self.monitor.history, sample.monotonic)

        # The history's clock: the sample's own time, so points read back
        # from the store after a restart line up with those served before.
        now = sample.monotonic + WALL_MINUS_MONOTONIC
        self._store(now, update)

        tick = Tick(now, swept, len(procs), update.values.get("cpu_percent"),
                    update.memory_percent, update.tiers,
                    {t: c for t, c in cgroups.items() if c is not None}, limits, members,
                    sample.cpu, sample.memory)
        raised: list[Mapping[str, Any]] = [self._alert_record(now, a) for a in update.alerts]
        state = self.state.with_alerts(raised)
        self.state = replace(state, last=tick, sweeps=state.sweeps + 1,
                             sweep_seconds_total=state.sweep_seconds_total + swept,
                             forecasts=tuple(update.forecasts), custom=custom)
        self._system = (self._system[1], sample)
        for ev in self._sweep_events:
            ev.set()
        for record in raised:
            self.hub.publish("alert", record)

        records.perf(self.cfg.logging, "sweep", swept, processes=len(procs),
                     changed=len(changes.changed), gone=len(changes.gone),
                     cgroups=len(paths), full=rescan)
        if self.cfg.resource_monitoring.log_resource_usage:
            self.log.debug("usage", extra={"usage": update.values})
        health = self.state.health
        interval = self.state.interval_in_use or self.cfg.resource_monitoring.interval_seconds
        notify(f"STATUS=sweep {self.state.sweeps}: {len(procs)} processes, "
               f"{len(self.state.active)} alerts"
               + (f", health {health.score:.2f}" if health else "")
               + f", every {interval:g} s")
        return tick

    def _store(self, now: float, update: Update) -> None:
        from taucg.actors.sqlite_db import StoreError

        if self.samples is None or not update.values:
            return
        try:
            self.samples.add(now, update.values)
        except StoreError as exc:
            self._drop_samples(exc, self.samples.path)

    def _drop_samples(self, exc: StoreError, path: Path) -> None:
        """One clear line, a damaged file moved aside, and the daemon goes on
        without persistent history (it would crash-loop under Restart=)."""
        from taucg.actors.sqlite_db import move_aside

        if self.samples is not None:
            with contextlib.suppress(Exception):
                self.samples.close()
            self.samples = None
        moved = None
        if exc.damaged and path.exists():
            with contextlib.suppress(OSError):
                moved = move_aside(path)
        self.log.error("sample history disabled until the next start: %s%s", exc,
                       f"; moved it to {moved}" if moved else "")

    def _alert_record(self, now: float, alert: Alert) -> dict[str, Any]:
        message = alert.message()
        if self.cfg.resource_monitoring.alert_on_threshold:
            level = logging.WARNING if alert.state == "raised" else logging.INFO
            self.log.log(level, "alert: %s", message,
                         extra={"alert": alert.metric, "state": alert.state})
        return {"time": now, "metric": alert.metric, "state": alert.state,
                "value": round(alert.value, 2), "threshold": alert.threshold,
                "message": message, "severity": alert.severity}

    # ------------------------------------------------------- workers ---

    async def _track_processes(self) -> None:
        """Feeds fork and exec events to the sampler, so sweeps between full
        listings see every new process without reading /proc's directory."""
        try:
            events = self.sampler.events()
        except EventsUnavailable as exc:
            self.log.info("process tracking off, every sweep lists /proc: %s", exc)
            return
        self._tracking = True
        self._full_due = True  # what started before the subscription
        try:
            async for ev in events.arrivals():
                if ev.kind in ("fork", "exec"):
                    self.sampler.track([ev.tgid or ev.pid])
                elif ev.kind == "lost":
                    self._full_due = True
        finally:
            self._tracking = False
            events.close()

    async def _zombies(self) -> None:
        """After each sweep: SIGCHLD to parents in the tiers that left
        zombies, and a warning for the ones that still have not reaped."""
        swept = self._sweeps()
        while True:
            await swept.wait()
            swept.clear()
            _, stubborn = self.reaper.sweep(self._processes.zombies())
            for parent in stubborn:
                if parent.pid not in self._stubborn:
                    self.log.warning("pid %d (%s) has not reaped %d zombies %.0f s after "
                                     "SIGCHLD; restarting its unit would clear them",
                                     parent.pid, parent.unit or "no unit", parent.zombies,
                                     parent.signaled_for, extra={"parent": parent.pid})
            self._stubborn = {p.pid for p in stubborn}

    async def _units(self) -> None:
        from taucg.faces.units_worker import watch_units

        # systemd's answer changes rarely and costs a connection and two calls
        # per unit: at most every 10 s, however fast the sweep.
        await watch_units(lambda: self.state, self.publish,
                          max(10.0, float(self.cfg.resource_monitoring.interval_seconds)))

    async def _health_checks(self) -> None:
        from taucg.actors.systemd_dbus import read_service_states
        from taucg.model.health import assess, watched_services

        while True:
            prev, cur = self._system
            if prev is None or cur is None:
                # No two ticks yet (or sampling is off): a pair of our own.
                prev = self.sampler.system()
                await asyncio.sleep(0.5)
                cur = self.sampler.system()
            units = watched_services(self.cfg)
            services = await read_service_states(units) if units else None
            health = await assess(self.cfg, prev, cur, services, self._disks or None)
            was = self.state.health
            self.publish(health=health)
            if not health.healthy and self.cfg.health_checking.alert_on_failure:
                self.log.warning("health %.2f is below %.2f: %s", health.score,
                                 health.threshold, "; ".join(health.recommendations()),
                                 extra={"health": health.score})
            elif health.healthy and was is not None and not was.healthy:
                self.log.info("health back to %.2f", health.score)
            if (was is None and not health.healthy) or (
                    was is not None and was.healthy != health.healthy):
                self.hub.publish("health", {"time": time.time(), **health.to_dict()})
            await asyncio.sleep(self.cfg.health_checking.check_interval_seconds)

    async def _governor(self) -> None:
        from taucg.faces.governor_worker import govern

        if os.geteuid() != 0:
            self.log.warning("the governor needs root to change the tiers; off")
            return
        try:
            await govern(self.cfg, self.sampler, await self.systemd(), self.log,
                         self.publish, self._set_pressing,
                         self._governor_acted)
        finally:
            self._pressing = False

    def _governor_acted(self, action: Mapping[str, Any]) -> None:
        self.hub.publish("governor", action)
        self.flight.action(action)  # the controller's actions go into the flight record

    async def _custom_metrics(self) -> None:
        from taucg.faces.custom_worker import watch_custom

        await watch_custom(self.cfg.metrics.custom, self._sweeps, self._custom_values, self.log)

    async def _notify(self) -> None:
        from taucg.faces.notify_worker import NotifyWorker

        worker = NotifyWorker(self.cfg, self.log,
                              lambda view: self.publish(notifiers=view))
        self.publish(notifiers=worker.view())
        self.hub.listeners.append(worker.hear)
        try:
            await worker.run()
        finally:
            self.hub.listeners.remove(worker.hear)

    def _set_pressing(self, pressing: bool) -> None:
        if pressing and not self._pressing:
            self._wake.set()  # sample the machine at the fast rate now
        self._pressing = pressing

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

    async def systemd(self) -> Systemd:
        """The client shared by placement and API actions."""
        if self._client is None:
            self._client = await self._connect()
        return self._client

    async def systemd_now(self, timeout: float = 10.0) -> Systemd:
        """The shared client for an API request, which must answer in bounded
        time: SystemdUnavailable after ``timeout`` instead of waiting for a bus."""
        from taucg.actors.systemd_dbus import SystemdUnavailable

        if self._client is not None and self._client._bus is not None \
                and self._client._bus.connected:
            return self._client
        try:
            return await asyncio.wait_for(self.systemd(), timeout)
        except TimeoutError:
            raise SystemdUnavailable(f"systemd did not answer on the system bus within "
                                     f"{timeout:g} s; is dbus running?") from None

    async def _placement(self) -> None:
        if os.geteuid() != 0:
            self.log.warning("placement needs root (the proc connector and systemd); off")
            return
        try:
            events = self.sampler.events()
        except EventsUnavailable as exc:
            self.log.error("placement off: %s", exc)
            return
        client = await self.systemd()
        try:
            for r in self.sampler.processes():
                await self._place(client, r.pid, None)
            async for ev in events.arrivals():
                if ev.kind == "exec":
                    await self._place(client, ev.pid, ev.timestamp)
        finally:
            events.close()

    async def _place(self, client: Systemd, pid: int, since: float | None) -> None:
        entry = await place_by_rules(self.cfg, client, pid, since=since, ananicy=self.ananicy)
        if entry is None:
            return
        if entry.get("placed"):
            self.publish(placements=self.state.placements + 1)
            self.log.info("placed %d (%s) in %s", pid, entry["comm"], entry["tier"],
                          extra={"placement": entry})
        elif "refused" in entry or "error" in entry:
            self.log.warning("did not place %d (%s): %s", pid, entry["comm"],
                             entry.get("refused") or entry.get("error"),
                             extra={"placement": entry})

    async def _recovery_worker(self) -> None:
        from taucg.actors.recovery_watcher import RecoveryWatcher

        if os.geteuid() != 0:
            self.log.warning("crash recovery needs root to restart units; off")
            return
        watcher = await RecoveryWatcher.open(
            self.cfg, self._connect, log=lambda m: self.log.warning("recovery: %s", m),
            on_change=self._recovery_changed, flight=self.flight.freeze)
        self._recovery = watcher
        await watcher.serve()

    async def _flight_worker(self) -> None:
        await self.flight.run(lambda: self.state, lambda: self._system[1], self._sweeps(),
                              self.systemd)

    def _recovery_changed(self, view: RecoveryView) -> None:
        was = self.state.recovery
        self.publish(recovery=view)
        for event in recovery_events(was, view):
            self.hub.publish("recovery", event)

    def safe_mode_left(self) -> None:
        if self._recovery is not None:
            self._recovery.safe_mode = False

    async def _watchdog(self, every: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(every)

    def _audit_api(self, peer: Peer, method: str, params: Mapping[str, Any], result: str
                   ) -> None:
        if not result.startswith("refused"):
            records.audit(self.cfg.logging, f"api {method}", str(self.cfg.daemon.socket_path),
                          after=dict(params) or None, result=result, who=peer.describe())
            return
        # A refusal: bounded params, at most REFUSALS_PER_MINUTE per peer uid
        # (the rest counted), and in the refusals log, apart from root's records.
        now = time.monotonic()
        window, count, suppressed = self._refusals.get(peer.uid, (now, 0, 0))
        if now - window >= 60:
            window, count = now, 0
        if count >= REFUSALS_PER_MINUTE:
            self._refusals[peer.uid] = (window, count, suppressed + 1)
            return
        self._refusals[peer.uid] = (window, count + 1, 0)
        shown = json.dumps(dict(params), default=str)
        records.audit(self.cfg.logging, f"api {method}", str(self.cfg.daemon.socket_path),
                      after=shown if len(shown) <= 512 else shown[:512] + " (cut)",
                      result=result, who=peer.describe(), refusal=True,
                      suppressed_before=suppressed)
        self.log.warning("API %s refused for %s%s", method, peer.describe(),
                         f" ({suppressed} more refusals not recorded)" if suppressed else "")


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
