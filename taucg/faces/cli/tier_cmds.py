"""`taucg apply`: make the tier slices match the config, then verify them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.faces.cli.common import (
    UserError,
    cli,
    config_option,
    format_option,
    json_error,
    with_systemd,
)
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Output, emit_json

# ----------------------------------------------------------------- apply ---

DRY_RUN_CHANGES = 10  # --dry-run exit status when something would change


def _file_diff(change: Any) -> list[str]:
    import difflib

    before = (change.before or "").splitlines()
    after = (change.after or "").splitlines()
    return [line for line in difflib.unified_diff(before, after, "before", "after", lineterm="",
                                                  n=0) if not line.startswith(("---", "+++"))]


def _print_plan(plan: Any) -> None:
    for f in plan.files:
        click.echo(f"{f.action:<7} {f.path}")
        for line in _file_diff(f):
            if not line.startswith("@@"):
                click.echo(f"        {line}")
    for p in plan.properties:
        click.echo(f"set     {p.unit} {p.name}: {p.before} -> {p.after}")
    for unit in plan.start:
        click.echo(f"start   {unit}")
    for m in plan.moves:
        state = "running: restart needed" if m.active else "not running"
        click.echo(f"move    {m.unit}: {m.before} -> {m.after} ({state})")
    for note in plan.notes:
        click.echo(f"note    {note}")


@cli.command("apply", epilog=EPILOGS["apply"])
@click.option("--dry-run", is_flag=True,
              help=f"print the plan and exit: 0 if nothing would change, {DRY_RUN_CHANGES} if "
                   "something would")
@click.option("--restart-moved", is_flag=True,
              help="restart running services whose tier changed (otherwise they are listed)")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/etc/systemd/system"), show_default=True, envvar="TAUCG_UNIT_DIR",
              help="where slice units and drop-ins are written")
@format_option
@config_option
def apply_cmd(dry_run: bool, restart_moved: bool, unit_dir: Path, fmt: Output,
              config_path: str | None) -> None:
    """Make the tier slices match the config.

    Writes the five slices and their drop-ins, sets them live, then
    verifies the cgroup files.
    Plans first (files, live properties, slices to start, services that
    change tier); applying again with nothing changed writes nothing."""
    from taucg.actors import apply as ap

    cfg = load_config(config_path)
    json_out = fmt.resolved == "json"

    async def run(client: Any) -> ap.Applied:
        return await ap.apply_config(
            cfg, client, unit_dir=unit_dir, dry_run=dry_run, restart_moved=restart_moved,
            held=_governor_holds(cfg),
            on_plan=(lambda _plan: None) if json_out else _print_plan)

    try:
        # Without root, apply_config refuses after preflight: no bus needed to say so.
        done = with_systemd(run, required=not dry_run and os.geteuid() == 0)
    except ap.PreflightError as exc:
        if json_out:
            json_error("preflight found problems; nothing was changed", 2,
                       [str(p) for p in exc.problems])
        else:
            for p in exc.problems:
                click.echo(f"taucg: {p}", err=True)
        raise click.exceptions.Exit(2) from None
    except ap.ApplyError as exc:
        raise UserError(str(exc)) from None
    raise click.exceptions.Exit(_report(done, json_out))


def _governor_holds(cfg: Any) -> dict[str, frozenset[str]]:
    """What a running daemon's governor holds at runtime (slice -> keys), so
    an apply from the command line leaves it to the governor, as the
    daemon's own apply does; nothing when no daemon answers."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call
    from taucg.model.tiers import slice_name

    try:
        data = call(cfg.daemon.socket_path, "governor", timeout=10)
    except (DaemonNotRunning, DaemonError, OSError):
        return {}
    if not isinstance(data, dict) or not data.get("running"):
        return {}
    return {slice_name(tier): frozenset(row.get("governed", {}))
            for tier, row in data.get("tiers", {}).items() if row.get("governed")}


def _report(done: Any, json_out: bool) -> int:
    """Prints what apply did (or would do); returns the exit status."""
    if json_out:
        # One document, dry run or not; preflight problems of a dry run are in it.
        emit_json("apply", done.to_dict())
    if done.dry_run:
        if not json_out:
            _print_plan(done.plan)
            if not done.plan.changed:
                click.echo("nothing would change")
            for p in done.problems:  # shown with the plan; a real apply would stop here
                click.echo(f"taucg: {p}", err=True)
        if done.problems:
            return 2
        return DRY_RUN_CHANGES if done.plan.changed else 0
    if not json_out:
        click.echo(done.summary)
        if done.restart_needed:
            click.echo(f"restart needed to change tier: {', '.join(done.restart_needed)} "
                       "(run again with --restart-moved)")
        for d in done.drift:
            click.echo(f"drift   {d}")
        if not done.drift:
            click.echo("verified: every tier's cgroup files match the config")
    return 1 if done.drift else 0

