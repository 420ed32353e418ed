"""The `taucg` command line (also installed as `tau-monitor-cli`).

Each command parses, calls the layers below and renders; nothing here holds
logic another face would need. Heavy modules are imported inside the
commands that use them, so `taucg --help` and `taucg config` stay fast.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from taucg import __version__
from taucg.config import (
    BUILTIN,
    Config,
    ConfigError,
    flatten,
    source_of,
    to_dict,
)
from taucg.config import (
    load as load_config,
)
from taucg.render import FORMATS, emit


class UserError(click.ClickException):
    """A problem the user can fix; printed without a traceback, exit 1."""


class TaucgGroup(click.Group):
    """Turns expected failures into one clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"taucg: {problem}", err=True)
            ctx.exit(2)
        except PermissionError as exc:
            name = exc.filename or "a system file"
            click.echo(f"taucg: permission denied on {name}; run as root (sudo taucg ...)",
                       err=True)
            ctx.exit(1)


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
    help="table on a terminal, tab-separated when piped, or json",
)
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="config file (default: $TAUCG_CONFIG, then /etc/taucg/taucg.toml, then built-in)",
)


@click.group(cls=TaucgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taucg")
def cli() -> None:
    """taucg: cgroup v2 resource tiers on systemd."""


# ---------------------------------------------------------------- config ---

SECTION_FLAGS: dict[str, tuple[str, ...]] = {
    "monitoring": ("resource_monitoring", "health_checking", "logging"),
    "resources": ("process_management", "rules"),
    "recovery": ("crash_recovery", "recovery"),
    "tiers": ("tiers",),
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return str(value)


@cli.group("config", invoke_without_command=True)
@click.option("--monitoring", is_flag=True, help="resource monitoring, health checks, logging")
@click.option("--resources", is_flag=True, help="process management and placement rules")
@click.option("--recovery", is_flag=True, help="crash recovery")
@click.option("--tiers", is_flag=True, help="the five tiers")
@format_option
@config_option
@click.pass_context
def config_cmd(ctx: click.Context, monitoring: bool, resources: bool, recovery: bool,
               tiers: bool, fmt: str, config_path: str | None) -> None:
    """Show the effective config and where each value came from."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = load_config(config_path)
    chosen = [name for name, on in (("monitoring", monitoring), ("resources", resources),
                                    ("recovery", recovery), ("tiers", tiers)) if on]
    sections = [s for name in (chosen or SECTION_FLAGS) for s in SECTION_FLAGS[name]]
    data = to_dict(cfg)
    shown = {s: data[s] for s in sections if s in data}
    rows = [[key, _show(value), source_of(cfg, key)] for key, value in flatten(shown)]
    emit(fmt, ["KEY", "VALUE", "SOURCE"], rows,
         {"file": cfg.file, "config": shown,
          "sources": {k: source_of(cfg, k) for k, _ in flatten(shown)}},
         title=f"config: {cfg.file or BUILTIN}")


@config_cmd.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE; exit 2 with one line per problem."""
    cfg: Config = load_config(file)
    overridden = sum(1 for src in cfg.sources.values() if src == file)
    click.echo(f"{file}: OK ({overridden} keys set over the built-in default)")


# ------------------------------------------------------------- resources ---


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}%"


@cli.command("resources")
@click.option("--cpu", "want_cpu", is_flag=True, help="CPU use and load")
@click.option("--memory", "want_memory", is_flag=True, help="memory and swap")
@click.option("--pressure", "want_pressure", is_flag=True, help="pressure stall information")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that CPU%% is computed from")
@format_option
def resources_cmd(want_cpu: bool, want_memory: bool, want_pressure: bool, interval: float,
                  fmt: str) -> None:
    """System CPU, memory, load and pressure, read live (no daemon needed)."""
    from taucg.monitor import system_rates
    from taucg.sampler import Sampler
    from taucg.values import human_bytes

    everything = not (want_cpu or want_memory or want_pressure)
    with Sampler() as sampler:
        first = sampler.system()
        time.sleep(interval)
        cur = sampler.system()
    rates = system_rates(first, cur)
    rows: list[list[str]] = []
    data: dict[str, Any] = {}
    if everything or want_cpu:
        data["cpu"] = {
            "percent": rates.cpu_percent,
            "per_cpu_percent": rates.per_cpu_percent,
            "load": None if cur.load is None else
            [cur.load.load1, cur.load.load5, cur.load.load15],
            "context_switches_per_second": rates.context_switches_per_second,
        }
        rows.append(["cpu", "total", _pct(rates.cpu_percent)])
        for cpu, pct in sorted(rates.per_cpu_percent.items()):
            rows.append(["cpu", f"cpu{cpu}", _pct(pct)])
        if cur.load is not None:
            rows.append(["cpu", "load 1/5/15",
                         f"{cur.load.load1:.2f} {cur.load.load5:.2f} {cur.load.load15:.2f}"])
    if (everything or want_memory) and cur.memory is not None:
        m = cur.memory
        data["memory"] = {"total": m.total, "used": m.used, "available": m.available,
                          "swap_total": m.swap_total, "swap_free": m.swap_free}
        rows.append(["memory", "used/total",
                     f"{human_bytes(m.used)} / {human_bytes(m.total)} "
                     f"({100 * m.used / m.total:.1f}%)" if m.total else "n/a"])
        rows.append(["memory", "available",
                     "n/a (kernel lacks MemAvailable)" if m.available is None
                     else human_bytes(m.available)])
        rows.append(["memory", "swap used/total",
                     f"{human_bytes(m.swap_total - m.swap_free)} / {human_bytes(m.swap_total)}"])
    if everything or want_pressure:
        psi: dict[str, Any] = {}
        for name, p in (("cpu", cur.pressure_cpu), ("memory", cur.pressure_memory),
                        ("io", cur.pressure_io)):
            if p is None:
                psi[name] = None
                rows.append(["pressure", name, "not available (kernel without PSI)"])
                continue
            psi[name] = {"some_avg10": p.some.avg10, "some_avg60": p.some.avg60,
                         "full_avg10": None if p.full is None else p.full.avg10}
            full = "" if p.full is None else f"  full avg10 {p.full.avg10:.2f}%"
            rows.append(["pressure", name,
                         f"some avg10 {p.some.avg10:.2f}% avg60 {p.some.avg60:.2f}%{full}"])
        data["pressure"] = psi
    emit(fmt, ["AREA", "ITEM", "VALUE"], rows, data, title="resources")


# ------------------------------------------------------------ entry points ---


def main() -> None:
    cli(prog_name="taucg" if not sys.argv[0].endswith("tau-monitor-cli") else "tau-monitor-cli")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tau-monitor")
def tau_monitor(**_: Any) -> None:
    """tau-monitor: the taucg daemon's compatible name.

    The daemon modes (--foreground, --daemon, --check) arrive with the daemon;
    until then this name only answers --version and --help.
    """
    raise click.UsageError("no daemon mode is available in this build; see 'tau-monitor --help'")


def tau_monitor_main() -> None:
    tau_monitor(prog_name="tau-monitor")


if __name__ == "__main__":
    main()
