"""The entry points: `taucg` (also installed as `tau-monitor-cli`) and
`tau-monitor`, the daemon under its older name. The group loads each
command module when its command runs (common.COMMAND_MODULES)."""

from __future__ import annotations

import os
import sys

import click

from taucg import __version__
from taucg.config.loading import ConfigError
from taucg.config.loading import load as load_config
from taucg.faces.cli.common import cli
from taucg.faces.cli.completion import complete_config_file
from taucg.faces.cli.examples import EPILOGS

# ------------------------------------------------------------ entry points ---


def main() -> None:
    name = "tau-monitor-cli" if sys.argv[0].endswith("tau-monitor-cli") else "taucg"
    try:
        cli(prog_name=name)
    except BrokenPipeError:
        # Output piped into head(1) and the like: stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=EPILOGS["tau-monitor"])
@click.version_option(__version__, prog_name="tau-monitor")
@click.option("--foreground", is_flag=True,
              help="run the daemon in the foreground (as 'taucg daemon')")
@click.option("--daemon", "detach", is_flag=True,
              help="fork into the background and write [daemon] pidfile; under systemd use "
                   "'systemctl start taucg' instead")
@click.option("--check", is_flag=True,
              help="run one health check; exit 0 if healthy, 1 below the threshold")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              shell_complete=complete_config_file)
@click.pass_context
def tau_monitor(ctx: click.Context, foreground: bool, detach: bool, check: bool,
                config_path: str | None) -> None:
    """The taucg daemon under its older name."""
    if foreground + detach + check != 1:
        raise click.UsageError("choose one of --foreground, --daemon or --check")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"tau-monitor: {problem}", err=True)
        raise click.exceptions.Exit(2) from None
    if not check:
        from taucg.faces.cli.daemon_cmds import daemon_cmd

        ctx.invoke(daemon_cmd, detach=detach, config_path=config_path)
        return
    from taucg.faces.cli.monitor_cmds import evaluate_health

    health = evaluate_health(cfg)
    verdict = "healthy" if health.healthy else "unhealthy"
    click.echo(f"health {health.score:.2f} ({verdict}, threshold {health.threshold:g})")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")
    raise click.exceptions.Exit(0 if health.healthy else 1)


def tau_monitor_main() -> None:
    tau_monitor(prog_name="tau-monitor")
