"""`taucg recovery test UNIT`: recovery drills. --dry-run prints what the
policy would do for the next failure and the escalation after it, from
the persisted attempts; --crash kills the unit's main process and follows
the real recovery, step by step, through systemd's signals and, when the
daemon runs, its recovery notifications."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli import common
from taucg.faces.cli.common import UserError, config_option, format_option
from taucg.faces.cli.completion import complete_unit
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.cli.recovery_cmds import recovery_cmd
from taucg.faces.render import Cell, Output, Seconds, emit, emit_json, utc
from taucg.model.recovery_drill import Forecast, forecast


@recovery_cmd.command("test", epilog=EPILOGS["recovery test"])
@click.argument("unit", shell_complete=complete_unit)
@click.option("--dry-run", "dry_run", is_flag=True,
              help="print what recovery would do for the next failure and after")
@click.option("--crash", is_flag=True,
              help="kill the unit's main process and follow the real recovery (root)")
@click.option("--signal", "signal_name", default="SIGSEGV", show_default=True,
              help="with --crash: the signal to send")
@click.option("--yes", "-y", is_flag=True, help="with --crash: do not ask first")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="with --crash: seconds to wait for the recovery "
                   "[default: the next step's delay + recovery_timeout_seconds + 30]")
@format_option
@config_option
@click.pass_context
def test_cmd(ctx: click.Context, unit: str, dry_run: bool, crash: bool, signal_name: str,
             yes: bool, timeout: float | None, fmt: Output, config_path: str | None) -> None:
    """Drill the recovery of UNIT.

    --dry-run shows the decision for its next failure and the whole
    escalation chain after it, from the crash history's attempts. --crash
    kills its main process (MainPID, nothing else) with SIGSEGV or
    --signal, follows the recovery and exits 1 if the unit is not back
    within the timeout. A drill is audited and marked as a drill in the
    crash history, so failure counts and MTBF leave it out."""
    from taucg.config.values import check_unit_name, unit_name

    if dry_run == crash:
        raise click.UsageError("give one of --dry-run or --crash")
    try:
        name = unit_name(check_unit_name(unit))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="UNIT") from None
    cfg = load_config(config_path)
    if dry_run:
        _dry_run(cfg, name, fmt)
        return
    from taucg.actors.drills import signal_number

    try:
        signal = signal_number(signal_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--signal") from None
    if os.geteuid() != 0:
        raise UserError("a crash drill kills a unit's process; run it as root")
    from taucg.faces.cli.drill_crash import crash_drill

    report = crash_drill(cfg, name, signal, timeout, yes, fmt)
    if not report["recovered"]:
        ctx.exit(1)


# ---------------------------------------------------------------- dry run ---


def _attempts(cfg: Config, unit: str, window: float) -> tuple[list[float], str]:
    """The recorded attempts in the window, as the watcher replays them."""
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError

    path = history_path(cfg)
    if not path.exists():
        return [], f"no crash history yet ({path})"
    try:
        history = CrashHistory(path)
        try:
            events = history.events(unit, since=time.time() - window)
        finally:
            history.close()
    except StoreError as exc:
        raise UserError(str(exc)) from None
    return [e.time for e in events if e.action != "deferred-to-systemd"], str(path)


async def _live(client: Any, unit: str) -> dict[str, Any]:
    from taucg.actors.systemd_dbus import SERVICE, SystemdError

    if client is None:
        return {}
    try:
        props = await client.properties(unit)
        svc = await client.properties(unit, SERVICE) if unit.endswith(".service") else {}
    except SystemdError as exc:
        return {"error": str(exc)}
    return {"load": props.get("LoadState"), "state": props.get("ActiveState"),
            "active_since": int(props.get("ActiveEnterTimestamp", 0) or 0) / 1e6 or None,
            "restart": svc.get("Restart"), "main_pid": svc.get("MainPID")}


def _dry_run(cfg: Config, unit: str, fmt: Output) -> None:
    from taucg.actors.recovery_watcher import watched_units
    from taucg.model.recovery_policy import RecoveryPolicy

    policy = RecoveryPolicy.from_config(cfg, unit)
    failures, source = _attempts(cfg, unit, policy.window_seconds)
    live = common.with_systemd(lambda c: _live(c, unit), required=False)
    up = live.get("active_since") if live.get("state") == "active" else None
    plan = forecast(policy, failures, time.time(), up)
    watched = unit in watched_units(cfg)
    restart = live.get("restart")
    deferred = bool(restart and restart != "no" and cfg.recovery.systemd_restart == "defer")
    notes = _notes(cfg, plan, watched, restart, deferred)
    data = {"unit": unit, "watched": watched, "history": source,
            "policy": {"strategy": policy.strategy, "max_attempts": policy.max_attempts,
                       "window_seconds": policy.window_seconds,
                       "stable_seconds": policy.stable_seconds, "chain": list(policy.chain),
                       "delay_seconds": policy.delay_seconds,
                       "max_delay_seconds": policy.max_delay_seconds,
                       "backoff_multiplier": policy.backoff_multiplier},
            "state": live.get("state"), "systemd_restart": restart,
            "deferred_to_systemd": deferred, "strategy_now": plan.strategy_now,
            "attempts_in_window": plan.attempts_in_window,
            "reset_by_uptime": plan.reset_by_uptime,
            "steps": [{"failure": s.failure, "strategy": s.strategy, "attempt": s.attempt,
                       "delay_seconds": s.delay_seconds,
                       "delay_min_seconds": s.delay_min_seconds,
                       "delay_max_seconds": s.delay_max_seconds,
                       "escalated_from": s.escalated_from} for s in plan.steps],
            "repeats": plan.repeats, "notes": notes}
    rows: list[list[Cell]] = [
        ["next" if s.failure == 1 else f"+{s.failure - 1}", s.strategy,
         f"{s.attempt}/{policy.max_attempts}", _delay(s.delay_min_seconds, s.delay_max_seconds),
         f"from {s.escalated_from}" if s.escalated_from else ""] for s in plan.steps]
    emit(fmt, ["FAILURE", "STRATEGY", "ATTEMPT", "DELAY", "ESCALATED"], rows, data,
         title=f"{unit}: now at {plan.strategy_now}, {plan.attempts_in_window} attempts in "
               f"the last {policy.window_seconds:g} s", schema="recovery-test")
    if fmt.resolved != "json":
        for note in notes:
            click.echo(note)


def _delay(lo: float, hi: float) -> Cell:
    if hi - lo < 0.05:
        return Seconds(lo, 1) if lo else "-"
    return f"{lo:.1f}-{hi:.1f}s"


def _notes(cfg: Config, plan: Forecast, watched: bool, restart: str | None,
           deferred: bool) -> list[str]:
    notes = []
    if not watched:
        notes.append("taucg does not watch this unit (add it to crash_recovery."
                     "critical_processes or [recovery.services]): nothing above happens")
    if deferred:
        notes.append(f"its Restart={restart}: systemd restarts it first (systemd_restart = "
                     "\"defer\"); taucg takes the chain above once systemd gives up")
    if plan.reset_by_uptime:
        notes.append(f"up for {cfg.recovery.stable_seconds:g} s or more: its recorded "
                     "attempts no longer count")
    if plan.repeats:
        notes.append(f"after that, every further failure: {plan.repeats}")
    return notes


def crash_document(report: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a crash drill (times as RFC 3339)."""
    return {**report, "started_at": utc(report["started_at"]),
            "steps": [{**s, "happened_at": utc(s["happened_at"])} for s in report["steps"]]}


def emit_crash(fmt: Output, report: dict[str, Any]) -> None:
    if fmt.resolved == "json":
        emit_json("recovery-drill", crash_document(report))
