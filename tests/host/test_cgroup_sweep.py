"""The cgroup sweep on this machine's real cgroup2 tree (core files only)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taucg.readers.sampler import Sampler
from tests.support.waiting import wait_for

UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    if not (UNIFIED / "cgroup.procs").exists():
        pytest.skip(f"needs a cgroup2 hierarchy at {UNIFIED}")
    path = UNIFIED / f"taucg-test-{os.getpid()}"
    try:
        path.mkdir()
    except PermissionError:
        pytest.skip(f"needs permission to create cgroups under {UNIFIED} (run as root)")
    yield path
    path.rmdir()


def test_cpu_stat_grows_when_a_busy_child_moves_in(child_cgroup: Path) -> None:
    sampler = Sampler()
    before = sampler.cgroups([str(child_cgroup)])[0]
    assert before is not None and before.cpu is not None
    assert before.cpu.usage_seconds == 0
    assert before.populated is False
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        (child_cgroup / "cgroup.procs").write_text(str(busy.pid))

        def used() -> float:
            s = sampler.cgroups([str(child_cgroup)])[0]
            assert s is not None and s.cpu is not None and s.populated is True
            return s.cpu.usage_seconds

        # A CPU-second count, not a time: on a loaded machine 0.3 s of CPU
        # can take far longer than 0.3 s.
        wait_for(lambda: used() >= 0.3, 120, "0.3 CPU seconds in the child cgroup")
    finally:
        busy.kill()
        busy.wait()
    wait_for(lambda: sampler.cgroups([str(child_cgroup)])[0].populated is False,  # type: ignore[union-attr]
             60, "the cgroup to be empty once the child is reaped")


def test_absent_controllers_are_none_not_zero(child_cgroup: Path) -> None:
    sample = Sampler().cgroups([str(child_cgroup)])[0]
    assert sample is not None
    controllers = (UNIFIED / "cgroup.controllers").read_text().split()
    if "memory" not in controllers:
        assert sample.memory_current is None and sample.memory_max is None
        assert sample.memory_events is None
    else:
        assert sample.memory_current is not None
    if "pids" not in controllers:
        assert sample.pids_current is None


def test_missing_and_removed_cgroups(child_cgroup: Path) -> None:
    sampler = Sampler()
    gone = child_cgroup / "sub"
    gone.mkdir()
    first = sampler.cgroups([str(gone), "/sys/fs/cgroup/unified/no-such-cgroup"])
    assert first[0] is not None and first[1] is None
    gone.rmdir()
    assert sampler.cgroups([str(gone)]) == [None]
    gone.mkdir()  # comes back: found again
    try:
        assert sampler.cgroups([str(gone)])[0] is not None
    finally:
        gone.rmdir()


def test_cgroup_fds_do_not_leak(child_cgroup: Path) -> None:
    gc.collect()  # earlier tests' objects must not close fds mid-count
    gc.disable()
    try:
        sampler = Sampler()
        sampler.cgroups([str(child_cgroup)])
        base = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            sampler.cgroups([str(child_cgroup)])
        assert len(os.listdir("/proc/self/fd")) == base
    finally:
        gc.enable()
