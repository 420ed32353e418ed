"""The kernel log reader on a pipe that behaves like /dev/kmsg (one record
per read, nothing blocks), and on this machine's own /dev/kmsg."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taucg.readers.kmsg import KMSG, KernelLog
from tests.unit.test_limits import RECORD


def test_kernel_log_reads_records_as_they_come(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    log = KernelLog(str(fifo))
    assert log.unavailable is None
    writer = os.open(fifo, os.O_WRONLY)
    try:
        assert log.oom_kills() == []  # nothing yet: returns at once
        os.write(writer, RECORD)
        assert [k.pid for k in log.oom_kills()] == [4242]
        os.write(writer, b"6,2,3,-;eth0: link up\n")
        assert log.oom_kills() == []
    finally:
        os.close(writer)
        log.close()


def test_kernel_log_unavailable_says_why(tmp_path: Path) -> None:
    log = KernelLog(str(tmp_path / "absent"))
    assert log.oom_kills() == []
    assert log.unavailable is not None and "absent" in log.unavailable


def test_the_real_kernel_log_opens_at_its_end() -> None:
    if not os.access(KMSG, os.R_OK):
        pytest.skip(f"{KMSG} is not readable here")
    log = KernelLog()
    try:
        assert log.unavailable is None
        # Opened at the end: the boot's messages are not read back, and a
        # read with nothing new returns at once instead of blocking.
        assert log.oom_kills() == []
    finally:
        log.close()
