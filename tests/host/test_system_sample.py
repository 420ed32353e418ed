"""The C system sample against this machine's real /proc and psutil."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import psutil
import pytest

from taucg.readers.sampler import Sampler
from taucg.readers.samples import CLOCK_TICKS_PER_SECOND


def _meminfo_kb() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


def test_memory_agrees_with_direct_read() -> None:
    s = Sampler().system()
    direct = _meminfo_kb()
    assert s.memory is not None
    assert s.memory.total == direct["MemTotal"] * 1024  # constant
    # Free memory moves between the two reads; allow 64 MiB.
    assert abs(s.memory.free - direct["MemFree"] * 1024) < 64 << 20
    if "MemAvailable" in direct:
        assert s.memory.available is not None


def test_memory_agrees_with_psutil() -> None:
    s = Sampler().system()
    vm = psutil.virtual_memory()
    assert s.memory is not None
    assert s.memory.total == vm.total
    assert s.memory.available is not None
    assert abs(s.memory.available - vm.available) < 64 << 20


def test_cpu_times_agree_with_psutil() -> None:
    s = Sampler().system()
    ps = psutil.cpu_times()
    assert s.cpu is not None
    tick = 1 / CLOCK_TICKS_PER_SECOND
    # Counters only move forward between our read and psutil's, by little.
    assert 0 <= ps.user - s.cpu.user < 2.0 + tick
    assert 0 <= ps.idle - s.cpu.idle < 4.0 + tick
    assert len(s.cpus) == psutil.cpu_count()


def test_cpu_counters_grow_under_load() -> None:
    sampler = Sampler()
    before = sampler.system()
    pid = os.fork()
    if pid == 0:  # a busy child for about 0.3 s of CPU
        end = os.times().elapsed + 0.3
        while os.times().elapsed < end:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    after = sampler.system()
    assert before.cpu is not None
    assert after.cpu is not None
    assert after.cpu.busy - before.cpu.busy >= 0.2
    assert after.forks is not None
    assert before.forks is not None
    assert after.forks > before.forks


def test_loadavg_and_pressure_agree_with_direct_read() -> None:
    s = Sampler().system()
    fields = Path("/proc/loadavg").read_text().split()
    assert s.load is not None
    assert abs(s.load.load15 - float(fields[2])) < 0.05
    if not Path("/proc/pressure/cpu").exists():
        assert s.pressure_cpu is None
        pytest.skip("this kernel has no PSI (/proc/pressure missing)")
    assert s.pressure_cpu is not None
    direct = Path("/proc/pressure/cpu").read_text().split()[4]
    assert direct.startswith("total=")
    assert int(direct[6:]) / 1e6 >= s.pressure_cpu.some.total_seconds


def test_fds_stay_open_and_are_reused() -> None:
    # Objects from earlier tests close their fds when the cyclic GC finds
    # them; collect first and keep the GC off so only this sampler counts.
    gc.collect()
    gc.disable()
    try:
        sampler = Sampler()
        sampler.system()
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            sampler.system()
        assert len(os.listdir("/proc/self/fd")) == before
        sampler.close()
        assert len(os.listdir("/proc/self/fd")) < before
    finally:
        gc.enable()


def test_net_and_disk_rows_survive_a_short_array() -> None:
    from taucg.readers._sampler import ffi

    sampler = Sampler()
    sampler._netdevs = ffi.new("struct tau_netdev[]", 1)  # force the grow-and-reread path
    sampler._diskrows = ffi.new("struct tau_disk[]", 1)
    s = sampler.system()
    names = [line.split(":")[0].strip()
             for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    assert sorted(d.name for d in s.net) == sorted(names)
    disks = [line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()]
    assert sorted(d.name for d in s.disks) == sorted(disks)
