"""Host fixtures: a real `taucg daemon` process on a private socket.

The daemon runs without systemd here (no system bus), which is itself a
case worth covering: sampling, health, the API and the logs work, and
placement and recovery wait for a bus."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taucg.faces.socket_client import DaemonNotRunning, call
from tests.support.cli import taucg_argv
from tests.support.configs import Section, daemon_config

# The checkout under test: `python -m taucg` from here imports its code, where
# the venv's `taucg` script would import whatever tree the venv was installed from.
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the entry-point scripts; run them with env()


@dataclass
class RunningDaemon:
    root: Path
    config: Path
    socket: Path
    proc: subprocess.Popen[bytes]

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def call(self, method: str, **params: object) -> object:
        return call(self.socket, method, params, timeout=20)

    def env(self) -> dict[str, str]:
        # PYTHONPATH: the venv's scripts import this checkout, not the venv's own.
        return {**os.environ, "TAUCG_CONFIG": str(self.config), "PYTHONPATH": str(REPO)}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # our own child, by PID
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_until_serving(sock: Path, proc: subprocess.Popen[bytes] | None,
                       timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = sock.parent / "daemon.out"
            text = out.read_text() if out.exists() else ""
            raise AssertionError(f"daemon exited {proc.returncode}: {text}")
        try:
            call(sock, "ping", timeout=5)
            return
        except DaemonNotRunning:
            time.sleep(0.1)
    raise AssertionError(f"daemon did not answer on {sock} within {timeout}s")


@pytest.fixture
def daemon_root() -> Iterator[Path]:
    # Not tmp_path: pytest makes that 0700, and the access tests connect as
    # nobody, who must reach the socket's directory.
    root = Path(tempfile.mkdtemp(prefix="taucg-daemon-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def start_daemon(daemon_root: Path) -> Iterator[object]:
    started: list[RunningDaemon] = []

    def start(group: str = "root", **sections: Section) -> RunningDaemon:
        config = daemon_config(daemon_root, group, **sections)
        # A file, not a pipe: nobody drains a pipe while the test runs.
        with open(daemon_root / "daemon.out", "ab") as out:
            proc = subprocess.Popen(taucg_argv("daemon", config=config), cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT)
        d = RunningDaemon(daemon_root, config, daemon_root / "taucg.sock", proc)
        started.append(d)
        wait_until_serving(d.socket, proc)
        return d

    yield start
    for d in started:
        d.stop()
