"""`taucg governor`: what the controller sees and does, and why."""

from __future__ import annotations

import json
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.faces.cli.common import (
    DaemonNotRunningError,
    UserError,
    cli,
    config_option,
    format_option,
)
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Cell, Output, When, emit, emit_json, utc


def governor_document(data: dict[str, Any]) -> dict[str, Any]:
    """The API's governor answer as taucg.governor/1: typed tier values,
    units in the names, action times in the one format."""
    shown = {k: v for k, v in data.items() if k not in ("targets", "actions", "tiers")}
    if data.get("running"):
        shown["tiers"] = {
            tier: {"governed": row.get("governed_values", {}),
                   "configured": row.get("configured_values", {}),
                   "frozen": row["frozen"]}
            for tier, row in data["tiers"].items()}
        shown["targets_percent"] = data["targets"]
        shown["actions"] = [{"acted_at": utc(a["time"]),
                             **{k: v for k, v in a.items() if k != "time"}}
                            for a in data["actions"]]
    return shown


@cli.command("governor", epilog=EPILOGS["governor"])
@click.option("-n", "--count", type=click.IntRange(1, 500), default=20, show_default=True,
              help="how many recent actions to show")
@format_option
@config_option
def governor_cmd(count: int, fmt: Output, config_path: str | None) -> None:
    """The controller's decisions and their reasons.

    Pressure against the targets, what each governed tier carries now
    against its config, and the recent actions with their reasons (exit 3:
    no daemon; the persisted state is shown)."""
    from taucg.actors.governor_state import load_state, state_path
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    cfg = load_config(config_path)
    try:
        data: dict[str, Any] = call(cfg.daemon.socket_path, "governor", {"count": count})
    except DaemonNotRunning as exc:
        state = load_state(cfg)
        if state.get("tiers") or state.get("frozen"):
            click.echo(f"taucg: {state_path(cfg)} records governed settings; the daemon gives "
                       f"them back when it starts: {json.dumps(state)}", err=True)
        raise DaemonNotRunningError(str(exc)) from None
    except DaemonError as exc:
        raise UserError(f"the daemon refused governor: {exc}") from None
    if fmt.resolved == "json":
        emit_json("governor", governor_document(data))
        return
    if not data.get("running"):
        click.echo(f"governor: off ({data.get('why', 'not running')})")
        return
    rows = [[r, f"{data['stall_percent'].get(r, 0.0):.1f}%", f"{t:g}%"]
            for r, t in data["targets"].items()]
    emit(fmt, ["RESOURCE", "STALL (PROTECTED)", "TARGET"], rows, data,
         title=f"governor: protects {', '.join(data['protect'])}; "
               f"temperature {data['celsius'] if data['celsius'] is not None else '-'} °C; "
               f"pooling {'on' if data['pooled'] else 'off'}")
    tier_rows = []
    for tier, row in data["tiers"].items():
        governed = ", ".join(f"{k} {v} (config {row['configured'].get(k, 'default')})"
                             for k, v in row["governed"].items()) or "as configured"
        tier_rows.append([tier, "frozen" if row["frozen"] else "running", governed])
    emit(fmt, ["TIER", "STATE", "GOVERNED NOW"], tier_rows, None, title="governed tiers")
    actions: list[list[Cell]] = [
        [When(a["time"]), a["kind"], a["tier"], f"{a['key']}: {a['before']} -> {a['after']}",
         a["reason"]] for a in data["actions"]]
    if actions:
        emit(fmt, ["TIME", "ACTION", "TIER", "CHANGE", "WHY"], actions, None,
             title="recent actions")
