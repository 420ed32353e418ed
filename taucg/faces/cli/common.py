"""What every command module shares: the click group with its error
handling (a config problem exits 2, a user error 1, never a traceback),
the --format and --config options, and the lazy helpers for audit
records, asyncio and the systemd connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from taucg import __version__
from taucg.config.loading import ConfigError
from taucg.faces.cli.completion import complete_config_file
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import FORMATS


def audit(settings: Any, action: str, target: str, **fields: Any) -> None:
    """logs.audit, imported on first use: most commands never write one, and
    the JSON formatter and rotating handlers cost every start-up."""
    from taucg.actors.records import audit as write

    write(settings, action, target, **fields)


T = TypeVar("T")


class UserError(click.ClickException):
    """A problem the user can fix; printed without a traceback, exit 1."""


# Command -> the module of its family. A command's module is imported only
# when that command runs (or for --help), so `taucg config` pays for none of
# the others. The order is the one `taucg --help` lists: set up, look,
# place processes, recover and govern, then the daemon and what asks it.
COMMAND_MODULES = {
    "config": "config_cmds", "apply": "tier_cmds", "status": "monitor_cmds",
    "resources": "monitor_cmds", "health": "monitor_cmds", "processes": "process_cmds",
    "classify": "process_cmds", "run": "process_cmds", "recovery": "recovery_cmds",
    "governor": "governor_cmds", "daemon": "daemon_cmds", "logs": "daemon_cmds",
    "alerts": "daemon_cmds", "history": "daemon_cmds",
    "install": "install_cmds", "uninstall": "install_cmds", "man": "install_cmds",
}


class TaucgGroup(click.Group):
    """Loads each command family on first use, and turns expected failures
    into one clear message and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        # COMMAND_MODULES' order first; a command registered outside it after.
        extra = sorted(set(super().list_commands(ctx)) - set(COMMAND_MODULES))
        return [*COMMAND_MODULES, *extra]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            import importlib

            # Importing the module registers its commands on this group.
            importlib.import_module(f"taucg.faces.cli.{module}")
        return super().get_command(ctx, cmd_name)

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


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange lets nan through (every comparison with it is
    false); a number of seconds must be a real one."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
    help="table on a terminal, tab-separated when piped, or json",
)
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="config file (default: $TAUCG_CONFIG, then /etc/taucg/taucg.toml, then built-in)",
    shell_complete=complete_config_file,
)


@click.group(cls=TaucgGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOGS["taucg"])
@click.version_option(__version__, prog_name="taucg")
def cli() -> None:
    """taucg: cgroup v2 resource tiers on systemd."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def with_systemd(action: Callable[[Any], Awaitable[T]], *, required: bool = True) -> T:
    """Runs ``action(client)`` on a fresh systemd connection and closes it
    afterwards. Without systemd on the bus: a UserError naming the cause
    when ``required``, else ``action(None)``."""
    from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable

    async def run() -> T:
        try:
            client: Systemd | None = await Systemd().connect()
        except SystemdUnavailable as exc:
            if required:
                raise UserError(str(exc)) from None
            client = None
        try:
            return await action(client)
        finally:
            if client is not None:
                await client.close()

    return run_async(run())

