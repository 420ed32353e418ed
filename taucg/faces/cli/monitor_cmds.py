"""`taucg resources`, `taucg status` and `taucg health`: the machine and the tiers, live."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli.common import (
    FiniteFloatRange,
    cli,
    config_option,
    format_option,
    watch_option,
)
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Output, emit, emit_json

if TYPE_CHECKING:
    from taucg.model.health import Health

# ------------------------------------------------------------- resources ---


@cli.command("resources", epilog=EPILOGS["resources"])
@click.option("--cpu", "want", flag_value="cpu", multiple=True, help="CPU use, load, switches")
@click.option("--memory", "want", flag_value="memory", multiple=True, help="memory and swap")
@click.option("--disk", "want", flag_value="disk", multiple=True,
              help="filesystem usage and disk IO rates")
@click.option("--network", "want", flag_value="network", multiple=True,
              help="links, addresses and traffic")
@click.option("--temperature", "want", flag_value="temperature", multiple=True,
              help="thermal zones and hwmon sensors")
@click.option("--pressure", "want", flag_value="pressure", multiple=True,
              help="pressure stall information")
@watch_option()
@click.option("--interval", type=FiniteFloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@format_option
@config_option
def resources_cmd(want: tuple[str, ...], watch: float | None, interval: float, fmt: Output,
                  config_path: str | None) -> None:
    """The machine live: CPU, memory, disk, network.

    Also temperatures and pressure stall information.
    Read directly from the kernel: no daemon needed, works unprivileged.
    With no section flag, every section is shown."""
    from taucg.faces.resources import SECTIONS, build, sample_pair
    from taucg.readers.sampler import Sampler

    cfg = load_config(config_path)
    sections = [s for s in SECTIONS if s in want] or list(SECTIONS)
    headers = ["AREA", "ITEM", "VALUE", "NOTE"]
    with Sampler() as sampler:
        pair = list(sample_pair(sampler, interval if watch is None else min(interval, watch)))

        def show(out: Output, line: bool) -> None:
            rep = build(pair[0], pair[1], sections, cfg.resource_monitoring)
            if line:
                emit_json("resources", rep.data, line=True)
            else:
                emit(out, headers, rep.rows, rep.data, title="resources", schema="resources")

        def advance() -> None:
            pair[:] = [pair[1], sampler.system()]

        _repeat(fmt, watch, show, advance)


def _repeat(fmt: Output, watch: float | None, show: Callable[[Output, bool], None],
            advance: Callable[[], None] = lambda: None) -> None:
    """Shows once, or with --watch every SECONDS until Ctrl-C: JSON as one
    document per line, tables under a time line, tab-separated rows under
    one header line (the first refresh's), so a pipe reads one stream."""
    if watch is None:
        show(fmt, False)
        return
    json_lines = fmt.resolved == "json"
    out = fmt
    try:
        while True:
            if fmt.resolved == "table":
                click.echo(f"--- {time.strftime('%H:%M:%S')} ---")
            show(out, json_lines)
            if fmt.resolved == "plain":
                out = replace(fmt, legend=False)
            time.sleep(watch)
            advance()
    except KeyboardInterrupt:
        return


# ---------------------------------------------------------------- status ---


@cli.command("status", epilog=EPILOGS["status"])
@click.option("--interval", type=FiniteFloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@watch_option()
@format_option
@config_option
def status_cmd(interval: float, watch: float | None, fmt: Output,
               config_path: str | None) -> None:
    """Each tier live: members, use, limits, drift.

    Members, CPU, memory, IO, pids, pressure, limit hits, limits and drift
    from the config, read from cgroupfs directly; no daemon needed. With
    --watch, live like systemd-cgtop.

    LIMIT HITS: OOM kills, memory.high and memory.max events since the tier
    started, and the time cpu.max throttled it between the two samples.

    FORECAST lines (when the daemon runs): when a tier's memory, a
    filesystem or a leaking process reaches its limit at its recent rate."""
    from taucg.faces.status import collect

    cfg = load_config(config_path)

    def show(out: Output, line: bool) -> None:
        report = collect(cfg, interval)
        if line:
            emit_json("status", report.data, line=True)
            return
        sampling = report.data["sampling"]
        every = (f"daemon sampling every {sampling['interval_seconds']:g} s"
                 if sampling["daemon"] and sampling["interval_seconds"]
                 else "no daemon running")
        emit(out, ["TIER", "STATE", "UNITS", "TASKS", "CPU", "MEMORY", "IO R/W", "PSI C/M/I",
                   "ZOMBIES", "LIMIT HITS", "LIMITS"], report.rows, report.data,
             title=f"tiers ({every})", schema="status")
        if out.resolved == "json":
            return  # the forecasts are in the document
        # The daemon's forecasts (tiers, filesystems, leaks), one line each.
        for fc in report.data["forecasts"] or []:
            click.echo(f"forecast\t{fc['message']}" if out.resolved == "plain"
                       else f"forecast: {fc['message']} (fit {fc['quality']:.2f} over "
                            f"{fc['points']} samples)")

    _repeat(fmt, watch, show)


# ---------------------------------------------------------------- health ---


def health_document(health: Health) -> dict[str, Any]:
    """The health JSON (taucg.health/1): typed measurements beside the text."""
    data = health.to_dict()
    for check in data["checks"]:
        check["summary"] = check.pop("value")
    return data


def _show_health(health: Any, detailed: bool, fmt: Output) -> None:
    kind = fmt.resolved
    if kind == "json":
        emit_json("health", health_document(health))
        return
    verdict = "healthy" if health.healthy else f"ALERT: below the threshold {health.threshold:g}"
    rows = []
    for c in health.checks:
        score = "n/a" if c.score is None else f"{c.score:.2f}"
        row = [c.name, score, f"{health.weights.get(c.name, 0):g}", c.value]
        if detailed:
            row.append(c.detail)
        rows.append(row)
    headers = ["CHECK", "SCORE", "WEIGHT", "VALUE"] + (["DETAIL"] if detailed else [])
    emit(fmt, headers, rows, None, title=f"health {health.score:.2f} ({verdict})")
    if kind != "table":
        click.echo(f"score\t{health.score:.3f}\t{verdict}")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")


@cli.command("health", epilog=EPILOGS["health"])
@click.option("--detailed", is_flag=True, help="show what each check looked at")
@format_option
@config_option
def health_cmd(detailed: bool, fmt: Output, config_path: str | None) -> None:
    """A 0.0-1.0 health score with recommendations.

    The score comes from weighted checks.
    Exit 0 when the score is at or above health_score_threshold, 1 below."""
    health = evaluate_health(load_config(config_path))
    _show_health(health, detailed, fmt)
    raise click.exceptions.Exit(0 if health.healthy else 1)


def evaluate_health(cfg: Config, interval: float = 0.5) -> Health:
    """One health check from the command line: two system samples, the
    watched services' states from systemd, then the model's score."""
    import asyncio

    from taucg.actors.systemd_dbus import read_service_states
    from taucg.model.health import assess, watched_services
    from taucg.readers.sampler import Sampler

    with Sampler() as sampler:
        prev = sampler.system()
        time.sleep(interval)
        cur = sampler.system()

    async def run() -> Health:
        units = watched_services(cfg)
        services = await read_service_states(units) if units else None
        return await assess(cfg, prev, cur, services)

    return asyncio.run(run())
