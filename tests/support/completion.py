"""Shell completion as a shell asks for it: a `python -m taucg` child with
the variables the installed scripts set (_TAUCG_COMPLETE, COMP_WORDS,
COMP_CWORD), so click's own machinery answers, as it does on a Tab press.

Fish's format is the one read by default because it carries the help text
("plain,VALUE\\tHELP"); bash's ("plain,VALUE") is the same without it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# A hang guard, not a measurement: completion must come back on its own.
# Generous for the VM, whose emulated CPU starts Python slowly.
HANG = 300.0

Item = tuple[str, str, str]  # type ("plain", "file"), value, help


def complete(line: str, *, shell: str = "fish", env: Mapping[str, str] | None = None,
             cwd: Path | None = None) -> tuple[list[Item], str]:
    """Completes the last word of `line` (after a trailing space: a new,
    empty word). Returns the candidates and what was printed on stderr."""
    words = line.split(" ")
    # Fish passes the word itself, bash and zsh its index.
    cword = words[-1] if shell == "fish" else str(len(words) - 1)
    full = {**os.environ, **(env or {}), "_TAUCG_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": line, "COMP_CWORD": cword}
    r = subprocess.run([sys.executable, "-m", "taucg"], capture_output=True, text=True,
                       env=full, timeout=HANG, check=False, cwd=cwd)
    assert r.returncode == 0, f"completion of {line!r} exited {r.returncode}: {r.stderr}"
    items = []
    for out in r.stdout.splitlines():
        kind, _, rest = out.partition(",")
        value, _, help_text = rest.partition("\t")
        items.append((kind, value, help_text))
    return items, r.stderr


def values(items: list[Item]) -> list[str]:
    return [v for kind, v, _ in items if kind == "plain"]
