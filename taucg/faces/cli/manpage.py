"""taucg(1), written from the click command tree when it is asked for, so
it cannot drift from the commands: a section per command and subcommand
with its usage, help, epilog (the examples) and options as --help shows
them."""

from __future__ import annotations

from collections.abc import Iterator

import click

from taucg import __version__
from taucg.faces.roff import Page, bold, escape

EXIT_STATUS = (
    ("0", "success; for checks (health, apply's verify), nothing wrong"),
    ("1", "a problem the command names: not root, systemd unreachable, a check that "
          "failed, drift after apply"),
    ("2", "a usage or configuration error: the message names the option or the file, "
          "line and key"),
    ("3", "the daemon is not running (commands that ask it: alerts, logs, history)"),
    ("10", "apply, install and uninstall --dry-run: something would change"),
)
FILES = (
    ("/etc/taucg/taucg.toml", "the admin configuration; see taucg.toml(5)"),
    ("/usr/local/lib/systemd/system/taucg.service, taucg-apply.service",
     "the units taucg install writes"),
    ("/etc/systemd/system/tau*.slice, /etc/systemd/system/*.d/50-taucg-tier.conf",
     "the tier slices and service placements taucg apply writes"),
    ("/var/lib/taucg/", "history.db, samples.db, governor.json, recovery.json and "
                        "install-manifest.json"),
    ("/run/taucg/taucg.sock", "the daemon's socket API"),
    ("/var/log/tau/", "the main, audit and performance logs"),
)


def walk(group: click.Group, ctx: click.Context) -> Iterator[tuple[click.Context,
                                                                   click.Command]]:
    """Every visible command under ``group``, depth first, each with its
    own context (so usage lines carry the full command path)."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx)
        yield sub, cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd, sub)


def _help(text: str | None) -> str:
    # click shows nothing after \f (what follows is for the code's readers).
    return (text or "").split("\f", 1)[0]


def _command(page: Page, ctx: click.Context, cmd: click.Command) -> None:
    page.subsection(ctx.command_path)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    page.raw(".PP")
    page.raw(f"{bold(ctx.command_path)} {escape(usage)}")
    page.para(_help(cmd.help) or cmd.short_help or "")
    if cmd.epilog:
        page.para(cmd.epilog)
    records = [r for p in cmd.get_params(ctx) if (r := p.get_help_record(ctx)) is not None]
    for names, text in records:
        page.raw(".TP")
        page.raw(bold(names))
        if text:
            page.raw(escape(" ".join(text.split())))


def commands(root: click.Group) -> list[str]:
    """Every command path the page documents (for the tests)."""
    ctx = click.Context(root, info_name="taucg")
    return [sub.command_path for sub, _ in walk(root, ctx)]


def command_page(root: click.Group) -> str:
    ctx = click.Context(root, info_name="taucg")
    page = Page()
    page.title("taucg", 1, f"taucg {__version__}", "taucg manual")
    page.section("name")
    page.raw("taucg \\- cgroup v2 resource tiers on systemd")
    page.section("synopsis")
    page.raw(f"{bold('taucg')} {escape('[--version] [-h|--help] COMMAND [OPTIONS] [ARGS]')}")
    page.section("description")
    page.para("taucg keeps five priority tiers (critical, high, normal, low, background) as "
              "systemd slices, tau-TIER.slice, configured from one TOML file (taucg.toml(5)). "
              "'taucg apply' makes the slices match the config; 'taucg daemon' samples the "
              "machine, governs the lower tiers under pressure, recovers crashed services "
              "and serves a socket API and Prometheus metrics; the other commands show "
              "and act on that state. Every command takes -h/--help.")
    page.section("commands")
    for sub, cmd in walk(root, ctx):
        _command(page, sub, cmd)
    page.section("exit status")
    for code, meaning in EXIT_STATUS:
        page.item(bold(code), meaning)
    page.section("environment")
    page.item(bold("TAUCG_CONFIG"), "the config file, when --config is not given")
    page.section("files")
    for path, what in FILES:
        page.item(bold(path), what)
    page.section("see also")
    page.raw(f"{bold('taucg.toml')}(5), {bold('systemd.resource-control')}(5), "
             f"{bold('systemd.slice')}(5), {bold('systemctl')}(1), {bold('journalctl')}(1)")
    return page.text()
