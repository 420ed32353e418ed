"""taucg(1) and taucg.toml(5) render cleanly (groff -ww: every warning)
and hold every command and every config key; the completions complete.
Needs groff and man-db (scripts/setup installs groff-base and man-db)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import click
import pytest

from taucg.faces.cli.common import cli
from taucg.faces.cli.manpage import command_page, commands
from taucg.faces.config_manpage import sections
from tests.support.cli import taucg


def render(roff: str) -> str:
    """groff with all warnings; a warning fails the test."""
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=200n"], input=roff,
                       capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), f"groff warned:\n{r.stderr}"
    # Bold and underline are overstrikes on a terminal device.
    return re.sub(r".\x08", "", r.stdout)


def test_command_page_renders_and_holds_every_command() -> None:
    text = render(taucg("man", "--section", "1").stdout)
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "FILES",
                    "SEE ALSO"):
        assert f"\n{heading}\n" in text, heading
    paths = commands(cli)
    assert {"taucg apply", "taucg install", "taucg recovery history", "taucg config check"} \
        <= set(paths)
    for path in paths:
        assert re.search(rf"^   {re.escape(path)}$", text, re.M), f"no section for {path}"
    assert "--dry-run" in text and "--restart-moved" in text


def test_config_page_renders_and_holds_every_key() -> None:
    text = render(taucg("man", "--section", "5").stdout)
    for sec in sections():
        start = text.index(f"\n{sec.pattern}\n")
        following = text[start + 1:]
        end = re.search(r"^\S", following[len(sec.pattern) + 1:], re.M)
        body = following[: len(sec.pattern) + 1 + (end.start() if end else len(following))]
        for key in sec.keys:
            assert re.search(rf"^       {key.name} \(", body, re.M), f"{sec.pattern} {key.name}"
    assert 'default: 30.' in text  # resource_monitoring.interval_seconds
    assert "built-in: critical 1000; high 400" in text  # tiers.TIER.cpu_weight


def test_man_reads_the_pages(tmp_path: Path) -> None:
    page = tmp_path / "taucg.1"
    page.write_text(command_page(cli))
    r = subprocess.run(["man", "-l", "-P", "cat", str(page)], capture_output=True, text=True,
                       check=False, timeout=60, env={**os.environ, "MANWIDTH": "100"})
    assert r.returncode == 0, r.stderr
    assert "taucg - cgroup v2 resource tiers on systemd" in re.sub(r".\x08", "", r.stdout)


def test_epilog_and_verbatim_help_reach_the_page() -> None:
    @click.group()
    def toy() -> None:
        """A toy."""

    @toy.command("go", epilog="Examples:\n\n\b\n  toy go --fast\n  toy go .hidden")
    @click.option("--fast", is_flag=True, help="go -fast\\ly")
    def go(fast: bool) -> None:
        """Go somewhere.\f(not shown)"""

    text = render(command_page(toy))
    assert "toy go --fast\n" in text and "toy go .hidden" in text
    assert "(not shown)" not in text
    assert "go -fast\\ly" in text


@pytest.mark.parametrize(("words", "cword", "want"), [
    ("taucg ins", "1", "install"), ("taucg install --en", "2", "--enable"),
    ("taucg man --section ", "3", "5"),
])
def test_bash_completion_completes(words: str, cword: str, want: str) -> None:
    r = taucg(env={"COMP_WORDS": words, "COMP_CWORD": cword,
                   "_TAUCG_COMPLETE": "bash_complete"})
    assert f"plain,{want}" in r.stdout.splitlines(), r.stdout
