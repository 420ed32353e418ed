"""`taucg install`, `taucg uninstall` and `taucg man`: putting the running
installation on the machine (units with its absolute command, man pages
written from the code, shell completions, a config template), and taking
exactly that off again."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import click

from taucg import __version__
from taucg.faces.cli.common import UserError, audit, cli, config_option, with_systemd
from taucg.faces.cli.examples import EPILOGS

CONFIG = PurePosixPath("/etc/taucg/taucg.toml")
MAN_DIR = PurePosixPath("/usr/local/share/man")
COMMAND_LINK = PurePosixPath("/usr/local/bin/taucg")
# Where each shell looks under /usr/local (XDG_DATA_DIRS starts there).
COMPLETIONS = {
    "bash": PurePosixPath("/usr/local/share/bash-completion/completions/taucg"),
    "zsh": PurePosixPath("/usr/local/share/zsh/site-functions/_taucg"),
    "fish": PurePosixPath("/usr/local/share/fish/vendor_completions.d/taucg.fish"),
}
DRY_RUN_CHANGES = 10  # as apply --dry-run: something would change
CHANGES = ("create", "update", "link", "remove")
HIDDEN_FROM_DAEMON = ("/tmp/", "/var/tmp/")

root_option = click.option(
    "--root", "root", type=click.Path(file_okay=False, path_type=Path), default=Path("/"),
    show_default=True,
    help="install into this directory as if it were / (as systemctl --root): no systemd "
         "is told, --enable makes the links only")
dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help=f"print the plan and exit: 0 if nothing would change, {DRY_RUN_CHANGES} if "
         "something would")


# ------------------------------------------------------------------ man ---


def page(section: int) -> str:
    if section == 1:
        from taucg.faces.cli.manpage import command_page

        return command_page(cli)
    from taucg.faces.config_manpage import config_page

    return config_page()


@cli.command("man", epilog=EPILOGS["man"])
@click.option("--section", type=click.Choice(["1", "5"]), default="1", show_default=True,
              help="1: the commands, taucg(1); 5: the config file, taucg.toml(5)")
def man_cmd(section: str) -> None:
    """Print a man page (roff).

    Written from the code as it is now. Read it with 'taucg man | man -l -';
    'taucg install' puts both pages where man looks."""
    click.echo(page(int(section)), nl=False)


# -------------------------------------------------------------- install ---


def running_command() -> list[str]:
    """The absolute command of this installation: its console script when
    it has one next to the interpreter (a venv or pip's prefix), else the
    interpreter with -m taucg."""
    python = Path(os.path.abspath(sys.executable))
    script = python.parent / "taucg"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(python), "-m", "taucg"]


def _check_installed(command: list[str]) -> None:
    """The units run the command at boot, from /: a checkout that runs
    only because it is the current directory is not an installation."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("taucg")
    except PackageNotFoundError:
        raise UserError(f"taucg is not installed for {command[0]} (run from a checkout?); "
                        "the units need an installed command: pip install it into a venv "
                        "(python3 -m venv /opt/taucg; /opt/taucg/bin/pip install .), then run "
                        "/opt/taucg/bin/taucg install") from None


def completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None, shell
    return cls(cli, {}, "taucg", "_TAUCG_COMPLETE").source()


def config_template() -> str:
    """The built-in config, every line commented: an admin uncomments what
    they change, and the file overrides nothing until then."""
    from taucg.config.loading import builtin_text

    lines = ["# taucg configuration: every key below is the built-in default, commented out.",
             "# Uncomment and change what you need, check with 'taucg config check "
             f"{CONFIG}',", "# then 'taucg apply'. man taucg.toml lists every key.", ""]
    for line in builtin_text().splitlines():
        lines.append(line if line.startswith("#") or not line.strip() else f"# {line}")
    return "\n".join(lines) + "\n"


def install_files(command: list[str]) -> list[Any]:
    from taucg.actors.install import SYSTEM_UNIT_DIR, FileSpec
    from taucg.faces.units import exec_command, service_units

    files = [FileSpec(SYSTEM_UNIT_DIR / name, text)
             for name, text in service_units(exec_command(*command)).items()]
    files.append(FileSpec(MAN_DIR / "man1" / "taucg.1", page(1)))
    files.append(FileSpec(MAN_DIR / "man5" / "taucg.toml.5", page(5)))
    files += [FileSpec(path, completion_script(shell)) for shell, path in COMPLETIONS.items()]
    files.append(FileSpec(CONFIG, config_template(), keep_existing=True))
    return files


def _logging_under(root: Path, config_path: str | None) -> Any:
    """The [logging] settings audit records go by, with their files under
    --root (a test's install never writes the machine's logs)."""
    from taucg.actors.install import under
    from taucg.config.loading import load

    system = under(root, CONFIG)
    cfg = load(config_path or (system if system.exists() else None))
    if root == Path("/"):
        return cfg, cfg.logging
    lg = cfg.logging
    return cfg, dataclasses.replace(
        lg, audit_log_path=str(under(root, lg.audit_log_path)),
        performance_log_path=str(under(root, lg.performance_log_path)),
        log_file_path=str(under(root, lg.log_file_path)))


def _check_root(root: Path, dry_run: bool, what: str) -> None:
    if root == Path("/") and not dry_run and os.geteuid() != 0:
        raise UserError(f"taucg {what} writes /usr/local, /etc and /var/lib; run it with sudo, "
                        "or see the plan with --dry-run, or use --root DIR")
    if root != Path("/") and not root.is_dir():
        raise click.UsageError(f"--root {root} is not a directory; create it first")


def _show(steps: list[Any]) -> None:
    for step in steps:
        click.echo(str(step))


@cli.command("install", epilog=EPILOGS["install"])
@click.option("--enable", is_flag=True,
              help="enable taucg-apply.service and taucg.service (started at boot)")
@click.option("--now", is_flag=True, help="with --enable: start them now too")
@click.option("--print-units", is_flag=True,
              help="print the units this installation would write, and exit")
@root_option
@dry_run_option
@config_option
def install_cmd(enable: bool, now: bool, print_units: bool, root: Path, dry_run: bool,
                config_path: str | None) -> None:
    """Install taucg on this machine.

    The systemd units with its absolute command, the man pages taucg(1) and taucg.toml(5), the
    bash, zsh and fish completions, the /usr/local/bin/taucg link, and
    /etc/taucg/taucg.toml from a commented template when there is none
    (an existing config is never overwritten). Then systemd reloads.

    Installing again updates what changed. What was written is recorded in
    /var/lib/taucg/install-manifest.json, which 'taucg uninstall' follows."""
    from taucg.actors import install as ins
    from taucg.faces.units import SERVICE_UNITS, exec_command, service_units

    command = running_command()
    if print_units:
        for name, text in service_units(exec_command(*command)).items():
            click.echo(f"# {name}\n{text}")
        return
    _check_installed(command)
    if now and not enable:
        raise click.UsageError("--now starts the units it enables; give --enable too")
    if now and root != Path("/"):
        raise click.UsageError("--now starts units on this machine, not under --root; "
                               "drop --now (or --root)")
    _check_root(root, dry_run, "install")
    if command[0].startswith(HIDDEN_FROM_DAEMON):
        click.echo(f"taucg: warning: {command[0]} is under /tmp, which PrivateTmp=yes hides "
                   "from taucg.service; install taucg elsewhere (python3 -m venv /opt/taucg), "
                   "or add BindReadOnlyPaths= for it in a drop-in", err=True)
    files = install_files(command)
    links = [ins.LinkSpec(COMMAND_LINK, command[0], keep_existing=True)] \
        if len(command) == 1 and command[0] != str(COMMAND_LINK) else []
    if enable:
        links += ins.enable_links(service_units(exec_command(*command)), ins.SYSTEM_UNIT_DIR)
    if dry_run:
        steps = ins.plan_install(root, files, links)
        _show(steps)
        raise click.exceptions.Exit(DRY_RUN_CHANGES if any(s.action in CHANGES for s in steps)
                                    else 0)
    cfg, logging = _logging_under(root, config_path)

    def write() -> list[Any]:
        try:
            steps, _manifest = ins.install(root, files, links, exec_start=exec_command(*command),
                                           version=__version__)
        except ins.InstallError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"install failed at {exc.filename or 'a file'}: {exc.strerror}; "
                            "nothing else was changed after it (run again once fixed)"
                            ) from None
        return steps

    if root == Path("/"):
        async def run(client: Any) -> list[Any]:
            steps = write()
            return steps + await ins.start_units(client, SERVICE_UNITS if now else ())

        steps = with_systemd(run)
    else:
        steps = write()
    _show(steps)
    for step in steps:
        if step.action in (*CHANGES, "start"):
            audit(logging, f"install {step.action}", step.path, after=step.detail or None,
                  config=cfg.file)
    done = sum(1 for s in steps if s.action in CHANGES)
    click.echo(f"installed taucg {__version__} ({exec_command(*command)}): {done} change(s)"
               + ("" if enable else "; enable with 'taucg install --enable --now'"))


# ------------------------------------------------------------ uninstall ---


@cli.command("uninstall", epilog=EPILOGS["uninstall"])
@click.option("--purge", is_flag=True,
              help="also remove the config, the crash and sample history and the logs")
@root_option
@dry_run_option
@config_option
def uninstall_cmd(purge: bool, root: Path, dry_run: bool, config_path: str | None) -> None:
    """Reverse 'taucg install'.

    Stop the daemon, remove the units, links,
    man pages and completions it wrote, and return the tiers to systemd's
    defaults (the slices and drop-ins apply wrote, the live settings, the
    empty tier slices stopped). The config and the history stay unless
    --purge. Running it again finds nothing to do."""
    from taucg.actors import install as ins
    from taucg.config.schema import TIER_NAMES
    from taucg.faces.units import SERVICE_UNITS
    from taucg.model.tiers import PARENT, slice_name

    _check_root(root, dry_run, "uninstall")
    cfg, logging = _logging_under(root, config_path)
    try:
        manifest = ins.read_manifest(root)
    except ins.InstallError as exc:
        raise UserError(str(exc)) from None
    purged: list[PurePosixPath] = []
    if purge:
        from taucg.actors.records import refusals_path

        lg = cfg.logging
        purged = ins.expand_rotated(root, ins.purge_paths(
            cfg.crash_recovery.state_directory, str(CONFIG),
            (lg.audit_log_path, lg.performance_log_path, lg.log_file_path,
             str(refusals_path(lg)))))
    if dry_run:
        steps = ins.plan_uninstall(root, manifest, purged)
        if root == Path("/") and manifest is not None:
            steps = [ins.Step("stop", unit) for unit in SERVICE_UNITS] + steps
        _show(steps or [ins.Step("note", "taucg", "nothing to remove")])
        raise click.exceptions.Exit(DRY_RUN_CHANGES if any(s.action in CHANGES for s in steps)
                                    else 0)
    slices = [*(slice_name(t) for t in reversed(TIER_NAMES)), PARENT]
    if root == Path("/"):
        async def run(client: Any) -> list[Any]:
            steps = await ins.stop_units(client, SERVICE_UNITS)
            steps += ins.uninstall(root, manifest, purged)
            return steps + await ins.release_tiers(client, slices)

        steps = with_systemd(run)
    else:
        steps = ins.uninstall(root, manifest, purged)
    _show(steps)
    removed = [s for s in steps if s.action in ("remove", "stop")]
    if not purge:
        # A purge removed the audit log itself; a record now would leave a
        # new taucg file behind.
        for step in removed:
            audit(logging, f"uninstall {step.action}", step.path, before="present",
                  after="absent", config=cfg.file)
    click.echo(f"uninstalled: {len(removed)} change(s)" if removed
               else "nothing to remove: taucg is not installed here")
