"""`taucg top`: the live, cgroup-tree aware terminal view (and --once)."""

from __future__ import annotations

import sys
import time

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import TIER_NAMES
from taucg.faces.cli.common import FiniteFloatRange, UserError, cli, config_option, format_option
from taucg.faces.cli.completion import complete_tier
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Output, emit_json, plain


@cli.command("top", epilog=EPILOGS["top"])
@click.option("-d", "--interval", type=FiniteFloatRange(0.2, 60), default=1.0,
              show_default=True, metavar="SECONDS", help="seconds between refreshes")
@click.option("--once", is_flag=True,
              help="print one frame (two samples INTERVAL apart) and exit")
@click.option("--sort", type=click.Choice(["cpu", "memory", "pressure", "name"]),
              default="cpu", show_default=True, help="the first sort order (keys c m p n)")
@click.option("--tier", type=click.Choice(TIER_NAMES), default=None,
              help="show only this tier (keys 1-5, 0 for all)", shell_complete=complete_tier)
@click.option("--expand", is_flag=True, help="start with every unit's processes shown")
@click.option("--no-daemon", is_flag=True,
              help="sample everything here, even when the daemon runs")
@format_option
@config_option
def top_cmd(interval: float, once: bool, sort: str, tier: str | None, expand: bool,
            no_daemon: bool, fmt: Output, config_path: str | None) -> None:
    """The tiers live: units, processes, events.

    \b
    Each tier: CPU, memory against its limit, pressure (some avg10 of
    cpu/memory/io), governed values, OOM kills and a CPU sparkline; its
    units below it, each expandable to its processes. The event pane shows
    alerts, recoveries and governor actions as the daemon's subscription
    delivers them, or what this view's own sampling sees (OOM kills,
    MemoryMax hits, units started and gone) when no daemon runs. Without
    taucg's tiers (no systemd, nothing applied) it says so and shows the
    machine's processes by cgroup. Keys: ? in the view."""
    from taucg.faces.top_model import (
        FORECAST_COLUMN,
        View,
        build_frame,
        frame_document,
        frame_rows,
    )
    from taucg.faces.top_source import Source

    cfg = load_config(config_path)
    view = View(sort=sort, tier=tier, expand_all=expand)
    if not once and fmt.kind == "json":
        raise UserError("-o json needs --once: the live view draws on a terminal")
    if not once and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError("taucg top draws on a terminal; for one frame in a pipe or a "
                        "script use --once (with -o json for JSON)")
    source = Source(cfg, interval, use_daemon=not no_daemon)
    columns = (FORECAST_COLUMN,) if source.daemon else ()
    try:
        if once:
            source.refresh(None if expand else [])
            time.sleep(interval)
            snap = source.refresh(None if expand else [])
            kind = fmt.resolved
            if kind == "json":
                emit_json("top", frame_document(snap, view, columns))
            elif kind == "plain":
                headers, rows = frame_rows(snap, view, columns)
                text = plain(rows, headers if fmt.legend else None)
                if text:
                    click.echo(text)
            else:
                click.echo(build_frame(snap, view, columns).text())
            return
        from taucg.faces.top_screen import run

        run(source.refresh, view, interval, columns)
    except KeyboardInterrupt:
        return
    finally:
        source.close()
