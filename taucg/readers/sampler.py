"""The Python face of the C sampler: typed records in seconds and bytes.

C returns raw kernel units (clock ticks, microseconds); the conversion to
seconds happens here, once, so nothing above this module sees a tick.
"""

from __future__ import annotations

import errno
import operator
import os
import select
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

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
    ProcessChanges,
    ProcessSample,
    ProcessSweepStats,
    ProcEvent,
    SystemSample,
)

DEFAULT_FD_BUDGET = 4096

_R = TypeVar("_R")


class SamplerError(OSError):
    """A kernel file could not be read for a reason other than being absent."""


class EventsUnavailable(SamplerError):
    """The netlink proc connector cannot be used here."""


class LayoutError(Exception):
    """A C struct and the record built from it do not match name for name."""


# struct tau_proc's fields by name -> ProcessSample's. The parse is laid out
# from this and the cdef, never from a restated format, so reordering the C
# struct reorders the parse, and a field renamed or added on one side only
# fails at import instead of landing in its neighbour's slot.
PROC_FIELDS: Final[Mapping[str, str]] = {
    "pid": "pid", "ppid": "ppid", "pgrp": "pgrp", "session": "session",
    "num_threads": "threads", "priority": "priority", "nice": "nice",
    "processor": "processor", "rt_priority": "rt_priority", "policy": "policy",
    "flags": "flags", "state": "state_raw", "comm": "comm_raw",
    "utime": "user_seconds", "stime": "system_seconds", "starttime": "start_seconds",
    "vsize": "vsize", "rss": "rss", "minflt": "minor_faults", "majflt": "major_faults",
}

# C scalar types -> struct codes in standard sizes ("=" below): padding is
# then only what the offsets say, never what the struct module guesses.
_CODES: Final[Mapping[str, str]] = {
    "char": "c", "int8_t": "b", "uint8_t": "B", "int16_t": "h", "uint16_t": "H",
    "int32_t": "i", "uint32_t": "I", "int64_t": "q", "uint64_t": "Q",
    "float": "f", "double": "d",
}


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """How an array of one C struct unpacks into records.

    ``reorder`` is None when the C fields are in the record's order, so the
    common case pays nothing per record for the mapping."""

    unpacker: struct.Struct
    reorder: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None


def _field_code(ffi_: Any, ctype: Any, where: str) -> str:
    if ctype.kind == "primitive" and ctype.cname in _CODES:
        code = _CODES[ctype.cname]
    elif ctype.kind == "array" and ctype.item.cname == "char" and ctype.length:
        code = f"{ctype.length}s"  # bytes, as the record keeps it
    else:
        raise LayoutError(f"{where}: no struct code for C type {ctype.cname}")
    if struct.calcsize("=" + code) != ffi_.sizeof(ctype):
        raise LayoutError(f"{where}: {ctype.cname} is {ffi_.sizeof(ctype)} bytes here, "
                          f"struct code {code!r} is {struct.calcsize('=' + code)}")
    return code


def record_layout(ffi_: Any, cname: str, fields: Mapping[str, str],
                  record_fields: Sequence[str]) -> RecordLayout:
    """The layout of C struct ``cname`` as described by ``ffi_`` (its cdef),
    with ``fields`` mapping each C field name to a name in ``record_fields``.

    Raises LayoutError unless every C field maps to a distinct record field
    and every record field is filled, so no value can be mislabelled."""
    ctype = ffi_.typeof(cname)
    codes = ["="]
    pos = 0
    order: list[str] = []  # the record field of each unpacked value, in C order
    for name, field in ctype.fields:
        where = f"{cname}.{name}"
        if field.bitsize != -1:
            raise LayoutError(f"{where}: bit fields cannot be unpacked")
        if name not in fields:
            raise LayoutError(f"{where} has no record field: add it to the field map")
        if field.offset < pos:
            raise LayoutError(f"{where} overlaps the field before it")
        if field.offset > pos:
            codes.append(f"{field.offset - pos}x")
        codes.append(_field_code(ffi_, field.type, where))
        pos = field.offset + ffi_.sizeof(field.type)
        order.append(fields[name])
    size = ffi_.sizeof(ctype)
    if size > pos:
        codes.append(f"{size - pos}x")  # trailing padding: the array stride
    doubled = sorted({f for f in order if order.count(f) > 1})
    unknown = sorted(set(order) - set(record_fields))
    unfilled = sorted(set(record_fields) - set(order))
    if doubled or unknown or unfilled:
        raise LayoutError(f"{cname} and its record do not pair up field for field: "
                          f"mapped twice {doubled}, not in the record {unknown}, "
                          f"filled by no C field {unfilled}")
    layout = struct.Struct("".join(codes))
    if layout.size != size:  # pragma: no cover - the offsets above make this hold
        raise LayoutError(f"{cname}: laid out as {layout.size} bytes, C says {size}")
    perm = [order.index(f) for f in record_fields]
    identity = perm == list(range(len(perm)))
    return RecordLayout(layout, None if identity else operator.itemgetter(*perm))


def unpack_records(layout: RecordLayout, buf: Any,
                   make: Callable[[Iterable[Any]], _R]) -> list[_R]:
    """Records from a buffer of whole structs, one ``make`` call each."""
    reorder = layout.reorder
    if reorder is None:
        return [make(t) for t in layout.unpacker.iter_unpack(buf)]
    return [make(reorder(t)) for t in layout.unpacker.iter_unpack(buf)]


_PROC_LAYOUT = record_layout(ffi, "struct tau_proc", PROC_FIELDS, ProcessSample._fields)
_PROC_SIZE = _PROC_LAYOUT.unpacker.size


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
    """None for an absent file: every PSI file has a "some" line, so C
    leaves has_some clear exactly when there was nothing to read."""
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
        self._gone_cap = 256
        self._gone = ffi.new("struct tau_proc_gone[]", self._gone_cap)
        self._changes = ffi.new("struct tau_proc_changes *")
        self.last_process_stats: ProcessSweepStats | None = None
        self._cg_set: Any = None
        self._cg_paths: tuple[str, ...] = ()
        self._cg_index: list[int] = []
        self._cg_out: Any = None
        self._cg_err = ffi.new("struct tau_cg_error *")
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
        records = unpack_records(_PROC_LAYOUT, buf, ProcessSample._make)
        st = self._proc_stats
        self.last_process_stats = ProcessSweepStats(
            st.listed, st.parsed, st.vanished, st.kept_fds, st.fallback_reads, st.errors,
            time.perf_counter() - t0)
        return records

    def process_changes(self, rescan: bool = True) -> ProcessChanges:
        """Only what changed since the last call: see ProcessChanges. The
        first call reports every process as new. rescan as in processes();
        calls of processes() in between do not disturb what this reports."""
        reader = self._proc_reader()
        t0 = time.perf_counter()
        changed: list[ProcessSample] = []
        gone: list[tuple[int, float]] = []
        ch, st = self._changes, self._proc_stats
        unchanged = 0
        retried = False
        while True:
            rc = lib.tau_proc_sweep_changed(reader, rescan, self._procs, self._proc_cap,
                                            self._gone, self._gone_cap, ch, st)
            if rc < 0:
                raise SamplerError(-rc, f"listing {self._proc_root}: {os.strerror(-rc)}")
            unchanged += ch.unchanged
            if ch.changed:
                buf = ffi.buffer(self._procs, ch.changed * _PROC_SIZE)
                changed += unpack_records(_PROC_LAYOUT, buf, ProcessSample._make)
            gone += [(g.pid, g.starttime) for g in self._gone[0:ch.gone]]
            if not ch.more and not ch.gone_more:
                break
            # Short arrays: grow once; C kept what did not fit for this next sweep.
            retried = True
            if ch.more:
                self._proc_cap = int((ch.changed + ch.more) * 1.5) + 64
                self._procs = ffi.new("struct tau_proc[]", self._proc_cap)
            if ch.gone_more:
                self._gone_cap = int((ch.gone + ch.gone_more) * 1.5) + 64
                self._gone = ffi.new("struct tau_proc_gone[]", self._gone_cap)
        if retried:
            changed = _latest_per_pid(changed)
        self.last_process_stats = ProcessSweepStats(
            st.listed, st.parsed, st.vanished, st.kept_fds, st.fallback_reads, st.errors,
            time.perf_counter() - t0, unchanged)
        return ProcessChanges(changed, gone)

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
            err = self._cg_err
            rc = lib.tau_cg_sweep(self._cg_set, self._cg_out, len(live), err)
            if rc < 0:
                path = next(p for p, i in zip(wanted, self._cg_index, strict=True)
                            if i == err.index)
                name = ffi.string(lib.tau_cg_file_name(err.file)).decode()
                raise SamplerError(-rc, f"reading {path}/{name}: {os.strerror(-rc)}")
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


def _latest_per_pid(records: list[ProcessSample]) -> list[ProcessSample]:
    """After a retried sweep a process may be reported twice: the later
    record stands, still new if the earlier one said so."""
    latest: dict[int, ProcessSample] = {}
    new = lib.TAU_PROC_NEW
    for r in records:
        old = latest.get(r.pid)
        if old is not None and old.start_seconds == r.start_seconds and old.flags & new:
            latest[r.pid] = r._replace(flags=r.flags | new)
        else:
            latest[r.pid] = r
    return list(latest.values())


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


