"""taucg.readers.syscalls: each failure is an OSError with its errno and a
message naming the call, and ioprio_set really sets what it says.

Every failing call here is one the kernel rejects before changing
anything, so the test process keeps its namespaces and mounts."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from taucg.readers import syscalls

PID_ABOVE_MAX = (1 << 22) + 1  # past PID_MAX_LIMIT: no such process, ever


def test_flag_names_show_every_bit() -> None:
    names = {1: "ONE", 4: "FOUR"}
    assert syscalls.flag_names(0, names) == "0"
    assert syscalls.flag_names(5, names) == "ONE|FOUR"
    assert syscalls.flag_names(1 | 8, names) == "ONE|0x8"


def test_unshare_error_names_the_flags() -> None:
    # 0x1 is not a namespace or sharing flag: EINVAL before anything changes.
    with pytest.raises(OSError, match=r"unshare\(CLONE_NEWIPC\|0x1\): ") as caught:
        syscalls.unshare(syscalls.CLONE_NEWIPC | 0x1)
    assert caught.value.errno == errno.EINVAL


def test_setns_error_names_the_fd_and_kind() -> None:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(OSError, match=rf"setns\(fd {fd}, CLONE_NEWNET\): ") as caught:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
        assert caught.value.errno == errno.EINVAL
    finally:
        os.close(fd)



def ionice_of(pid: int) -> str:
    """The IO priority as util-linux reads it back, independent of our code."""
    return subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True,
                          check=True).stdout.strip()

@pytest.mark.skipif(os.geteuid() != 0, reason="unprivileged mount fails with EPERM first")
def test_mount_error_names_source_target_and_type(tmp_path: Path) -> None:
    said = (f"mount('none' on '{tmp_path}', type 'taucg-no-such-fs', MS_NOSUID): "
            f"{os.strerror(errno.ENODEV)}")
    with pytest.raises(OSError, match=re.escape(said)) as caught:
        syscalls.mount("none", str(tmp_path), "taucg-no-such-fs", syscalls.MS_NOSUID)
    assert caught.value.errno == errno.ENODEV


def test_ioprio_set_on_a_missing_process_is_process_lookup_error() -> None:
    with pytest.raises(ProcessLookupError,
                       match=rf"ioprio_set\(process {PID_ABOVE_MAX}, class idle, level 0\)"):
        syscalls.ioprio_set(PID_ABOVE_MAX, syscalls.IOPRIO_CLASS_IDLE, 0)


@pytest.mark.parametrize(("io_class", "level"), [(4, 0), (-1, 0), (2, 8), (2, -1)])
def test_ioprio_set_rejects_what_would_spill_into_other_bits(io_class: int, level: int) -> None:
    with pytest.raises(ValueError, match="IO priority"):
        syscalls.ioprio_set(0, io_class, level)


@pytest.mark.skipif(shutil.which("ionice") is None, reason="needs ionice (util-linux)")
def test_ioprio_set_sets_what_ionice_reads_back() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        # Lowering a process's own IO priority needs no privilege.
        syscalls.ioprio_set(child.pid, syscalls.IOPRIO_CLASS_BE, 6)
        shown = ionice_of(child.pid)
        assert shown == "best-effort: prio 6"
        syscalls.ioprio_set(child.pid, syscalls.IOPRIO_CLASS_IDLE, 0)
        shown = ionice_of(child.pid)
        assert shown == "idle"
    finally:
        child.kill()
        child.wait()


def test_apply_priority_reports_a_gone_process() -> None:
    from taucg.actors.placement import PRIORITY_ROWS, apply_priority

    failed = apply_priority(PID_ABOVE_MAX, PRIORITY_ROWS[4])
    assert f"io priority: {os.strerror(errno.ESRCH)}" in failed
    assert len(failed) == 3  # nice and oom_score_adj fail too


@pytest.mark.skipif(shutil.which("ionice") is None, reason="needs ionice (util-linux)")
def test_apply_priority_sets_the_tier_row() -> None:
    from taucg.actors.placement import PRIORITY_ROWS, apply_priority

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert apply_priority(child.pid, PRIORITY_ROWS[3]) == []
        shown = ionice_of(child.pid)
        assert shown == "best-effort: prio 6"
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == 10
        assert Path(f"/proc/{child.pid}/oom_score_adj").read_text().strip() == "300"
        # The idle row passes no level: the idle class has none.
        assert apply_priority(child.pid, PRIORITY_ROWS[4]) == []
        shown = ionice_of(child.pid)
        assert shown == "idle"
    finally:
        child.kill()
        child.wait()
