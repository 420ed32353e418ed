"""Every --help page ends with examples the CLI accepts, every command has
a one-line help that fits, and `taucg --help` lists them in their order.

The examples are parsed by click itself (the same make_context the real
command line goes through, without running any command), so a renamed
option or a wrong value fails here rather than in a reader's shell."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from taucg.faces.cli.common import COMMAND_MODULES, cli
from taucg.faces.cli.examples import COMMAND_INDENT, HEADING, MEANING_INDENT
from taucg.faces.cli.main import tau_monitor

ROOTS: dict[str, click.Command] = {"taucg": cli, "tau-monitor": tau_monitor}
SHORT_HELP = 45  # what click's completion shows, and `taucg --help` at 80 columns


def walk(name: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
    """(path, command) for the command and everything below it."""
    yield name, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=name)
        for sub in command.list_commands(ctx):
            found = command.get_command(ctx, sub)
            assert found is not None, f"{name} {sub} does not resolve"
            yield from walk(f"{name} {sub}", found)


ALL = [(path, cmd) for root, top in ROOTS.items() for path, cmd in walk(root, top)]


def examples(epilog: str | None) -> list[tuple[str, str]]:
    """(command line, meaning) pairs from an epilog as examples.py writes it."""
    assert epilog and epilog.startswith(HEADING), "no examples in the epilog"
    lines = epilog.split("\n")
    commands = [i for i, line in enumerate(lines)
                if line.startswith(COMMAND_INDENT) and not line.startswith(MEANING_INDENT)]
    out = []
    for i in commands:
        meaning = lines[i + 1] if i + 1 < len(lines) else ""
        assert meaning.startswith(MEANING_INDENT) and meaning.strip(), \
            f"{lines[i].strip()!r} has no explanation under it"
        out.append((lines[i].strip(), meaning.strip()))
    return out


def argv(example: str) -> list[str]:
    """The words the program gets: no sudo, nothing after a pipe."""
    words = shlex.split(example)
    if words[0] == "sudo":
        words = words[1:]
    if "|" in words:
        words = words[:words.index("|")]
    return words


def parse(words: list[str]) -> str:
    """Parses a command line as the program would, raising click's error
    for anything it would refuse; returns the path of the command reached."""
    root = ROOTS[words[0]]
    ctx = root.make_context(words[0], words[1:])
    path = [words[0]]
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, args = ctx.command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, args, parent=ctx)
        path.append(name)
    return " ".join(path)


@pytest.fixture(autouse=True)
def files_need_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """An example naming an admin's file (save-state's FILE) is still a
    valid command line where that file is absent, as on this machine."""
    for _, cmd in ALL:
        for param in cmd.params:
            if isinstance(param.type, click.Path) and param.type.exists:
                relaxed = click.Path(exists=False, file_okay=param.type.file_okay,
                                     dir_okay=param.type.dir_okay,
                                     path_type=param.type.type)
                monkeypatch.setattr(param, "type", relaxed)


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_every_example_parses_and_runs_its_own_command(path: str,
                                                       command: click.Command) -> None:
    found = examples(command.epilog)
    assert 2 <= len(found) <= 3, f"{path}: {len(found)} examples, want 2 or 3"
    for example, _ in found:
        words = argv(example)
        program = path.split(maxsplit=1)[0]
        assert words[0] == program, f"{example!r} does not start with {program}"
        try:
            reached = parse(words)
        except click.ClickException as exc:
            pytest.fail(f"{path}: example {example!r} is refused: {exc.format_message()}")
        if path not in ROOTS:  # the programs' own pages may show any command
            assert reached == path, f"{example!r} on the page of {path!r} runs {reached!r}"


def test_the_parser_refuses_what_the_cli_refuses() -> None:
    """The check above can fail: a wrong option, a bad choice, a missing
    argument and an unknown command are each an error."""
    for bad in ("taucg status --bogus", "taucg processes --tier middle",
                "taucg recovery save-state", "taucg stauts", "taucg governor -n 0"):
        with pytest.raises(click.UsageError):
            parse(shlex.split(bad))
    assert parse(shlex.split("taucg recovery history --unit x")) == "taucg recovery history"


def test_examples_are_read_back_as_written() -> None:
    epilog = cli.get_command(click.Context(cli), "apply").epilog  # type: ignore[union-attr]
    assert examples(epilog)[0] == (
        "sudo taucg apply --dry-run",
        "print the plan: exit 0 if nothing would change, 10 if something would")


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_every_command_has_a_one_line_help_that_fits(path: str,
                                                     command: click.Command) -> None:
    short = command.get_short_help_str(SHORT_HELP)
    assert short, f"{path} has no help"
    assert not short.endswith("..."), f"{path}: {short!r} is cut; keep the first line short"


def test_help_lists_the_commands_in_their_order() -> None:
    r = subprocess.run([sys.executable, "-m", "taucg", "--help"], capture_output=True,
                       text=True, check=True, timeout=120)
    listed = r.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in listed.splitlines()]
    assert names == list(COMMAND_MODULES)
    assert names[:2] == ["config", "apply"]
    assert "Examples:" in r.stdout and "taucg status" in r.stdout
