"""`taucg recovery`: recovery policy, crash history, recovery state, the watcher."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli import common
from taucg.faces.cli.common import UserError, audit, cli, config_option, format_option
from taucg.faces.cli.completion import complete_unit
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import emit

# -------------------------------------------------------------- recovery ---


@cli.group("recovery", invoke_without_command=True, epilog=EPILOGS["recovery"])
@click.option("--history", "show_history", is_flag=True,
              help="same as 'taucg recovery history'")
@click.option("--unit", default=None, help="only this unit (with --history)",
              shell_complete=complete_unit)
@click.option("--session", "show_session", is_flag=True,
              help="same as 'taucg recovery session'")
@click.option("--watch", is_flag=True, help="same as 'taucg recovery watch'")
@format_option
@config_option
@click.pass_context
def recovery_cmd(ctx: click.Context, show_history: bool, unit: str | None,
                 show_session: bool, watch: bool, fmt: str, config_path: str | None) -> None:
    """Critical units and their recovery policy.

    Also whether systemd or taucg restarts each of them.

    The flags --history, --session and --watch are the older spellings of
    the subcommands, kept for the documentation that uses them."""
    if ctx.invoked_subcommand is not None:
        return
    if show_session:
        ctx.invoke(session_cmd, fmt=fmt, config_path=config_path)
    elif show_history:
        ctx.invoke(history_cmd, unit=unit, fmt=fmt, config_path=config_path)
    elif watch:
        ctx.invoke(watch_cmd, config_path=config_path)
    else:
        _overview(load_config(config_path), fmt)


def _overview(cfg: Config, fmt: str) -> None:
    from taucg.actors.recovery_watcher import unit_overview

    units = common.with_systemd(lambda client: unit_overview(cfg, client), required=False)
    rows = [[u["unit"], str(u.get("state", "?")), u["strategy"], str(u["max_attempts"]),
             str(u.get("systemd_restart", "-")), str(u.get("handled_by", "-"))] for u in units]
    emit(fmt, ["UNIT", "STATE", "STRATEGY", "ATTEMPTS", "RESTART=", "RESTARTED BY"], rows,
         {"units": units, "chain": list(cfg.recovery.chain),
          "systemd_restart": cfg.recovery.systemd_restart}, title="recovery")


@recovery_cmd.command("session", epilog=EPILOGS["recovery session"])
@format_option
@config_option
def session_cmd(fmt: str, config_path: str | None) -> None:
    """The last session snapshot and state blobs.

    The units and their states when the snapshot was taken."""
    from taucg.actors.recovery_state import RecoveryStateError, load_snapshot, state_dir

    cfg = load_config(config_path)
    try:
        snap = load_snapshot(cfg)
    except RecoveryStateError as exc:
        raise UserError(str(exc)) from None
    if snap is None:
        click.echo(f"no session snapshot yet ({state_dir(cfg) / 'session.json'}); the "
                   "recovery watcher takes one every 30 s")
        return
    rows = [[u, s["active_state"], s["sub_state"]] for u, s in snap["units"].items()]
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap["time"]))
    blobs = ", ".join(snap["blobs"]) or "none"
    emit(fmt, ["UNIT", "STATE", "SUB"], rows, snap,
         title=f"session snapshot {taken}; state blobs: {blobs}")


@recovery_cmd.command("history", epilog=EPILOGS["recovery history"])
@click.option("--unit", default=None, help="only this unit", shell_complete=complete_unit)
@format_option
@config_option
def history_cmd(unit: str | None, fmt: str, config_path: str | None) -> None:
    """Crash history: failures, MTBF, events.

    Failures per unit, the mean time between them, the last failure and the
    latest events."""
    from taucg.actors.crash_history import CrashHistory
    from taucg.actors.recovery_watcher import history_path
    from taucg.actors.sqlite_db import StoreError
    from taucg.config.values import unit_name

    cfg = load_config(config_path)
    path = history_path(cfg)
    if not path.exists():
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
    data = {"units": [{
        "unit": s.unit, "failures": s.failures, "first": s.first, "last": s.last,
        "last_result": s.last_result, "mtbf_seconds": s.mtbf_seconds} for s in stats],
        "events": [{"time": e.time, "unit": e.unit, "result": e.result,
                    "exit_code": e.exit_code, "signal": e.signal, "attempt": e.attempt,
                    "action": e.action, "delay": e.delay, "outcome": e.outcome}
                   for e in events]}
    rows = [[s.unit, str(s.failures),
             "-" if s.mtbf_seconds is None else f"{s.mtbf_seconds:.0f}s",
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.last)), s.last_result]
            for s in stats]
    emit(fmt, ["UNIT", "FAILURES", "MTBF", "LAST FAILURE", "LAST RESULT"], rows, data,
         title="crash history")


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
@config_option
def save_state_cmd(unit: str, file: Path, config_path: str | None) -> None:
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
    audit(cfg.logging, "save-state", name, after=str(dest), size=file.stat().st_size)
    click.echo(f"saved {file} for {name} as {dest}; after a recovery it is handed back at "
               f"{HANDBACK_DIR / name}")


@recovery_cmd.command("leave-safe-mode", epilog=EPILOGS["recovery leave-safe-mode"])
@config_option
def leave_safe_mode_cmd(config_path: str | None) -> None:
    """Thaw the tiers that safe mode froze.

    Safe mode freezes the Low and Background tiers."""
    from taucg.actors.recovery_watcher import leave_safe_mode

    thawed = common.with_systemd(leave_safe_mode)
    if thawed:
        audit(load_config(config_path).logging, "leave-safe-mode", ", ".join(thawed),
              before="frozen", after="thawed")
    click.echo(f"thawed: {', '.join(thawed) or 'nothing was frozen'}")
