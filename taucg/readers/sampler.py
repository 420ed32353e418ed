"""The Python face of the C sampler: typed records in seconds and bytes.

C returns raw kernel units (clock ticks, microseconds); the conversion to
seconds happens here, once, so nothing above this module sees a tick.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from taucg.readers._sampler import ffi, lib
from taucg.readers.samples import (
    CLOCK_TICKS_PER_SECOND,
    PAGE_SIZE,
    SECTOR,
    UNLIMITED,
    CgroupCpu,
    CgroupIo,
    CgroupMemoryEvents,
    CgroupMemoryStat,
    CgroupSample,
    CpuTimes,
    DiskStats,
    EventKind,
    Limit,
    LoadAvg,
    MemInfo,
    NetDevice,
    Pressure,
    PressureLine,
    ProcessSample,
    ProcessSweepStats,
    ProcEvent,
    SystemSample,
)

DEFAULT_FD_BUDGET = 4096


class SamplerError(OSError):
    """A kernel file could not be read for a reason other than being absent."""


class EventsUnavailable(SamplerError):
    """The netlink proc connector cannot be used here."""


# The C struct tau_proc, field for field, in native alignment.
_PROC_STRUCT = struct.Struct("@8i3Ic64s3d4Q")
_PROC_SIZE = ffi.sizeof("struct tau_proc")
if _PROC_STRUCT.size != _PROC_SIZE or struct.calcsize("@8i3Ic64s") > ffi.offsetof(
    "struct tau_proc", "utime"
):  # pragma: no cover - a build/layout mismatch must fail loudly at import
    raise ImportError("taucg.readers._sampler's struct tau_proc does not match sampler.py's layout")


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

    def __init__(self, proc_root: str = "/proc", fd_budget: int = DEFAULT_FD_BUDGET) -> None:
        self._proc_root = proc_root
        self._fd_budget = fd_budget
        self._sys: Any = None
        self._netdevs = ffi.new("struct tau_netdev[]", 32)
        self._diskrows = ffi.new("struct tau_disk[]", 32)
        self._proc: Any = None
        self._proc_cap = 1024
        self._procs = ffi.new("struct tau_proc[]", self._proc_cap)
        self._proc_stats = ffi.new("struct tau_proc_stats *")
        self.last_process_stats: ProcessSweepStats | None = None
        self._cg_set: Any = None
        self._cg_paths: tuple[str, ...] = ()
        self._cg_index: list[int] = []
        self._cg_out: Any = None
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
            net=self._net(reader),
            disks=self._disks(reader),
        )

    def _rows(self, read: Any, reader: Any, attr: str) -> list[Any]:
        """Rows from a C reader that reports how many there are: if the
        caller-owned array was short, it grows once and the read repeats."""
        rows = getattr(self, attr)
        n = read(reader, rows, len(rows))
        if n > len(rows):
            rows = ffi.new(ffi.typeof(rows).item.cname + "[]", n + 16)
            setattr(self, attr, rows)
            n = read(reader, rows, len(rows))
        return [] if n < 0 else list(rows[0:min(n, len(rows))])

    def _net(self, reader: Any) -> tuple[NetDevice, ...]:
        return tuple(
            NetDevice(ffi.string(d.name).decode(errors="replace"), d.rx_bytes, d.rx_packets,
                      d.rx_errs, d.rx_drop, d.tx_bytes, d.tx_packets, d.tx_errs, d.tx_drop)
            for d in self._rows(lib.tau_sys_netdev, reader, "_netdevs")
        )

    def _disks(self, reader: Any) -> tuple[DiskStats, ...]:
        return tuple(
            DiskStats(d.major, d.minor, ffi.string(d.name).decode(errors="replace"),
                      d.reads, d.read_sectors * SECTOR, d.read_ms / 1000, d.writes,
                      d.write_sectors * SECTOR, d.write_ms / 1000, d.in_flight, d.io_ms / 1000)
            for d in self._rows(lib.tau_sys_disks, reader, "_diskrows")
        )

    # -- processes -----------------------------------------------------------

    def _proc_reader(self) -> Any:
        if self._proc is None:
            reader = lib.tau_proc_open(self._proc_root.encode(), self._fd_budget,
                                       float(CLOCK_TICKS_PER_SECOND), PAGE_SIZE)
            if reader == ffi.NULL:
                err = ffi.errno
                raise SamplerError(err, f"cannot open {self._proc_root}: {os.strerror(err)}")
            self._proc = ffi.gc(reader, lib.tau_proc_close)
        return self._proc

    def track(self, pids: Sequence[int]) -> None:
        """Adds PIDs (from fork/exec events) to what processes(rescan=False) reads."""
        reader = self._proc_reader()
        for pid in pids:
            lib.tau_proc_track(reader, pid)

    def processes(self, rescan: bool = True) -> list[ProcessSample]:
        """Every process, read through kept-open /proc/PID/stat fds.

        rescan=False reads only the processes already known (from earlier
        sweeps and track()), without listing /proc: the daemon follows new
        processes through proc connector events and rescans now and then as
        the safety net."""
        reader = self._proc_reader()
        sweep = lib.tau_proc_sweep if rescan else lib.tau_proc_sweep_known
        t0 = time.perf_counter()
        while True:
            n = sweep(reader, self._procs, self._proc_cap, self._proc_stats)
            if n < 0:
                raise SamplerError(-n, f"listing {self._proc_root}: {os.strerror(-n)}")
            if n <= self._proc_cap:
                break
            # More processes than slots: grow once (with headroom) and sweep again.
            self._proc_cap = int(n * 1.5) + 64
            self._procs = ffi.new("struct tau_proc[]", self._proc_cap)
        buf = ffi.buffer(self._procs, n * _PROC_SIZE)
        make = ProcessSample._make
        records = [make(t) for t in _PROC_STRUCT.iter_unpack(buf)]
        st = self._proc_stats
        self.last_process_stats = ProcessSweepStats(
            st.listed, st.parsed, st.vanished, st.kept_fds, st.fallback_reads, st.errors,
            time.perf_counter() - t0)
        return records

    # -- cgroups -------------------------------------------------------------

    def cgroups(self, paths: Sequence[str]) -> list[CgroupSample | None]:
        """One sample per cgroup directory; None where the directory does not
        exist (or was removed)."""
        wanted = tuple(paths)
        if wanted != self._cg_paths or any(
            idx < 0 and os.path.isdir(p) for p, idx in zip(wanted, self._cg_index, strict=True)
        ):
            self._cg_rebuild(wanted)
        live = [i for i in self._cg_index if i >= 0]
        if live:
            rc = lib.tau_cg_sweep(self._cg_set, self._cg_out, len(live))
            if rc < 0:
                raise SamplerError(-rc, f"reading cgroup files: {os.strerror(-rc)}")
        now = time.monotonic()
        result: list[CgroupSample | None] = []
        stale = False
        for path, idx in zip(wanted, self._cg_index, strict=True):
            if idx < 0:
                result.append(None)
                continue
            c = self._cg_out[idx]
            if c.present == 0:
                stale = True
                result.append(None)
                continue
            result.append(_cgroup_sample(path, now, c))
        if stale:
            self._cg_paths = ()  # some cgroup went away: reopen next time
        return result

    def _cg_rebuild(self, wanted: tuple[str, ...]) -> None:
        fresh = ffi.gc(lib.tau_cg_set_new(), lib.tau_cg_set_free)
        if fresh == ffi.NULL:
            raise MemoryError("taucg sampler: cannot allocate the cgroup set")
        index: list[int] = []
        for p in wanted:
            rc = lib.tau_cg_set_add(fresh, p.encode())
            if rc < 0 and -rc not in (errno.ENOENT, errno.ENOTDIR):
                raise SamplerError(-rc, f"opening cgroup {p}: {os.strerror(-rc)}")
            index.append(rc)
        if self._cg_set is not None:
            ffi.release(self._cg_set)
        self._cg_set = fresh
        self._cg_paths = wanted
        self._cg_index = index
        self._cg_out = ffi.new("struct tau_cgroup[]", max(1, len(wanted)))

    # -- events --------------------------------------------------------------

    def events(self, threads: bool = False) -> ProcEvents:
        """A subscription to process events (needs root); see ProcEvents."""
        return ProcEvents(threads=threads)

    def close(self) -> None:
        for name in ("_sys", "_proc", "_cg_set"):
            handle = getattr(self, name)
            if handle is not None:
                ffi.release(handle)
                setattr(self, name, None)
        self._cg_paths = ()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limit(value: int) -> Limit:
    return UNLIMITED if value == lib.TAU_UNLIMITED else int(value)


def _cgroup_sample(path: str, now: float, c: Any) -> CgroupSample:
    has = c.present
    return CgroupSample(
        path=path,
        monotonic=now,
        cpu=CgroupCpu(c.cpu_usage_usec / 1e6, c.cpu_user_usec / 1e6, c.cpu_system_usec / 1e6,
                      c.cpu_nr_periods, c.cpu_nr_throttled, c.cpu_throttled_usec / 1e6)
        if has & lib.TAU_CG_CPU_STAT else None,
        memory_current=int(c.memory_current) if has & lib.TAU_CG_MEMORY_CURRENT else None,
        memory_max=_limit(c.memory_max) if has & lib.TAU_CG_MEMORY_MAX else None,
        memory_high=_limit(c.memory_high) if has & lib.TAU_CG_MEMORY_HIGH else None,
        memory_stat=CgroupMemoryStat(c.mem_anon, c.mem_file, c.mem_shmem, c.mem_sock,
                                     c.mem_pgfault, c.mem_pgmajfault)
        if has & lib.TAU_CG_MEMORY_STAT else None,
        memory_events=CgroupMemoryEvents(c.ev_low, c.ev_high, c.ev_max, c.ev_oom, c.ev_oom_kill)
        if has & lib.TAU_CG_MEMORY_EVENTS else None,
        pids_current=int(c.pids_current) if has & lib.TAU_CG_PIDS_CURRENT else None,
        pids_max=_limit(c.pids_max) if has & lib.TAU_CG_PIDS_MAX else None,
        io=CgroupIo(c.io_rbytes, c.io_wbytes, c.io_rios, c.io_wios)
        if has & lib.TAU_CG_IO_STAT else None,
        pressure_cpu=pressure_from_c(c.cpu_pressure) if has & lib.TAU_CG_CPU_PRESSURE else None,
        pressure_memory=pressure_from_c(c.memory_pressure)
        if has & lib.TAU_CG_MEMORY_PRESSURE else None,
        pressure_io=pressure_from_c(c.io_pressure) if has & lib.TAU_CG_IO_PRESSURE else None,
        populated=bool(c.populated) if has & lib.TAU_CG_EVENTS else None,
        frozen=bool(c.frozen) if has & lib.TAU_CG_EVENTS else None,
    )


_EVENT_KINDS: dict[int, EventKind] = {}


class ProcEvents:
    """Fork, exec and exit events from the netlink proc connector.

    ``read()`` returns what is pending without blocking (for an asyncio
    reader on ``fileno()``); iterating blocks. Thread-level events are
    dropped unless ``threads`` is set, so a pid here is a process."""

    def __init__(self, threads: bool = False, batch: int = 256) -> None:
        if not _EVENT_KINDS:
            _EVENT_KINDS.update({lib.TAU_EV_FORK: "fork", lib.TAU_EV_EXEC: "exec",
                                 lib.TAU_EV_EXIT: "exit"})
        fd = lib.tau_events_open()
        if fd < 0:
            err = -fd
            hint = ("it needs root (CAP_NET_ADMIN) in the initial user and PID namespaces"
                    if err in (errno.EPERM, errno.EACCES) else
                    "the kernel may lack CONFIG_PROC_EVENTS")
            raise EventsUnavailable(
                err, f"cannot subscribe to process events (netlink proc connector): "
                     f"{os.strerror(err)}; {hint}. taucg falls back to rescanning /proc")
        self._fd: int = int(fd)
        self._threads = threads
        self._buf = ffi.new("struct tau_proc_event[]", batch)

    def fileno(self) -> int:
        return self._fd

    def read(self) -> list[ProcEvent]:
        if self._fd < 0:
            raise SamplerError(errno.EBADF, "process event subscription is closed")
        n = lib.tau_events_read(self._fd, self._buf, len(self._buf))
        if n == -errno.ENOBUFS:
            return [ProcEvent("lost", 0, 0)]
        if n < 0:
            raise SamplerError(-n, f"reading process events: {os.strerror(-n)}")
        out: list[ProcEvent] = []
        for ev in self._buf[0:n]:
            if not self._threads and ev.pid != ev.tgid:
                continue
            kind = _EVENT_KINDS[ev.what]
            if kind == "exit":
                status = int(ev.exit_code)
                out.append(ProcEvent(
                    kind, ev.pid, ev.tgid,
                    exit_status=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    killed_by=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    timestamp=ev.timestamp_ns / 1e9))
            else:
                out.append(ProcEvent(kind, ev.pid, ev.tgid, ev.parent_pid, ev.parent_tgid,
                                     timestamp=ev.timestamp_ns / 1e9))
        return out

    def __iter__(self) -> Iterator[ProcEvent]:
        while self._fd >= 0:
            select.select([self._fd], [], [])
            yield from self.read()

    async def arrivals(self) -> AsyncIterator[ProcEvent]:
        """Events as they arrive, for an asyncio loop: waits on the socket
        with a reader callback, so the loop never blocks."""
        import asyncio

        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(self._fd, ready.set)
        try:
            while True:
                await ready.wait()
                ready.clear()
                for ev in self.read():
                    yield ev
        finally:
            loop.remove_reader(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            lib.tau_events_close(self._fd)
            self._fd = -1

    def __enter__(self) -> ProcEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


