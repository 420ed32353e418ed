"""The CLI loads one command family per call, and knows every command."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import taucg.faces.cli
from taucg.faces.cli.common import COMMAND_MODULES, cli


def test_every_command_module_is_in_the_map_and_every_name_resolves() -> None:
    for info in pkgutil.iter_modules(taucg.faces.cli.__path__):
        if info.name.endswith("_cmds"):
            importlib.import_module(f"taucg.faces.cli.{info.name}")
    ctx = click.Context(cli)
    registered = set(cli.commands)
    assert registered == set(COMMAND_MODULES), "a command is missing from COMMAND_MODULES"
    for name, module in COMMAND_MODULES.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.callback is not None
        assert command.callback.__module__ == f"taucg.faces.cli.{module}"


def test_one_command_imports_only_its_own_family() -> None:
    code = ("import sys; sys.argv = ['taucg', 'config', '--monitoring', '--format', 'json'];"
            "from taucg.faces.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('taucg.faces.cli.')),"
            " file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False, timeout=120)
    loaded = r.stderr.strip().splitlines()[-1]
    assert "config_cmds" in loaded
    for other in ("monitor_cmds", "tier_cmds", "process_cmds", "recovery_cmds",
                  "daemon_cmds", "governor_cmds"):
        assert other not in loaded, loaded
