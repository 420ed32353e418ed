"""`taucg resources`, `taucg status` and `taucg health`: the machine and the tiers, live."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli.common import FiniteFloatRange, cli, config_option, format_option
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import emit, resolve_format

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
@click.option("--watch", type=FiniteFloatRange(0.1, 86400), default=None, metavar="SECONDS",
              help="refresh every SECONDS until interrupted (JSON: one object per line)")
@click.option("--interval", type=FiniteFloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@format_option
@config_option
def resources_cmd(want: tuple[str, ...], watch: float | None, interval: float, fmt: str,
                  config_path: str | None) -> None:
    """The machine live: CPU, memory, disk, network.

    Also temperatures and pressure stall information.
    Read directly from the kernel: no daemon needed, works unprivileged.
    With no section flag, every section is shown."""
    from taucg.faces.resources import SECTIONS, build, sample_pair
    from taucg.readers.sampler import Sampler

    cfg = load_config(config_path)
    sections = [s for s in SECTIONS if s in want] or list(SECTIONS)
    kind = resolve_format(fmt)
    headers = ["AREA", "ITEM", "VALUE", "NOTE"]
    with Sampler() as sampler:
        prev, cur = sample_pair(sampler, interval if watch is None else min(interval, watch))
        while True:
            rep = build(prev, cur, sections, cfg.resource_monitoring)
            if watch is not None and kind == "json":
                click.echo(json.dumps(rep.data, default=str))
            else:
                if watch is not None and kind == "table":
                    click.echo(f"--- {time.strftime('%H:%M:%S')} ---")
                emit(kind, headers, rep.rows, rep.data, title="resources")
            if watch is None:
                return
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                return
            prev, cur = cur, sampler.system()


# ---------------------------------------------------------------- status ---


@cli.command("status", epilog=EPILOGS["status"])
@click.option("--interval", type=FiniteFloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@format_option
@config_option
def status_cmd(interval: float, fmt: str, config_path: str | None) -> None:
    """Each tier live: members, use, limits, drift.

    Members, CPU, memory, IO, pids, pressure, limit hits, limits and drift
    from the config, read from cgroupfs directly; no daemon needed.

    LIMIT HITS: OOM kills, memory.high and memory.max events since the tier
    started, and the time cpu.max throttled it between the two samples."""
    from taucg.faces.status import collect

    cfg = load_config(config_path)
    report = collect(cfg, interval)
    sampling = report.data["sampling"]
    every = (f"daemon sampling every {sampling['interval_seconds']:g} s"
             if sampling["daemon"] and sampling["interval_seconds"] else "no daemon running")
    emit(fmt, ["TIER", "STATE", "UNITS", "TASKS", "CPU", "MEMORY", "IO R/W", "PSI C/M/I",
               "ZOMBIES", "LIMIT HITS", "LIMITS"], report.rows, report.data,
         title=f"tiers ({every})")


# ---------------------------------------------------------------- health ---


def _show_health(health: Any, detailed: bool, fmt: str) -> None:
    kind = resolve_format(fmt)
    if kind == "json":
        click.echo(json.dumps(health.to_dict(), indent=2))
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
    emit(kind, headers, rows, health.to_dict(),
         title=f"health {health.score:.2f} ({verdict})")
    if kind != "table":
        click.echo(f"score\t{health.score:.3f}\t{verdict}")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")


@cli.command("health", epilog=EPILOGS["health"])
@click.option("--detailed", is_flag=True, help="show what each check looked at")
@format_option
@config_option
def health_cmd(detailed: bool, fmt: str, config_path: str | None) -> None:
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
