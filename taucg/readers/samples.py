"""The records taucg.readers.sampler returns: seconds and bytes, and None
(never 0) for what the kernel does not provide. The conversion from raw
kernel units happens in sampler.py, once, so nothing above readers sees a
clock tick.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, NamedTuple

from taucg.readers._sampler import lib

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative CPU time in seconds since boot; ``cpu`` is None for the total."""

    cpu: int | None
    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float
    guest: float
    guest_nice: float

    @property
    def total(self) -> float:
        # guest and guest_nice are already counted inside user and nice.
        return (
            self.user + self.nice + self.system + self.idle + self.iowait
            + self.irq + self.softirq + self.steal
        )

    @property
    def busy(self) -> float:
        return self.total - self.idle - self.iowait


@dataclass(frozen=True, slots=True)
class PressureLine:
    """One PSI line: averages are percent of wall time, total is seconds stalled."""

    avg10: float
    avg60: float
    avg300: float
    total_seconds: float


@dataclass(frozen=True, slots=True)
class Pressure:
    """A pressure file. ``full`` is None where the kernel does not report it
    (for example cpu before Linux 5.13)."""

    some: PressureLine
    full: PressureLine | None


@dataclass(frozen=True, slots=True)
class MemInfo:
    """/proc/meminfo in bytes; ``available`` is None on kernels without MemAvailable."""

    total: int
    free: int
    available: int | None
    buffers: int
    cached: int
    swap_total: int
    swap_free: int
    shmem: int
    sreclaimable: int
    dirty: int
    writeback: int
    anon: int
    mapped: int
    slab: int

    @property
    def used(self) -> int:
        if self.available is not None:
            return self.total - self.available
        return self.total - self.free - self.buffers - self.cached


@dataclass(frozen=True, slots=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int
    threads: int
    last_pid: int


@dataclass(frozen=True, slots=True)
class NetDevice:
    """Cumulative counters of one interface, from /proc/net/dev."""

    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size


@dataclass(frozen=True, slots=True)
class DiskStats:
    """Cumulative counters of one block device, from /proc/diskstats."""

    major: int
    minor: int
    name: str
    reads: int
    read_bytes: int
    read_seconds: float
    writes: int
    write_bytes: int
    write_seconds: float
    in_flight: int
    busy_seconds: float


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One whole-system sample. A source the kernel lacks is None, never zero."""

    monotonic: float
    cpu: CpuTimes | None
    cpus: tuple[CpuTimes, ...]
    context_switches: int | None
    boot_time: int | None
    forks: int | None
    procs_running: int | None
    procs_blocked: int | None
    memory: MemInfo | None
    load: LoadAvg | None
    pressure_cpu: Pressure | None
    pressure_memory: Pressure | None
    pressure_io: Pressure | None
    net: tuple[NetDevice, ...] = ()
    disks: tuple[DiskStats, ...] = ()


class ProcessSample(NamedTuple):
    """One process from /proc/PID/stat, in seconds and bytes.

    A tuple (built straight from the C array) because a sweep makes
    thousands of them; (pid, start_seconds) identifies a process, since
    PIDs are reused."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    threads: int
    priority: int
    nice: int
    processor: int
    rt_priority: int
    policy: int
    flags: int
    state_raw: bytes
    comm_raw: bytes
    user_seconds: float
    system_seconds: float
    start_seconds: float  # after boot
    vsize: int
    rss: int
    minor_faults: int
    major_faults: int

    @property
    def comm(self) -> str:
        return self.comm_raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    @property
    def state(self) -> str:
        return self.state_raw.decode("ascii", "replace")

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds

    @property
    def is_new(self) -> bool:
        """First seen in this sweep (or its PID now belongs to a new process)."""
        return bool(self.flags & lib.TAU_PROC_NEW)


@dataclass(frozen=True, slots=True)
class ProcessSweepStats:
    listed: int
    parsed: int
    vanished: int
    kept_fds: int
    fallback_reads: int
    errors: int
    seconds: float
    unchanged: int = 0  # changed-only sweeps: read, the same as last time, no record


@dataclass(frozen=True, slots=True)
class ProcessChanges:
    """What a changed-only sweep saw since the previous one: a record per
    process that is new (``is_new``; also a PID now held by another process)
    or whose /proc/PID/stat line changed, and the (pid, start_seconds) of
    every process reported before that has exited."""

    changed: list[ProcessSample]
    gone: list[tuple[int, float]]


UNLIMITED: Literal["max"] = "max"
Limit = int | Literal["max"]


@dataclass(frozen=True, slots=True)
class CgroupCpu:
    usage_seconds: float
    user_seconds: float
    system_seconds: float
    periods: int
    throttled_periods: int
    throttled_seconds: float


@dataclass(frozen=True, slots=True)
class CgroupMemoryStat:
    anon: int
    file: int
    shmem: int
    sock: int
    pgfault: int
    pgmajfault: int


@dataclass(frozen=True, slots=True)
class CgroupMemoryEvents:
    low: int
    high: int
    max: int
    oom: int
    oom_kill: int


@dataclass(frozen=True, slots=True)
class CgroupIo:
    read_bytes: int
    write_bytes: int
    read_ios: int
    write_ios: int


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """One cgroup's files. A field is None when its file is absent (the
    controller is not enabled there), never 0; "max" means no limit."""

    path: str
    monotonic: float
    cpu: CgroupCpu | None
    memory_current: int | None
    memory_max: Limit | None
    memory_high: Limit | None
    memory_stat: CgroupMemoryStat | None
    memory_events: CgroupMemoryEvents | None
    pids_current: int | None
    pids_max: Limit | None
    io: CgroupIo | None
    pressure_cpu: Pressure | None
    pressure_memory: Pressure | None
    pressure_io: Pressure | None
    populated: bool | None
    frozen: bool | None


EventKind = Literal["fork", "exec", "exit", "lost"]


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """A proc connector event. ``lost`` means the kernel dropped events
    (the socket overflowed): rescan /proc to catch up."""

    kind: EventKind
    pid: int
    tgid: int
    parent_pid: int = 0
    parent_tgid: int = 0
    exit_status: int | None = None  # exit: the code passed to exit()
    killed_by: int | None = None  # exit: the signal that killed it
    timestamp: float = 0.0  # seconds, kernel monotonic clock
