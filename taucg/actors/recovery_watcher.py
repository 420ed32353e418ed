"""Crash recovery through systemd's D-Bus API.

Event-driven: after Subscribe, PropertiesChanged signals of the watched
units' objects say when one fails; no polling loop. Each failure goes to
the unit's UnitRecovery (recovery_policy.py) for a decision, the decision
is carried out over D-Bus, and the crash, the action and its outcome land
in the history (store.py). After the bus comes back, every watched unit is
rescanned, so a failure during the outage is not missed.

Units with their own Restart=: with [recovery] systemd_restart = "defer"
(the default) systemd restarts them and taucg only records the crash, so
the two never race to restart the same unit; with "take_over" taucg turns
their Restart= off when it starts watching -- a runtime drop-in,
/run/systemd/system/<unit>.d/50-taucg-take-over.conf, gone at reboot,
since systemd refuses Restart= through SetUnitProperties -- and recovers
them itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.files import write_atomic
from taucg.actors.records import audit, perf
from taucg.actors.sqlite_db import StoreError
from taucg.actors.systemd_dbus import SERVICE, UNIT, Signal, Systemd, SystemdError, unit_path
from taucg.config.schema import TIER_NAMES, Config
from taucg.config.values import unit_name
from taucg.model.recovery_policy import Decision, RecoveryPolicy, UnitRecovery
from taucg.model.tiers import slice_name

TAKE_OVER_DIR = Path("/run/systemd/system")
SAFE_MODE_FROZEN = tuple(slice_name(t) for t in TIER_NAMES[3:])  # low, background
# Which failed results each Restart= value restarts (systemd.service(5),
# "Table 2. Exit causes and the effect of the Restart= settings"); an
# OOM kill is an unclean signal. RestartPreventExitStatus= is not read.
_UNCLEAN = frozenset({"signal", "core-dump", "oom-kill"})
RESTART_COVERS: dict[str, frozenset[str]] = {
    "always": frozenset({"exit-code", "timeout", "watchdog"}) | _UNCLEAN,
    "on-failure": frozenset({"exit-code", "timeout", "watchdog"}) | _UNCLEAN,
    "on-abnormal": frozenset({"timeout", "watchdog"}) | _UNCLEAN,
    "on-abort": _UNCLEAN,
    "on-watchdog": frozenset({"watchdog"}),
    "on-success": frozenset(),
}


def watched_units(cfg: Config) -> list[str]:
    """Critical units, units with a [recovery.services] policy, and, with
    auto_restart_failed_services, the units health checks watch."""
    units = [unit_name(u) for u in cfg.crash_recovery.critical_processes]
    units += [unit_name(u) for u in cfg.recovery.services]
    if cfg.health_checking.auto_restart_failed_services:
        units += [unit_name(u) for u in cfg.health_checking.service_health_checks]
    return list(dict.fromkeys(units))


def history_path(cfg: Config) -> Path:
    return Path(cfg.crash_recovery.state_directory) / "history.db"


NOTIFY_TIMEOUT = 60.0


async def notify_admin(unit: str, message: str, fields: dict[str, Any],
                       command: str | None) -> str:
    """A journal entry at crit priority with structured fields, and the
    configured command if any, run without blocking the loop (a hung
    command is killed after NOTIFY_TIMEOUT). Returns how the admin was told."""
    told = []
    try:
        from taucg.actors.libsystemd import module

        journal = module("journal", "notifying the admin in the journal")
        journal.send(message, PRIORITY=journal.LOG_CRIT, SYSLOG_IDENTIFIER="taucg",
                     TAUCG_UNIT=unit, **{f"TAUCG_{k.upper()}": str(v) for k, v in fields.items()})
        told.append("journal")
    except Exception as exc:
        told.append(f"journal unavailable ({exc})")
    if command:
        env = {**os.environ, "TAUCG_UNIT": unit, "TAUCG_MESSAGE": message,
               **{f"TAUCG_{k.upper()}": str(v) for k, v in fields.items()}}
        try:
            proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", command, env=env)
        except OSError as exc:
            told.append(f"command failed ({exc})")
        else:
            try:
                rc = await asyncio.wait_for(proc.wait(), NOTIFY_TIMEOUT)
                told.append(f"command exit {rc}")
            except TimeoutError:
                proc.kill()  # our own child, by its PID
                await proc.wait()
                told.append(f"command killed after {NOTIFY_TIMEOUT:g} s")
    if not told or all("unavailable" in t for t in told):
        # Last resort, so a notification is never silent.
        print(f"taucg: CRITICAL: {message}", flush=True)
        told.append("stdout")
    return ", ".join(told)


@dataclass(slots=True)
class Outcome:
    decision: Decision
    result: str
    outcome: str


@dataclass(frozen=True, slots=True)
class RecoveryView:
    """The watcher's state at one moment, for readers on other tasks and
    threads (the socket API, metrics)."""

    units: tuple[str, ...]
    safe_mode: bool
    attempts: Mapping[str, tuple[float, ...]]  # failure times in the current strategy
    outcomes: tuple[tuple[str, Outcome], ...]  # the most recent, oldest first
    actions: Mapping[tuple[str, str], int]  # (unit, strategy) -> actions since start

    def to_dict(self) -> dict[str, Any]:
        return {"running": True, "units": list(self.units), "safe_mode": self.safe_mode,
                "attempts": {u: list(ts) for u, ts in self.attempts.items()},
                "outcomes": [{"unit": u, "strategy": o.decision.strategy,
                              "attempt": o.decision.attempt, "result": o.result,
                              "outcome": o.outcome} for u, o in self.outcomes]}


OUTCOMES_KEPT = 50


class RecoveryWatcher:
    """Watches the units recovery covers and recovers them. Build it with
    ``RecoveryWatcher.open`` and run it with ``serve``; the CLI's watcher and
    the daemon's worker are the same object."""

    DEFER_RECHECK_SECONDS = 5.0  # after systemd's RestartSec, before "it gave up"

    def __init__(self, cfg: Config, client: Systemd, history: CrashHistory,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 log: Callable[[str], None] = lambda _m: None,
                 connect: Callable[[], Awaitable[Systemd]] | None = None,
                 on_change: Callable[[RecoveryView], None] = lambda _v: None,
                 flight: Callable[[str], bytes | None] = lambda _u: None) -> None:
        self.cfg = cfg
        self.flight = flight  # the frozen flight record of a unit that failed
        self.client = client
        self.history = history
        self.sleep = sleep
        self.log = log
        self.connect = connect or (lambda: Systemd().connect())
        self.on_change = on_change
        self._actions: dict[tuple[str, str], int] = {}
        self.units = watched_units(cfg)
        self.trackers = {u: UnitRecovery(RecoveryPolicy.from_config(cfg, u)) for u in self.units}
        self._paths = {unit_path(u): u for u in self.units}
        self._busy: set[str] = set()
        self._failed_again: set[str] = set()
        self._gave_up: set[str] = set()  # still failed after systemd's restart delay
        self._rechecks: set[asyncio.Task[None]] = set()
        self.outcomes: deque[tuple[str, Outcome]] = deque(maxlen=OUTCOMES_KEPT)
        self._stable_timers: dict[str, asyncio.Task[None]] = {}
        # What a previous run knew: safe mode, and each unit's attempts in its
        # window, so a daemon restart neither forgets frozen tiers nor resets
        # a unit's escalation.
        self._safe_mode = self._recorded_safe_mode()
        self._replay()

    @classmethod
    async def open(cls, cfg: Config, connect: Callable[[], Awaitable[Systemd]],
                   log: Callable[[str], None],
                   on_change: Callable[[RecoveryView], None] = lambda _v: None,
                   flight: Callable[[str], bytes | None] = lambda _u: None
                   ) -> RecoveryWatcher:
        """The watcher with its own connection (from ``connect``, also used to
        reconnect) and the crash history in the state directory."""
        watcher = cls(cfg, await connect(), CrashHistory(history_path(cfg)), log=log,
                      connect=connect, on_change=on_change, flight=flight)
        watcher.changed()
        return watcher

    async def serve(self) -> None:
        """Watches until cancelled, through bus restarts; closes its connection."""
        self.log(f"watching {', '.join(self.units)}")
        try:
            await self.run_forever(self.connect)
        finally:
            await self.client.close()

    @property
    def safe_mode(self) -> bool:
        return self._safe_mode

    @safe_mode.setter
    def safe_mode(self, on: bool) -> None:
        self._safe_mode = on
        try:
            write_atomic(self._state_path(), json.dumps({"safe_mode": on}) + "\n", mode=0o640)
        except OSError as exc:
            self.log(f"cannot record safe mode in {self._state_path()}: {exc.strerror}")
        self.changed()

    def _state_path(self) -> Path:
        return Path(self.cfg.crash_recovery.state_directory) / "recovery.json"

    def _recorded_safe_mode(self) -> bool:
        try:
            data = json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("safe_mode") is True

    def _replay(self) -> None:
        """Rebuilds each unit's attempts and strategy from the crash history
        of its window (deferred crashes were never attempts)."""
        now = time.time()
        for unit, tracker in self.trackers.items():
            try:
                events = self.history.events(unit, since=now - tracker.policy.window_seconds)
            except StoreError as exc:
                self.log(f"escalation of {unit} starts afresh: {exc}")
                continue
            for e in events:
                if e.action != "deferred-to-systemd":
                    tracker.on_failure(e.time)

    def view(self) -> RecoveryView:
        return RecoveryView(tuple(self.units), self._safe_mode,
                            {u: tuple(t.failures) for u, t in self.trackers.items()},
                            tuple(self.outcomes), dict(self._actions))

    def changed(self) -> None:
        self.on_change(self.view())

    async def run_forever(self, connect: Callable[[], Awaitable[Systemd]],
                          retry_seconds: float = 2.0) -> None:
        """Runs, and after the bus goes away reconnects and rescans, keeping
        every unit's attempt history."""
        from taucg.actors.systemd_dbus import SystemdUnavailable

        while True:
            try:
                await self.run()
            except SystemdUnavailable as exc:
                self.log(f"lost the system bus ({exc}); reconnecting")
            await self.client.close()
            while True:
                await asyncio.sleep(retry_seconds)
                try:
                    self.client = await connect()
                    break
                except SystemdUnavailable:
                    continue
            self.log("reconnected to the system bus; rescanning")

    async def run(self) -> None:
        """Watches until cancelled, or until the bus goes away
        (SystemdUnavailable)."""
        # Opened before the rescan: a unit that fails while it runs is seen
        # in the stream, not lost between the scan and the first read.
        stream = await self.client.signals()
        try:
            await self.rescan()
        except BaseException:
            stream.close()
            raise
        snapshots = None
        if self.cfg.crash_recovery.save_session_state:
            snapshots = asyncio.get_running_loop().create_task(self._snapshots())
        follow = asyncio.get_running_loop().create_task(self._follow(stream))
        gone = asyncio.ensure_future(
            self.client.bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        self.log("ready: following the units' state changes")
        try:
            await asyncio.wait({follow, gone}, return_when=asyncio.FIRST_COMPLETED)
            if follow.done():
                follow.result()  # re-raise what stopped it
            else:
                from taucg.actors.systemd_dbus import SystemdUnavailable

                raise SystemdUnavailable("the system bus closed the connection")
        finally:
            for task in (follow, gone):
                task.cancel()
            stream.close()
            if snapshots is not None:
                snapshots.cancel()

    async def _snapshots(self, every: float = 30.0) -> None:
        """Keeps the session snapshot fresh while nothing is being recovered,
        so it shows what ran before a crash, not during its recovery."""
        from taucg.actors import recovery_state as session

        while True:
            if not self._busy:
                try:
                    await session.snapshot(self.cfg, self.client)
                except (OSError, SystemdError) as exc:
                    self.log(f"session snapshot failed: {exc}")
            await asyncio.sleep(every)

    async def _follow(self, stream: AsyncIterator[Signal]) -> None:
        async for sig in stream:
            if sig.member != "PropertiesChanged" or sig.path not in self._paths:
                continue
            interface, changed = sig.body[0], sig.body[1]
            if interface == UNIT and "ActiveState" in changed:
                await self.on_state(self._paths[sig.path], str(changed["ActiveState"]))

    async def rescan(self) -> None:
        loaded = []
        for unit in self.units:
            try:
                props = await self.client.properties(unit)
            except SystemdError:
                continue
            if props.get("LoadState") == "loaded":
                loaded.append((unit, str(props.get("ActiveState"))))
        if self.cfg.recovery.systemd_restart == "take_over":
            await self.take_over([u for u, _ in loaded])
        for unit, state in loaded:
            await self.on_state(unit, state)

    async def take_over(self, units: list[str]) -> list[str]:
        """Turns off systemd's own Restart= on these units, so only taucg
        restarts them (one daemon-reload for all)."""
        from taucg.actors.files import write_atomic

        taken = []
        for unit in units:
            if not unit.endswith(".service"):
                continue
            restart = await self.client.get_property(unit, "Restart", SERVICE)
            if restart == "no":
                continue
            write_atomic(TAKE_OVER_DIR / f"{unit}.d" / "50-taucg-take-over.conf",
                         "# Written by taucg recovery (systemd_restart = take_over).\n"
                         "[Service]\nRestart=no\n")
            audit(self.cfg.logging, "recovery take-over", unit, before=f"Restart={restart}",
                  after="Restart=no (runtime drop-in)", who="taucg recovery (automatic)")
            taken.append(unit)
        if taken:
            await self.client.reload()
            self.log(f"took over restarts of {', '.join(taken)} (their Restart= is off "
                     "until reboot)")
        return taken

    async def on_state(self, unit: str, state: str) -> None:
        tracker = self.trackers[unit]
        now = time.time()
        if state == "active":
            tracker.on_active(now)
            reset = tracker.maybe_reset(now)
            if reset:
                self.log(f"{unit} stayed up for {tracker.policy.stable_seconds:g} s: its "
                         "recovery starts afresh")
            up = tracker.up_since
            stable = up is not None and now - up >= tracker.policy.stable_seconds
            if self.safe_mode and (reset or stable):
                await self.leave_safe_mode_when_stable()
            elif (tracker.failures or self.safe_mode) and unit not in self._stable_timers:
                # A unit that stays up sends no further signal: look again once
                # it has been up for stable_seconds, or safe mode never ends.
                self._stable_timers[unit] = asyncio.get_running_loop().create_task(
                    self._look_again(unit, tracker.policy.stable_seconds))
        elif state == "failed" and unit in self._busy:
            # Failed again while we act on it: _recover picks this up when the
            # current attempt ends, whatever state the unit shows by then.
            self._failed_again.add(unit)
        elif state == "failed":
            self._busy.add(unit)
            # Acting can take minutes (delays, timeouts); signals keep flowing.
            asyncio.get_running_loop().create_task(self._recover(unit))

    async def _look_again(self, unit: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay + 0.5)
            del self._stable_timers[unit]
            state = await self.client.get_property(unit, "ActiveState")
            await self.on_state(unit, str(state))
        except (SystemdError, OSError) as exc:
            self.log(f"cannot look at {unit} again: {exc}")
        finally:
            self._stable_timers.pop(unit, None)

    async def _recover(self, unit: str) -> None:
        try:
            while True:
                out = await self.on_failure(unit)
                if out is None:
                    return
                self.outcomes.append((unit, out))
                key = (unit, out.decision.strategy)
                self._actions[key] = self._actions.get(key, 0) + 1
                self.changed()
                # A failure during this attempt is the next attempt, even if the
                # unit already shows a passing state (deactivating, activating)
                # instead of "failed"; an active unit needs nothing.
                state = await self.client.get_property(unit, "ActiveState")
                again = unit in self._failed_again
                self._failed_again.discard(unit)
                if out.decision.strategy == "notify_admin" or state == "active" or (
                        state != "failed" and not again):
                    return
        except Exception as exc:
            self.log(f"recovery of {unit} failed: {exc}")
        finally:
            self._busy.discard(unit)

    async def _after_deferral(self, unit: str, delay: float, restarts: int) -> None:
        """Still failed, and not restarted again, once systemd's restart
        delay has passed: it gave up. (A unit systemd keeps restarting shows
        a higher NRestarts; its newer deferral looks again itself.)"""
        try:
            await asyncio.sleep(delay)
            if unit in self._busy:
                return
            now = int(await self.client.get_property(unit, "NRestarts", SERVICE) or 0)
            if now == restarts and \
                    str(await self.client.get_property(unit, "ActiveState")) == "failed":
                self._gave_up.add(unit)
                await self.on_state(unit, "failed")
        except (SystemdError, OSError) as exc:
            self.log(f"cannot look at {unit} again: {exc}")

    async def on_failure(self, unit: str) -> Outcome | None:
        flight = self.flight(unit)  # first: the minutes before, and a sample of now
        svc = await self.client.properties(unit, SERVICE) if unit.endswith(".service") else {}
        from taucg.actors import drills

        drill = drills.take(self.cfg.crash_recovery.state_directory, unit,
                            int(svc.get("ExecMainPID", 0) or 0) or None,
                            time.time()) is not None
        result = str(svc.get("Result", "unknown"))
        code, status = int(svc.get("ExecMainCode", 0) or 0), svc.get("ExecMainStatus")
        # ExecMainCode is a CLD_* code: 1 exited, 2 killed, 3 dumped.
        exit_code = int(status) if code == 1 and status is not None else None
        sig = int(status) if code in (2, 3) and status is not None else None
        now = time.time()
        own_restart = str(svc.get("Restart", "no"))
        if own_restart != "no" and self.cfg.recovery.systemd_restart == "defer":
            # systemd restarts what its Restart= covers until the start limit;
            # a unit it gave up on (start-limit-hit, or a result the policy
            # does not cover) would otherwise stay down. Read after Result: a
            # unit no longer failed was restarted meanwhile (its Result then
            # is the new run's), which is systemd's doing too.
            covered = result != "start-limit-hit" and result in RESTART_COVERS.get(own_restart,
                                                                                    ())
            gave_up = unit in self._gave_up
            self._gave_up.discard(unit)
            if not gave_up and (covered or str(await self.client.get_property(
                    unit, "ActiveState")) != "failed"):
                self.history.record(CrashEvent(now, unit, result, exit_code, sig, 0,
                                               "deferred-to-systemd", f"Restart={own_restart}",
                                               drill=drill), flight)
                # systemd may give up without a state change taucg sees (a
                # crash and the start limit in one step): look again once its
                # restart delay has passed.
                delay = int(svc.get("RestartUSec", 0) or 0) / 1e6 + self.DEFER_RECHECK_SECONDS
                task = asyncio.get_running_loop().create_task(
                    self._after_deferral(unit, delay, int(svc.get("NRestarts", 0) or 0)))
                self._rechecks.add(task)  # the loop keeps only a weak reference
                task.add_done_callback(self._rechecks.discard)
                return None
            if gave_up:  # the Result now, not the crash's: start-limit-hit, typically
                result = str(await self.client.get_property(unit, "Result", SERVICE))
            self.log(f"{unit}: systemd's Restart={own_restart} gave up ({result}); taucg "
                     "recovers it")
            # A unit at its start limit refuses every start until this.
            await self.client.reset_failed(unit)
        elif own_restart != "no":
            await self.take_over([unit])
        decision = self.trackers[unit].on_failure(now)
        row = self.history.record(CrashEvent(now, unit, result, exit_code, sig,
                                             decision.attempt, decision.strategy, "pending",
                                             decision.delay, drill=drill), flight)
        self.log(f"{unit} failed ({result}{', a drill' if drill else ''}); attempt "
                 f"{decision.attempt}: {decision.strategy}"
                 + (f" after {decision.delay:.1f}s" if decision.delay else ""))
        started = time.monotonic()
        outcome = await self.act(unit, decision, result)
        self.history.set_outcome(row, outcome)
        audit(self.cfg.logging, f"recovery {decision.strategy}", unit, before=result,
              after=outcome, who="taucg recovery (automatic)", attempt=decision.attempt,
              drill=drill)
        perf(self.cfg.logging, "recovery", time.monotonic() - started, unit=unit,
             strategy=decision.strategy, outcome=outcome)
        return Outcome(decision, result, outcome)

    async def act(self, unit: str, d: Decision, result: str) -> str:
        if d.strategy == "notify_admin":
            return "notified: " + await notify_admin(
                unit, f"taucg: {unit} keeps failing ({result}); recovery gave up restarting it",
                {"result": result, "attempt": d.attempt}, self.cfg.recovery.notify_command)
        if d.strategy == "fallback_to_safe_mode":
            entered = await self.enter_safe_mode()
            restarted = await self.restart(unit)
            return f"safe mode ({entered}); {restarted}"
        if d.delay:
            await self.sleep(d.delay)
        return await self.restart(unit)

    async def restart(self, unit: str) -> str:
        """RestartUnit, then wait for active up to recovery_timeout_seconds;
        a unit that does not get there counts as a failed attempt."""
        from taucg.actors import recovery_state as session

        timeout = float(self.cfg.crash_recovery.recovery_timeout_seconds)
        keep = self.cfg.crash_recovery.save_session_state
        snap = None
        if keep:
            try:
                snap = session.load_snapshot(self.cfg)
            except session.RecoveryStateError as exc:
                # The unit is restarted all the same, without the session around it.
                self.log(f"session state not restored: {exc}")
        handed = session.hand_back(self.cfg, unit) if keep else None
        try:
            await self.client.restart(unit, timeout=timeout)
        except SystemdError as exc:
            return f"restart failed: {exc.detail}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.client.get_property(unit, "ActiveState")
            if state == "active":
                extra = ""
                if snap is not None:
                    started = await session.restore(self.cfg, self.client, snap)
                    if started:
                        extra += f"; restored {', '.join(started)}"
                if handed is not None:
                    extra += f"; state handed back at {handed}"
                return "restarted" + extra
            if state == "failed":
                return "restarted, failed again"
            await asyncio.sleep(0.2)
        return f"timeout: not active within {timeout:g}s"

    async def leave_safe_mode_when_stable(self) -> None:
        """Health recovered: every watched unit that failed has stayed up for
        stable_seconds, so the frozen tiers may run again."""
        if any(t.failures for t in self.trackers.values()):
            return
        if self.cfg.recovery.safe_mode == "freeze":
            thawed = await leave_safe_mode(self.client)
            self.log(f"left safe mode: thawed {', '.join(thawed) or 'nothing'}")
        else:
            self.log("recovered; leave the safe target with 'systemctl isolate default.target'")
        self.safe_mode = False

    async def enter_safe_mode(self) -> str:
        if self.cfg.recovery.safe_mode == "isolate":
            target = self.cfg.recovery.safe_mode_target
            # Isolating stops every other unit, which can take longer than a
            # D-Bus call's usual patience: the recovery's own timeout.
            await self.client.start(target, mode="isolate",
                                    timeout=self.cfg.crash_recovery.recovery_timeout_seconds)
            self.safe_mode = True
            return f"isolated {target}"
        frozen = []
        for slice_unit in SAFE_MODE_FROZEN:
            try:
                await self.client.freeze(slice_unit)
                frozen.append(slice_unit)
            except SystemdError as exc:
                self.log(f"cannot freeze {slice_unit}: {exc}")
        self.safe_mode = True
        return "froze " + (", ".join(frozen) or "nothing")


async def leave_safe_mode(client: Systemd) -> list[str]:
    thawed = []
    for slice_unit in SAFE_MODE_FROZEN:
        try:
            await client.thaw(slice_unit)
            thawed.append(slice_unit)
        except SystemdError:
            continue
    return thawed


async def unit_overview(cfg: Config, client: Systemd | None) -> list[dict[str, Any]]:
    """What `taucg recovery` shows per watched unit."""
    rows = []
    for unit in watched_units(cfg):
        policy = RecoveryPolicy.from_config(cfg, unit)
        row: dict[str, Any] = {"unit": unit, "strategy": policy.strategy,
                               "max_attempts": policy.max_attempts}
        if client is not None:
            try:
                props = await client.properties(unit)
                row["state"] = props.get("ActiveState")
                row["load"] = props.get("LoadState")
                if props.get("LoadState") == "loaded" and unit.endswith(".service"):
                    svc = await client.properties(unit, SERVICE)
                    restart = str(svc.get("Restart", "no"))
                    row["systemd_restart"] = restart
                    row["n_restarts"] = svc.get("NRestarts")
                    row["handled_by"] = ("systemd (taucg defers)" if restart != "no" and
                                         cfg.recovery.systemd_restart == "defer" else "taucg")
            except SystemdError as exc:
                row["error"] = str(exc)
        rows.append(row)
    return rows
