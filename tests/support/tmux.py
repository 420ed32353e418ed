"""A terminal program under test in a tmux session on a private tmux server:
keys in (send-keys), the screen out (capture-pane). The program runs in a
shell that prints its exit status when it ends and then waits, so the
status stays on screen to be read."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence

from tests.support.waiting import wait_for

EXITED = re.compile(r"^program exited (\d+)$", re.M)


class Terminal:
    def __init__(self, argv: Sequence[str], width: int = 200, height: int = 50,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.server = f"taucg-test-{os.getpid()}-{id(self)}"
        words = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        # LINES and COLUMNS (pytest's terminal leaves them) would override
        # the pane's real size for the program.
        line = (f"unset LINES COLUMNS; cd {shlex.quote(cwd or os.getcwd())} && "
                f"{words} {shlex.join(argv)}; "
                "echo; echo \"program exited $?\"; exec sleep 86400")
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                   "sh", "-c", line)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True,
                              text=True, check=True, timeout=60).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait(self, predicate: Callable[[str], object], what: str,
             timeout: float = 120) -> str:
        """The first screen for which predicate is truthy."""
        seen: list[str] = []

        def check() -> bool:
            seen[:] = [self.screen()]
            return bool(predicate(seen[0]))

        try:
            wait_for(check, timeout, what)
        except BaseException:
            print(f"--- the last screen ---\n{seen[0] if seen else ''}")
            raise
        return seen[0]

    def exit_status(self, timeout: float = 60) -> int:
        screen = self.wait(EXITED.search, "the program to exit", timeout)
        m = EXITED.search(screen)
        assert m is not None
        return int(m.group(1))

    def close(self) -> None:
        # Our own private server: ends the shell and anything still in it.
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True,
                       check=False, timeout=60)
