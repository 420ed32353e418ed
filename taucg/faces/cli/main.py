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
from taucg.faces.cli.common import cli, format_option, json_error
from taucg.faces.cli.completion import complete_config_file
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Output

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
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              shell_complete=complete_config_file)
@format_option
@click.pass_context
def tau_monitor(ctx: click.Context, foreground: bool, detach: bool, check: bool,
                config_path: str | None, fmt: Output) -> None:
    """The taucg daemon under its older name.

    With --check -o json: the taucg.health/1 document of 'taucg health'."""
    json_out = fmt.resolved == "json"
    if foreground + detach + check != 1:
        message = "choose one of --foreground, --daemon or --check"
        if json_out:
            json_error(message, 2)
            raise click.exceptions.Exit(2)
        raise click.UsageError(message)
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        if json_out:
            json_error("the config is invalid", 2, [str(p) for p in exc.problems])
        else:
            for problem in exc.problems:
                click.echo(f"tau-monitor: {problem}", err=True)
        raise click.exceptions.Exit(2) from None
    if not check:
        from taucg.faces.cli.daemon_cmds import daemon_cmd

        ctx.invoke(daemon_cmd, detach=detach, config_path=config_path)
        return
    from taucg.faces.cli.monitor_cmds import evaluate_health, health_document

    health = evaluate_health(cfg)
    if json_out:
        from taucg.faces.render import emit_json

        emit_json("health", health_document(health))
        raise click.exceptions.Exit(0 if health.healthy else 1)
    verdict = "healthy" if health.healthy else "unhealthy"
    click.echo(f"health {health.score:.2f} ({verdict}, threshold {health.threshold:g})")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")
    raise click.exceptions.Exit(0 if health.healthy else 1)


def tau_monitor_main() -> None:
    tau_monitor(prog_name="tau-monitor")
