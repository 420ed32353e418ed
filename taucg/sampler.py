"""The Python face of the C sampler: typed records in seconds and bytes.

C returns raw kernel units (clock ticks, microseconds); the conversion to
seconds happens here, once, so nothing above this module sees a tick.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from taucg._sampler import ffi, lib

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class SamplerError(OSError):
    """A kernel file could not be read for a reason other than being absent."""


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


def _cpu_times(row: Any) -> CpuTimes:
    t = CLOCK_TICKS_PER_SECOND
    return CpuTimes(
        cpu=None if row.cpu < 0 else int(row.cpu),
        user=row.user / t,
        nice=row.nice / t,
        system=row.system / t,
        idle=row.idle / t,
        iowait=row.iowait / t,
        irq=row.irq / t,
        softirq=row.softirq / t,
        steal=row.steal / t,
        guest=row.guest / t,
        guest_nice=row.guest_nice / t,
    )


def _psi_line(line: Any) -> PressureLine:
    return PressureLine(
        avg10=line.avg10,
        avg60=line.avg60,
        avg300=line.avg300,
        total_seconds=line.total_us / 1_000_000,
    )


def pressure_from_c(psi: Any) -> Pressure | None:
    if not psi.has_some:
        return None
    return Pressure(
        some=_psi_line(psi.some),
        full=_psi_line(psi.full) if psi.has_full else None,
    )


def _meminfo(m: Any) -> MemInfo:
    return MemInfo(
        total=m.total,
        free=m.free,
        available=m.available if m.has_available else None,
        buffers=m.buffers,
        cached=m.cached,
        swap_total=m.swap_total,
        swap_free=m.swap_free,
        shmem=m.shmem,
        sreclaimable=m.sreclaimable,
        dirty=m.dirty,
        writeback=m.writeback,
        anon=m.anon_pages,
        mapped=m.mapped,
        slab=m.slab,
    )


class Sampler:
    """Keeps kernel files open across samples; one instance per consumer.

    Not thread-safe: the C readers share one buffer per handle.
    """

    def __init__(self, proc_root: str = "/proc") -> None:
        self._proc_root = proc_root
        self._sys: Any = None
        self._sys_out = ffi.new("struct tau_system *")
        self._cpu_cap = max(os.cpu_count() or 1, 1)
        self._cpus = ffi.new("struct tau_cpu_times[]", self._cpu_cap)

    def _sys_reader(self) -> Any:
        if self._sys is None:
            reader = lib.tau_sys_open(self._proc_root.encode())
            if reader == ffi.NULL:
                raise MemoryError("taucg sampler: cannot allocate the system reader")
            self._sys = ffi.gc(reader, lib.tau_sys_close)
        return self._sys

    def system(self) -> SystemSample:
        reader = self._sys_reader()
        out = self._sys_out
        rc = lib.tau_sys_sample(reader, out, self._cpus, self._cpu_cap)
        if out.ncpu_seen > self._cpu_cap:
            # CPUs came online since start-up; size the array once and resample.
            self._cpu_cap = int(out.ncpu_seen)
            self._cpus = ffi.new("struct tau_cpu_times[]", self._cpu_cap)
            rc = lib.tau_sys_sample(reader, out, self._cpus, self._cpu_cap)
        if rc < 0:
            raise SamplerError(
                -rc, f"reading system files under {self._proc_root}: {os.strerror(-rc)}"
            )
        now = time.monotonic()
        present = out.present
        has_stat = bool(present & lib.TAU_SYS_STAT)
        has_load = bool(present & lib.TAU_SYS_LOADAVG)
        return SystemSample(
            monotonic=now,
            cpu=_cpu_times(out.cpu_total) if has_stat else None,
            cpus=tuple(_cpu_times(self._cpus[i]) for i in range(out.ncpu)) if has_stat else (),
            context_switches=int(out.ctxt) if has_stat else None,
            boot_time=int(out.btime) if has_stat else None,
            forks=int(out.processes) if has_stat else None,
            procs_running=int(out.procs_running) if has_stat else None,
            procs_blocked=int(out.procs_blocked) if has_stat else None,
            memory=_meminfo(out.mem) if present & lib.TAU_SYS_MEMINFO else None,
            load=LoadAvg(
                load1=out.load1,
                load5=out.load5,
                load15=out.load15,
                runnable=int(out.runnable),
                threads=int(out.nr_threads),
                last_pid=int(out.last_pid),
            )
            if has_load
            else None,
            pressure_cpu=pressure_from_c(out.psi_cpu),
            pressure_memory=pressure_from_c(out.psi_memory),
            pressure_io=pressure_from_c(out.psi_io),
        )

    def close(self) -> None:
        if self._sys is not None:
            ffi.release(self._sys)
            self._sys = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "CLOCK_TICKS_PER_SECOND",
    "CpuTimes",
    "LoadAvg",
    "MemInfo",
    "Pressure",
    "PressureLine",
    "Sampler",
    "SamplerError",
    "SystemSample",
]
