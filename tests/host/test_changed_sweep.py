"""The changed-only sweep against real processes of the test's own: a busy
one is reported changed, an idle one only until it settles, an exited one
gone, a new one new."""

from __future__ import annotations

import subprocess
import sys

from taucg.readers.sampler import Sampler
from taucg.readers.samples import ProcessChanges
from tests.support.waiting import wait_for

IDLE = ["sleep", "3600"]


def _settled(sampler: Sampler, pid: int) -> bool:
    # Until it has exec'd and gone to sleep its line still changes.
    return pid not in {r.pid for r in sampler.process_changes().changed}


def _with(sampler: Sampler, pid: int) -> ProcessChanges | None:
    ch = sampler.process_changes(rescan=False)
    return ch if pid in {r.pid for r in ch.changed} else None


def test_busy_is_changed_idle_is_not_and_exits_are_gone() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen(IDLE)
    try:
        sampler = Sampler()
        first = sampler.process_changes()
        assert {busy.pid, idle.pid} <= {r.pid for r in first.changed}
        assert all(r.is_new for r in first.changed)
        wait_for(lambda: _settled(sampler, idle.pid), 60, "the idle child to settle")
        # Settled: several sweeps in a row leave it out, while the busy one,
        # given CPU time between them, is reported with its time grown.
        before = None
        for _ in range(3):
            ch: ProcessChanges = wait_for(lambda: _with(sampler, busy.pid), 60,
                                          "the busy child to change")
            assert idle.pid not in {r.pid for r in ch.changed}
            rec = next(r for r in ch.changed if r.pid == busy.pid)
            assert not rec.is_new and rec.state in ("R", "S")
            if before is not None:
                assert rec.cpu_seconds >= before
            before = rec.cpu_seconds
        st = sampler.last_process_stats
        assert st is not None and st.unchanged >= 1 and st.parsed < st.listed
        start = next(r.start_seconds for r in first.changed if r.pid == idle.pid)
        idle.kill()
        idle.wait()
        gone = wait_for(lambda: sampler.process_changes(rescan=False).gone or None, 60,
                        "the killed child to be reported gone")
        assert (idle.pid, start) in gone
        assert (idle.pid, start) not in sampler.process_changes().gone  # once only
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()


def test_a_new_process_is_reported_new_once() -> None:
    sampler = Sampler()
    sampler.process_changes()
    child = subprocess.Popen(IDLE)
    try:
        ch = sampler.process_changes()
        rec = next(r for r in ch.changed if r.pid == child.pid)
        assert rec.is_new
        wait_for(lambda: _settled(sampler, child.pid), 60, "the new child to settle")
    finally:
        child.kill()
        child.wait()
