"""`taucg recovery test UNIT --crash`: the drill itself. Reads MainPID over
D-Bus, marks the drill (actors/drills.py) so the watcher records it as
one, kills that PID only, and follows the recovery: systemd's
PropertiesChanged of the unit (ActiveState, SubState, MainPID), and the
daemon's taucg.recovery notifications when it runs. Each step is printed
with its time since the kill; the drill ends when the unit is active
with a new MainPID, or at the timeout."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal as signals
import threading
import time
from pathlib import Path
from typing import Any

import click

from taucg.actors import drills
from taucg.config.schema import Config
from taucg.faces.cli import common
from taucg.faces.cli.common import UserError, audit
from taucg.faces.render import Output

SETTLE_SECONDS = 10.0  # after the unit is back: for the daemon's word and the history row


class DaemonEvents:
    """The daemon's recovery notifications, read on a thread (the client is
    blocking), or nothing when no daemon runs."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.running = False
        self.recovers = False
        self.why = ""

    def start(self) -> None:
        from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

        try:
            before = call(self.socket, "ping", timeout=5)
        except (DaemonNotRunning, DaemonError, OSError) as exc:
            self.why = str(exc)
            return
        self.running = True
        self.recovers = "recovery" in before.get("workers", ())
        threading.Thread(target=self._read, daemon=True).start()
        # Subscribed once the daemon counts one more subscriber.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(DaemonNotRunning, DaemonError, OSError):
                if call(self.socket, "ping", timeout=5)["subscribers"] > before["subscribers"]:
                    return
            time.sleep(0.1)

    def _read(self) -> None:
        from taucg.faces.socket_client import subscribe

        with contextlib.suppress(Exception):
            for n in subscribe(self.socket, ["recovery"]):
                self.events.put((time.monotonic(), n.get("params") or {}))

    def drain(self) -> list[tuple[float, dict[str, Any]]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


class Steps:
    def __init__(self, fmt: Output, t0_wall: float) -> None:
        self.fmt = fmt
        self.t0 = time.monotonic()
        self.t0_wall = t0_wall
        self.rows: list[dict[str, Any]] = []

    def add(self, event: str, detail: str, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        after = at - self.t0
        self.rows.append({"happened_at": self.t0_wall + after, "after_seconds": round(after, 3),
                          "event": event, "detail": detail})
        if self.fmt.resolved != "json":
            click.echo(f"+{after:8.3f}s  {event:<10} {detail}")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


async def _follow(cfg: Config, unit: str, signal: int, timeout: float, yes: bool,
                  fmt: Output) -> dict[str, Any]:
    from taucg.actors.recovery_watcher import watched_units
    from taucg.actors.systemd_dbus import SERVICE, UNIT, Systemd, SystemdError, unit_path

    client = await Systemd().connect()
    try:
        props = await client.properties(unit)
        if props.get("LoadState") != "loaded":
            raise UserError(f"{unit} is not loaded ({props.get('LoadState')}); check its name "
                            "with 'systemctl status'")
        if props.get("ActiveState") != "active":
            raise UserError(f"{unit} is {props.get('ActiveState')}, not active; start it "
                            "before drilling its recovery")
        pid = int(await client.get_property(unit, "MainPID", SERVICE) or 0)
        if pid <= 0:
            raise UserError(f"{unit} has no main process to kill (MainPID 0)")
        name = signals.Signals(signal).name
        if not yes:
            click.confirm(f"Kill {unit}'s main process {pid} ({_comm(pid)}) with {name} and "
                          "follow its recovery?", abort=True, err=True)
        watched = unit in watched_units(cfg)
        daemon = DaemonEvents(Path(cfg.daemon.socket_path))
        daemon.start()
        if fmt.resolved != "json":
            who = ("the daemon's recovery watcher" if daemon.recovers else
                   "the daemon runs without its recovery worker" if daemon.running else
                   f"no daemon ({daemon.why})")
            watching = "watched by taucg" if watched else "NOT watched by taucg"
            click.echo(f"drill of {unit}: {watching}; {who}")
        stream = await client.signals()  # before the kill: no change is missed
        started = time.time()
        drills.mark(cfg.crash_recovery.state_directory, drills.Drill(
            unit, pid, signal, started, started + timeout + 60, "taucg recovery test"))
        audit(cfg.logging, "recovery drill", unit, before=f"MainPID {pid}",
              after=f"killed with {name}", signal=signal, pid=pid)
        steps = Steps(fmt, started)
        try:
            drills.kill_main(pid, signal)
        except ProcessLookupError:
            drills.clear(cfg.crash_recovery.state_directory, unit)
            raise UserError(f"{unit}'s main process {pid} was gone before the kill; "
                            "try again") from None
        steps.add("killed", f"PID {pid} ({name})")
        path = unit_path(unit)
        deadline = time.monotonic() + timeout
        state, sub, new_pid = "active", "running", pid
        recovered = False
        while time.monotonic() < deadline and not recovered:
            try:
                sig = await asyncio.wait_for(stream.__anext__(), 0.5)
            except TimeoutError:
                sig = None
            for at, ev in daemon.drain():
                if ev.get("unit") == unit or ev.get("event") == "safe_mode":
                    steps.add("taucg", _said(ev), at)
            if sig is not None and (sig.path != path or sig.member != "PropertiesChanged"):
                continue
            if sig is not None and sig.body[0] not in (UNIT, SERVICE):
                continue
            try:
                # One GetAll: two Gets could straddle a change (failed, running).
                now = await client.properties(unit)
                now_state, now_sub = str(now.get("ActiveState")), str(now.get("SubState"))
                now_pid = int(await client.get_property(unit, "MainPID", SERVICE) or 0)
            except SystemdError:
                continue
            if (now_state, now_sub) != (state, sub):
                detail = now_sub
                if now_state == "failed":
                    detail += f" (Result={await client.get_property(unit, 'Result', SERVICE)})"
                steps.add(now_state, detail)
                state, sub = now_state, now_sub
            if now_pid and now_pid != new_pid:
                steps.add("main pid", f"{now_pid} ({_comm(now_pid)})")
                new_pid = now_pid
            recovered = state == "active" and new_pid not in (0, pid)
        stream.close()
        # Active with a new main process: the step just added is the recovery.
        took = steps.rows[-1]["after_seconds"] if recovered else None
        if recovered:
            settle = time.monotonic() + SETTLE_SECONDS
            while daemon.running and time.monotonic() < settle:
                got = daemon.drain()
                for at, ev in got:
                    if ev.get("unit") == unit:
                        steps.add("taucg", _said(ev), at)
                if any(r["event"] == "taucg" and "outcome" in r["detail"] for r in steps.rows):
                    break
                await asyncio.sleep(0.2)
        taken = drills.read(cfg.crash_recovery.state_directory, unit) is None
        if not taken:
            drills.clear(cfg.crash_recovery.state_directory, unit)
        row, why = _history_row(cfg, unit, started)
        settle = time.monotonic() + 3 * SETTLE_SECONDS
        while row is None and taken and time.monotonic() < settle:
            await asyncio.sleep(0.5)  # taken, so the watcher is writing it
            row, why = _history_row(cfg, unit, started)
            if row is None and daemon.running:
                row = _daemon_row(Path(cfg.daemon.socket_path), unit, started) or row
        outcome = (f"recovered in {took:.3f} s, new MainPID {new_pid}" if recovered
                   else f"not recovered within {timeout:g} s (state {state})")
        audit(cfg.logging, "recovery drill result", unit, before=f"MainPID {pid}",
              after=f"MainPID {new_pid}", result="ok" if recovered else "failed",
              outcome=outcome)
        steps.rows.sort(key=lambda r: r["after_seconds"])  # the daemon's word comes late
        report = {"unit": unit, "signal": name, "killed_pid": pid,
                  "new_pid": new_pid if new_pid != pid else None, "recovered": recovered,
                  "recovery_seconds": took, "timeout_seconds": timeout,
                  "started_at": started, "watched": watched, "daemon_running": daemon.running,
                  "marker_taken": taken, "history_event": row, "history_missing": why,
                  "steps": steps.rows}
        if fmt.resolved != "json":
            click.echo(outcome)
            if row is not None:
                marked = "marked as a drill" if row["drill"] else "NOT marked as a drill"
                click.echo(f"crash history: event {row['id']} ({row['action']}, "
                           f"{row['outcome']}), {marked}")
            elif taken:
                click.echo(f"crash history: {why}")
            else:
                click.echo("no watcher recorded the failure: the drill marker was not taken "
                           "(is the daemon's recovery worker or 'taucg recovery watch' running?)")
        return report
    finally:
        await client.close()


def _said(ev: dict[str, Any]) -> str:
    if ev.get("event") == "safe_mode":
        return f"safe mode {'on' if ev.get('safe_mode') else 'off'}"
    return (f"{ev.get('strategy')} attempt {ev.get('attempt')} ({ev.get('result')}): "
            f"outcome {ev.get('outcome')}")


def _history_row(cfg: Config, unit: str, since: float) -> tuple[dict[str, Any] | None, str | None]:
    """The newest crash history row of the unit since the kill, or why there is none."""
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError

    path = history_path(cfg)
    if not path.exists():
        return None, f"no crash history at {path}"
    try:
        history = CrashHistory(path)
        try:
            rows = history.events(unit, since=since - 1)
        finally:
            history.close()
    except StoreError as exc:
        return None, str(exc)
    if not rows:
        return None, f"no row for {unit} since the kill in {path}"
    e = rows[-1]
    return {"id": e.id, "action": e.action, "outcome": e.outcome, "drill": e.drill,
            "flight_bytes": e.flight_bytes}, None


def _daemon_row(socket: Path, unit: str, since: float) -> dict[str, Any] | None:
    """The row as the daemon (the history's writer) reads it: recovery.flight."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    try:
        e = call(socket, "recovery.flight", {"unit": unit}, timeout=10)["event"]
    except (DaemonNotRunning, DaemonError, OSError, KeyError, TypeError):
        return None
    if not isinstance(e, dict) or float(e.get("time", 0)) < since - 1:
        return None
    return {k: e[k] for k in ("id", "action", "outcome", "drill", "flight_bytes")}


def crash_drill(cfg: Config, unit: str, signal: int, timeout: float | None, yes: bool,
                fmt: Output) -> dict[str, Any]:
    from taucg.actors.systemd_dbus import SystemdError, SystemdUnavailable
    from taucg.faces.cli.drill_cmds import emit_crash
    from taucg.model.recovery_policy import RecoveryPolicy

    if timeout is None:
        from taucg.faces.cli.drill_cmds import _attempts
        from taucg.model.recovery_drill import forecast

        policy = RecoveryPolicy.from_config(cfg, unit)
        failures, _ = _attempts(cfg, unit, policy.window_seconds)
        nxt = forecast(policy, failures, time.time(), max_steps=1).steps[0]
        timeout = nxt.delay_max_seconds + cfg.crash_recovery.recovery_timeout_seconds + 30
    try:
        report = common.run_async(_follow(cfg, unit, signal, timeout, yes, fmt))
    except (SystemdUnavailable, SystemdError) as exc:
        raise UserError(str(exc)) from None
    emit_crash(fmt, report)
    return report
