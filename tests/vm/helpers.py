"""Helpers shared by the VM tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from taucg.actors.systemd_dbus import UNIT, JobFailed, SystemdError
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.waiting import wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Units:
    """Hands out unique unit names and removes every unit a test made."""

    _counter = itertools.count()

    def __init__(self, client: BlockingSystemd) -> None:
        self.client = client
        self.made: list[str] = []

    def name(self, label: str, suffix: str = "service") -> str:
        name = f"taucg-test-{label}-{os.getpid()}-{next(self._counter)}.{suffix}"
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        # Services and scopes first, slices last: stopping a slice stops its
        # members too, but the order keeps each stop's job small.
        for name in sorted(self.made, key=lambda n: n.endswith(".slice")):
            for action in (self.client.stop, self.client.reset_failed):
                with contextlib.suppress(SystemdError):
                    action(name)


def cgroup_dir(systemd: BlockingSystemd, unit: str) -> Path:
    interface = {"service": "org.freedesktop.systemd1.Service",
                 "scope": "org.freedesktop.systemd1.Scope",
                 "slice": "org.freedesktop.systemd1.Slice"}[unit.rsplit(".", 1)[1]]
    group = systemd.get_property(unit, "ControlGroup", interface)
    assert group, f"{unit} has no control group (is it running?)"
    return CGROUP_ROOT / str(group).lstrip("/")


def unit_state(systemd: BlockingSystemd, unit: str) -> str:
    return str(systemd.get_property(unit, "ActiveState", UNIT))


def stop_process(proc: subprocess.Popen[bytes] | None) -> bool:
    """SIGTERM, as systemctl stop would, to a process the test started;
    SIGKILL after 120 s. False when it had to be killed."""
    if proc is None or proc.poll() is not None:
        return True
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=60)
        return False
    return True


class StderrLog:
    """A child's stderr, read on a thread as it is written, so a test can
    wait for a line (a ready message) and still see everything at the end."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None, "start the child with stderr=subprocess.PIPE"
        self.proc = proc
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float) -> None:
        """Until a line holding needle was written; fails if the child exits first."""
        def seen() -> bool:
            if needle in self.text():
                return True
            assert self.proc.poll() is None, \
                f"exited with {self.proc.returncode} before {needle!r}:\n{self.text()}"
            return False
        wait_for(seen, timeout, f"{needle!r} on the child's stderr")

    def finish(self, timeout: float = 60) -> str:
        """Everything it wrote, once the child has exited (the caller ends it)."""
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return self.text()


ROOT = Path(__file__).resolve().parents[2]
DAEMON_UNIT = "taucg.service"
DAEMON_UNIT_FILE = Path("/etc/systemd/system") / DAEMON_UNIT
DAEMON_DROPIN = Path("/etc/systemd/system/taucg.service.d/50-test.conf")
DAEMON_CONFIG = Path("/etc/taucg/taucg.toml")
DAEMON_LINK = Path("/usr/local/bin/taucg")


@contextlib.contextmanager
def installed_daemon(systemd: BlockingSystemd, config: str, dropin: str = "") -> Iterator[None]:
    """The shipped taucg.service, started on config, stopped and removed after.

    dropin adds [Service] lines (a shorter watchdog, say) in a drop-in."""
    shutil.copy(ROOT / "units" / DAEMON_UNIT, DAEMON_UNIT_FILE)
    DAEMON_DROPIN.parent.mkdir(parents=True, exist_ok=True)
    # The checkout may live under /tmp (a CI clone), which PrivateTmp=yes
    # hides from the service; bind it back in, read-only.
    # PYTHONPATH: the venv's entry script imports this checkout, wherever
    # the venv's editable install points (a worktree shares its venv).
    DAEMON_DROPIN.write_text(f"[Service]\n{dropin}BindReadOnlyPaths={ROOT}\n"
                             f"Environment=PYTHONPATH={ROOT}\n")
    DAEMON_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_CONFIG.write_text(config)
    if DAEMON_LINK.exists() or DAEMON_LINK.is_symlink():
        DAEMON_LINK.unlink()
    DAEMON_LINK.symlink_to(Path(sys.executable).parent / "taucg")
    systemd.reload()
    try:
        try:
            systemd.start(DAEMON_UNIT, timeout=300)
        except JobFailed:
            journal = subprocess.run(["journalctl", "-u", DAEMON_UNIT, "-n", "30", "--no-pager"],
                                     capture_output=True, check=False, text=True).stdout
            pytest.fail(f"{DAEMON_UNIT} did not start:\n{journal}")
        yield
    finally:
        with contextlib.suppress(SystemdError):
            systemd.stop(DAEMON_UNIT, timeout=120)
        with contextlib.suppress(SystemdError):  # an inactive unit may be unloaded already
            systemd.reset_failed(DAEMON_UNIT)
        for p in (DAEMON_DROPIN, DAEMON_UNIT_FILE, DAEMON_CONFIG, DAEMON_LINK):
            p.unlink(missing_ok=True)
        systemd.reload()
