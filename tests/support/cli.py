"""The one runner of the `taucg` command for the host and VM tiers.

Tests run the real command in a child process (`python -m taucg`), so the
exit status, stdout and stderr they check are what an admin would see."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping

import pytest

Arg = str | os.PathLike[str]

# Generous on purpose: the VM emulates its CPU, and an apply or a first
# import of the daemon's modules there takes minutes, not seconds.
DEFAULT_TIMEOUT = 600.0


def taucg_argv(*args: Arg, config: Arg | None = None) -> list[str]:
    """The command line of `taucg ARGS [--config CONFIG]`, for callers that
    need a long-running process (Popen) rather than taucg()."""
    words = [os.fspath(a) for a in args]
    if config is not None:
        # Words after "--" belong to the command `taucg run` starts, so the
        # option must come before them.
        at = words.index("--") if "--" in words else len(words)
        words[at:at] = ["--config", os.fspath(config)]
    return [sys.executable, "-m", "taucg", *words]


def taucg(*args: Arg, config: Arg | None = None, check: bool = True,
          timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    """Runs `taucg ARGS` to completion and returns what it printed.

    check: a nonzero exit fails the test, showing the command and its output;
    pass check=False to assert on the exit status yourself.
    env: variables added to this process's environment (not a replacement)."""
    argv = taucg_argv(*args, config=config)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})}, check=False)
    if check and r.returncode != 0:
        pytest.fail(f"taucg {shlex.join(argv[3:])} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r
