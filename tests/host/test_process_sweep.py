"""The C process sweep against real processes and psutil."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from taucg.readers.sampler import Sampler
from taucg.readers.samples import PAGE_SIZE, ProcessSample
from tests.support.waiting import wait_for


def _by_pid(records: list, pid: int):  # type: ignore[no-untyped-def]
    found = [r for r in records if r.pid == pid]
    assert found, f"pid {pid} missing from the sweep"
    return found[0]


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_at_least(sampler: Sampler, pid: int, size: int) -> ProcessSample | None:
    r = _by_pid(sampler.processes(), pid)
    return r if r.rss >= size else None


def test_busy_child_utime_grows_and_rss_matches_psutil() -> None:
    # Busy until the test kills it; growth is waited for in CPU seconds,
    # which a loaded machine hands out slowly.
    code = "x = bytearray(64 << 20)\nwhile True: pass"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        sampler = Sampler()
        first = wait_for(lambda: _rss_at_least(sampler, child.pid, 64 << 20), 120,
                         "the child's 64 MiB to be resident")
        second = wait_for(
            lambda: (r := _by_pid(sampler.processes(), child.pid)).user_seconds
            - first.user_seconds >= 0.2 and r, 120, "0.2 s more of the child's user time")
        assert second.start_seconds == first.start_seconds
        assert not second.is_new
        assert second.ppid == os.getpid()
        assert second.state == "R"
        ps_rss = psutil.Process(child.pid).memory_info().rss
        assert abs(second.rss - ps_rss) <= 256 * PAGE_SIZE
        assert second.rss >= 64 << 20  # bytearray pages are touched
        assert second.vsize >= second.rss
    finally:
        child.kill()
        child.wait()


def test_comm_with_spaces_and_parens() -> None:
    name = "a b) (c)"
    code = ("import sys, time\nopen('/proc/self/comm', 'w').write(sys.argv[1])\n"
            "print('ready', flush=True)\nimport signal\nwhile True: signal.pause()")
    child = subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        rec = _by_pid(Sampler().processes(), child.pid)
        assert rec.comm == name
        assert rec.state in ("R", "S")  # it may not be asleep yet
        assert rec.threads == 1
    finally:
        child.kill()
        child.wait()


def test_new_flag_and_pid_set_match_proc() -> None:
    sampler = Sampler()
    sampler.processes()
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert _by_pid(sampler.processes(), child.pid).is_new
        records = sampler.processes()
        assert not _by_pid(records, child.pid).is_new
        listed = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        swept = {r.pid for r in records}
        # Processes come and go between the two listings; nearly all agree.
        assert len(swept & listed) >= 0.9 * len(listed)
    finally:
        child.kill()
        child.wait()


def test_fd_budget_falls_back_without_losing_processes() -> None:
    children = [subprocess.Popen(["sleep", "30"]) for _ in range(20)]
    try:
        small, large = Sampler(fd_budget=5), Sampler(fd_budget=100_000)
        a = {r.pid for r in small.processes()}
        b = {r.pid for r in large.processes()}
        assert {c.pid for c in children} <= a
        assert len(a ^ b) <= 3  # other processes may start or stop in between
        assert small.last_process_stats is not None
        assert small.last_process_stats.kept_fds <= 5
        assert small.last_process_stats.fallback_reads >= len(a) - 5 - 3
    finally:
        for c in children:
            c.kill()
            c.wait()


def test_churn_raises_nothing_and_fds_return_to_baseline() -> None:
    sampler = Sampler()
    sampler.processes()
    baseline = _fd_count()
    launched = 0
    live: list[subprocess.Popen[bytes]] = []
    while launched < 1000:
        for _ in range(50):
            live.append(subprocess.Popen(["/bin/true"]))
            launched += 1
        sampler.processes()
        for p in live[:-10]:
            p.wait()
        live = live[-10:]
        sampler.processes(rescan=False)
    for p in live:
        p.wait()
    sampler.processes()
    assert _fd_count() <= baseline + 2
    stats = sampler.last_process_stats
    assert stats is not None and stats.errors == 0


def test_tracked_sweep_follows_and_drops() -> None:
    sampler = Sampler()
    sampler.processes()
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid not in {r.pid for r in sampler.processes(rescan=False)}
        sampler.track([child.pid])
        assert child.pid in {r.pid for r in sampler.processes(rescan=False)}
    finally:
        child.kill()
        child.wait()
    assert child.pid not in {r.pid for r in sampler.processes(rescan=False)}


@pytest.mark.parametrize("budget", [0, 3])
def test_zero_and_tiny_budgets(budget: int) -> None:
    records = Sampler(fd_budget=budget).processes()
    assert any(r.pid == os.getpid() for r in records)
