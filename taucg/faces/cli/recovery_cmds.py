"""`taucg recovery`: recovery policy, crash history, recovery state, the watcher."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli import common
from taucg.faces.cli.common import UserError, audit, cli, config_option, format_option
from taucg.faces.cli.completion import complete_unit
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Cell, Output, Seconds, When, cell_text, emit, emit_json, utc

# -------------------------------------------------------------- recovery ---


@cli.group("recovery", invoke_without_command=True, epilog=EPILOGS["recovery"])
@click.option("--history", "show_history", is_flag=True,
              help="same as 'taucg recovery history'")
@click.option("--unit", default=None, help="only this unit (with --history)",
              shell_complete=complete_unit)
@click.option("--detail", is_flag=True,
              help="with --history: the flight record's timeline before the crash")
@click.option("--session", "show_session", is_flag=True,
              help="same as 'taucg recovery session'")
# --watch means "refresh every N seconds" everywhere else: this older
# spelling of the watcher stays, hidden, for the scripts that use it.
@click.option("--watch", is_flag=True, hidden=True, help="same as 'taucg recovery watch'")
@format_option
@config_option
@click.pass_context
def recovery_cmd(ctx: click.Context, show_history: bool, unit: str | None, detail: bool,
                 show_session: bool, watch: bool, fmt: Output, config_path: str | None) -> None:
    """Critical units and their recovery policy.

    Also whether systemd or taucg restarts each of them.

    The flags --history and --session are the older spellings of the
    subcommands, kept for the documentation that uses them; the watcher
    runs as 'taucg recovery watch'."""
    if ctx.invoked_subcommand is not None:
        return
    if detail and not show_history:
        raise click.UsageError("--detail goes with --history (or 'taucg recovery history')")
    if show_session:
        ctx.invoke(session_cmd, fmt=fmt, config_path=config_path)
    elif show_history:
        ctx.invoke(history_cmd, unit=unit, detail=detail, event_id=None, fmt=fmt,
                   config_path=config_path)
    elif watch:
        ctx.invoke(watch_cmd, config_path=config_path)
    else:
        _overview(load_config(config_path), fmt)


def _overview(cfg: Config, fmt: Output) -> None:
    from taucg.actors.recovery_watcher import unit_overview

    reachable: list[bool] = []

    async def overview(client: Any) -> list[dict[str, Any]]:
        reachable.append(client is not None)
        return await unit_overview(cfg, client)

    units = common.with_systemd(overview, required=False)
    rows = [[u["unit"], str(u.get("state", "?")), u["strategy"], str(u["max_attempts"]),
             str(u.get("systemd_restart", "-")), str(u.get("handled_by", "-"))] for u in units]
    emit(fmt, ["UNIT", "STATE", "STRATEGY", "ATTEMPTS", "RESTART=", "RESTARTED BY"], rows,
         {"units": units, "chain": list(cfg.recovery.chain),
          "systemd_restart": cfg.recovery.systemd_restart,
          "systemd_reachable": bool(reachable and reachable[0])}, title="recovery",
         schema="recovery")


@recovery_cmd.command("session", epilog=EPILOGS["recovery session"])
@format_option
@config_option
def session_cmd(fmt: Output, config_path: str | None) -> None:
    """The last session snapshot and state blobs.

    The units and their states when the snapshot was taken."""
    from taucg.actors.recovery_state import RecoveryStateError, load_snapshot, state_dir

    cfg = load_config(config_path)
    path = state_dir(cfg) / "session.json"
    try:
        snap = load_snapshot(cfg)
    except RecoveryStateError as exc:
        raise UserError(str(exc)) from None
    if snap is None:
        if fmt.resolved == "json":
            emit_json("recovery-session", {"path": str(path), "snapshot": None})
        else:
            click.echo(f"no session snapshot yet ({path}); the recovery watcher takes one "
                       "every 30 s")
        return
    rows = [[u, s["active_state"], s["sub_state"]] for u, s in snap["units"].items()]
    blobs = ", ".join(snap["blobs"]) or "none"
    emit(fmt, ["UNIT", "STATE", "SUB"], rows,
         {"path": str(path), "snapshot": {
             "taken_at": utc(snap["time"]),
             "units": [{"unit": u, "active_state": s["active_state"],
                        "sub_state": s["sub_state"]} for u, s in snap["units"].items()],
             "blobs": list(snap["blobs"])}},
         title=f"session snapshot {cell_text(When(snap['time']))}; state blobs: {blobs}",
         schema="recovery-session")


@recovery_cmd.command("history", epilog=EPILOGS["recovery history"])
@click.option("--unit", default=None, help="only this unit", shell_complete=complete_unit)
@click.option("--detail", is_flag=True,
              help="the flight record of each unit's newest crash: the minutes before it")
@click.option("--event", "event_id", type=click.IntRange(min=1), default=None,
              help="with --detail: this event's flight record (its id in the JSON)")
@format_option
@config_option
def history_cmd(unit: str | None, detail: bool, event_id: int | None, fmt: Output,
                config_path: str | None) -> None:
    """Crash history: failures, MTBF, events.

    Failures per unit, the mean time between them, the last failure and the
    latest events. Drills ('taucg recovery test --crash') are listed as
    events but not counted in failures or MTBF."""
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError
    from taucg.config.values import unit_name

    cfg = load_config(config_path)
    path = history_path(cfg)
    if not path.exists():
        if fmt.resolved == "json":
            emit_json("recovery-history", {"path": str(path), "units": [], "events": []})
        else:
            click.echo(f"no crash history yet ({path})")
        return
    try:
        history = CrashHistory(path)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    wanted = unit_name(unit) if unit else None
    try:
        stats = history.stats(wanted)
        events = history.events(wanted, limit=50)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    data: dict[str, Any] = {"path": str(path), "units": [{
        "unit": s.unit, "failures": s.failures, "first_failure_at": utc(s.first),
        "last_failure_at": utc(s.last), "last_result": s.last_result,
        "mtbf_seconds": s.mtbf_seconds, "drills": s.drills} for s in stats],
        "events": [{"id": e.id, "failed_at": utc(e.time), "unit": e.unit, "result": e.result,
                    "exit_code": e.exit_code, "signal": e.signal, "attempt": e.attempt,
                    "action": e.action, "delay_seconds": e.delay, "outcome": e.outcome,
                    "drill": e.drill, "flight_bytes": e.flight_bytes}
                   for e in events]}
    if detail or event_id is not None:
        from taucg.faces.cli.flight_detail import details

        data["details"] = details(history, events, event_id)
    rows: list[list[Cell]] = [
        [s.unit, str(s.failures), Seconds(s.mtbf_seconds), When(s.last), s.last_result]
            for s in stats]
    if not stats and not events and fmt.resolved != "json":
        click.echo(f"no crashes recorded{f' for {wanted}' if wanted else ''} ({path})")
        return
    emit(fmt, ["UNIT", "FAILURES", "MTBF", "LAST FAILURE", "LAST RESULT"], rows, data,
         title="crash history", schema="recovery-history")
    drilled = [e for e in events if e.drill]
    if drilled and fmt.resolved != "json":
        click.echo(f"{len(drilled)} drills, not counted above: "
                   + ", ".join(f"{e.unit} {cell_text(When(e.time))} ({e.outcome})"
                               for e in drilled[-5:]))
    if "details" in data and fmt.resolved != "json":
        from taucg.faces.cli.flight_detail import show

        show(fmt, history, events, event_id)


@recovery_cmd.command("watch", epilog=EPILOGS["recovery watch"])
@config_option
def watch_cmd(config_path: str | None) -> None:
    """Run the recovery watcher in the foreground.

    Until interrupted; it restarts units, so it needs root."""
    from taucg.actors.recovery_watcher import RecoveryWatcher
    from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable

    cfg = load_config(config_path)
    if os.geteuid() != 0:
        raise UserError("the recovery watcher restarts units; run it as root")

    async def watch() -> None:
        try:
            watcher = await RecoveryWatcher.open(
                cfg, lambda: Systemd().connect(),
                log=lambda m: click.echo(f"recovery: {m}", err=True))
        except SystemdUnavailable as exc:
            raise UserError(str(exc)) from None
        await watcher.serve()

    with contextlib.suppress(KeyboardInterrupt):
        common.run_async(watch())


@recovery_cmd.command("save-state", epilog=EPILOGS["recovery save-state"])
@click.argument("unit", shell_complete=complete_unit)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option
@config_option
def save_state_cmd(unit: str, file: Path, fmt: Output, config_path: str | None) -> None:
    """Keep FILE as UNIT's state blob for recovery.

    After a recovery of UNIT, the file is handed back to it."""
    from taucg.actors.recovery_state import HANDBACK_DIR, save_blob
    from taucg.config.values import check_unit_name

    cfg = load_config(config_path)
    try:
        name = check_unit_name(unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="UNIT") from None
    dest = save_blob(cfg, name, file)
    size = file.stat().st_size
    audit(cfg.logging, "save-state", name, after=str(dest), size=size)
    if fmt.resolved == "json":
        emit_json("recovery-save-state", {"unit": name, "source": str(file),
                                          "saved_to": str(dest), "size_bytes": size,
                                          "handback_path": str(HANDBACK_DIR / name)})
        return
    click.echo(f"saved {file} for {name} as {dest}; after a recovery it is handed back at "
               f"{HANDBACK_DIR / name}")


@recovery_cmd.command("leave-safe-mode", epilog=EPILOGS["recovery leave-safe-mode"])
@format_option
@config_option
def leave_safe_mode_cmd(fmt: Output, config_path: str | None) -> None:
    """Thaw the tiers that safe mode froze.

    Safe mode freezes the Low and Background tiers."""
    from taucg.actors.recovery_watcher import leave_safe_mode

    cfg = load_config(config_path)
    thawed = common.with_systemd(leave_safe_mode)
    if thawed:
        audit(cfg.logging, "leave-safe-mode", ", ".join(thawed),
              before="frozen", after="thawed")
    if fmt.resolved == "json":
        emit_json("recovery-leave-safe-mode", {"thawed": list(thawed)})
        return
    click.echo(f"thawed: {', '.join(thawed) or 'nothing was frozen'}")


# `recovery test` lives in its own module, registered on this group.
from taucg.faces.cli import drill_cmds  # noqa: E402, F401
