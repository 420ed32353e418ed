"""What every command module shares: the click group with its error
handling (a config problem exits 2, a user error 1, never a traceback;
with -o json the error is a JSON document on stdout), the output options
(-o/--format, --no-legend, --raw) and -c/--config, and the lazy helpers for
audit records, asyncio and the systemd connection.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import click

from taucg import __version__
from taucg.config.loading import ConfigError
from taucg.faces.cli.completion import complete_config_file
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import FORMATS, Output, emit_json


def audit(settings: Any, action: str, target: str, **fields: Any) -> None:
    """logs.audit, imported on first use: most commands never write one, and
    the JSON formatter and rotating handlers cost every start-up."""
    from taucg.actors.records import audit as write

    write(settings, action, target, **fields)


T = TypeVar("T")


class UserError(click.ClickException):
    """A problem the user can fix; printed without a traceback, exit 1."""


DAEMON_NOT_RUNNING = 3  # exit status of a command that needs the daemon when none runs


class DaemonNotRunningError(UserError):
    """A command that asks the daemon found none: exit 3."""

    exit_code = DAEMON_NOT_RUNNING


OUTPUT_KEY = "taucg.output"  # ctx.meta: the Output a command was given


def wants_json(args: Sequence[str]) -> bool:
    """Whether a command line asks for JSON, read from the words themselves:
    a usage error stops click before any option is converted."""
    words = list(args)
    if "--" in words:
        words = words[:words.index("--")]
    for i, w in enumerate(words):
        if w in ("-o", "--format") and i + 1 < len(words) and words[i + 1] == "json":
            return True
        if w in ("-ojson", "--format=json"):
            return True
    return False


def json_error(message: str, exit_code: int, problems: Sequence[str] = ()) -> None:
    """The JSON form of a failure (taucg.error/1), on stdout like every
    other document, so a script reads one stream whatever happened."""
    emit_json("error", {"error": {"message": message, "exit_code": exit_code,
                                  "problems": list(problems)}})


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
    "top": "top_cmds",
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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["taucg.args"] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # an option of taucg itself, before any command
            if not wants_json(args):
                raise
            json_error(exc.format_message(), exc.exit_code)
            ctx.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if _json_asked(ctx):
                json_error("the config is invalid", 2, [str(p) for p in exc.problems])
            else:
                for problem in exc.problems:
                    click.echo(f"taucg: {problem}", err=True)
            ctx.exit(2)
        except PermissionError as exc:
            name = exc.filename or "a system file"
            message = f"permission denied on {name}; run as root (sudo taucg ...)"
            if _json_asked(ctx):
                json_error(message, 1)
            else:
                click.echo(f"taucg: {message}", err=True)
            ctx.exit(1)
        except click.ClickException as exc:
            if not _json_asked(ctx):
                raise
            json_error(exc.format_message(), exc.exit_code)
            ctx.exit(exc.exit_code)


def _json_asked(ctx: click.Context) -> bool:
    # The words too: a group's own Output (config, recovery) is set before
    # its subcommand's options are read.
    out = ctx.meta.get(OUTPUT_KEY)
    return ((isinstance(out, Output) and out.resolved == "json")
            or wants_json(ctx.meta.get("taucg.args", [])))


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


F = TypeVar("F", bound=Callable[..., Any])


def format_option(f: F) -> F:
    """-o/--format, --no-legend and --raw, given to the command as one
    ``fmt: Output`` (a caller's ctx.invoke may pass an Output itself)."""

    @functools.wraps(f)
    def wrapper(*args: Any, fmt: Output | str = "auto", no_legend: bool = False,
                raw: bool = False, **kwargs: Any) -> Any:
        out = fmt if isinstance(fmt, Output) else Output(fmt, not no_legend, raw)
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[OUTPUT_KEY] = out
        return f(*args, fmt=out, **kwargs)

    options = (
        click.option("-o", "--format", "fmt", type=click.Choice(FORMATS), default="auto",
                     show_default=True,
                     help="table on a terminal, tab-separated when piped, or json"),
        click.option("--no-legend", is_flag=True,
                     help="no title or header line (table and tab-separated output)"),
        click.option("--raw", is_flag=True,
                     help="plain numbers: bytes as integers, seconds and times as numbers"),
    )
    decorated: Callable[..., Any] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[return-value]


config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="config file (default: $TAUCG_CONFIG, then /etc/taucg/taucg.toml, then built-in)",
    shell_complete=complete_config_file,
)


def watch_option(help_text: str = "refresh every SECONDS until interrupted "
                                  "(JSON: one document per line)") -> Callable[[F], F]:
    """-w/--watch SECONDS: the one meaning of --watch in taucg."""
    return click.option("-w", "--watch", type=FiniteFloatRange(0.1, 86400), default=None,
                        metavar="SECONDS", help=help_text)


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

