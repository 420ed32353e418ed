"""The C parsers against a fake /proc tree and against garbage."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from taucg.readers._sampler import ffi, lib

from taucg.readers.sampler import Sampler
from taucg.readers.samples import CLOCK_TICKS_PER_SECOND

FAKE = Path(__file__).resolve().parents[1] / "data" / "proc-fake"


def test_fake_tree_sample() -> None:
    s = Sampler(proc_root=str(FAKE)).system()
    assert s.cpu is not None
    assert s.cpu.user == 100 / CLOCK_TICKS_PER_SECOND
    assert s.cpu.idle == 4000 / CLOCK_TICKS_PER_SECOND
    assert [c.cpu for c in s.cpus] == [0, 1]
    assert (s.context_switches, s.boot_time, s.forks, s.procs_running, s.procs_blocked) == (
        987654, 1700000000, 4242, 3, 1)
    assert s.memory is not None
    assert s.memory.total == 16384000 * 1024
    # This meminfo predates MemAvailable: absent, and "used" falls back.
    assert s.memory.available is None
    assert s.memory.used == (16384000 - 1000000 - 20000 - 300000) * 1024
    assert s.load is not None
    assert (s.load.load1, s.load.load5, s.load.runnable, s.load.threads, s.load.last_pid) == (
        1.25, 0.5, 2, 345, 6789)
    assert s.pressure_cpu is not None
    assert s.pressure_cpu.some.avg10 == 1.5
    assert s.pressure_cpu.some.total_seconds == 0.123456
    assert s.pressure_cpu.full is None  # kernel printed no "full" line
    assert s.pressure_memory is not None
    assert s.pressure_memory.full is not None
    assert s.pressure_io is None  # file missing: absent, not zero


def test_short_cpu_array_reports_rows_seen() -> None:
    out = ffi.new("struct tau_system *")
    cpus = ffi.new("struct tau_cpu_times[]", 1)
    data = (FAKE / "stat").read_bytes()
    assert lib.tau_parse_stat(data, len(data), out, cpus, 1) == 0
    assert (out.ncpu, out.ncpu_seen) == (1, 2)


def test_old_kernel_cpu_line_with_four_fields() -> None:
    out = ffi.new("struct tau_system *")
    cpus = ffi.new("struct tau_cpu_times[]", 4)
    data = b"cpu 1 2 3 4\ncpu0 1 2 3 4\n"
    assert lib.tau_parse_stat(data, len(data), out, cpus, 4) == 0
    assert (out.cpu_total.idle, out.cpu_total.iowait) == (4, 0)


def test_garbled_inputs_are_rejected_not_zeroed() -> None:
    out = ffi.new("struct tau_system *")
    psi = ffi.new("struct tau_psi *")
    mem = ffi.new("struct tau_meminfo *")
    assert lib.tau_parse_loadavg(b"x y z", 5, out) == -1
    assert lib.tau_parse_psi(b"some avg10=", 11, psi) == -1
    assert psi.has_some == 0
    assert lib.tau_parse_meminfo(b"MemTotal: kB\n", 13, mem) == -1


def test_parser_reads_only_n_bytes() -> None:
    # The buffer continues past n with digits; the parser must stop at n.
    out = ffi.new("struct tau_system *")
    buf = b"1.50 2.00 3.00 4/5 6" + b"999999"
    assert lib.tau_parse_loadavg(buf, 20, out) == 0
    assert out.last_pid == 6


_junk = st.binary(max_size=2048) | st.text(
    alphabet="cpu0123456789 .=/:\nsomefullavgtotalkBMemTtl", max_size=2048).map(str.encode)


@settings(max_examples=400, deadline=None)
@given(_junk, st.integers(0, 8))
def test_parsers_survive_garbage(data: bytes, cap: int) -> None:
    out = ffi.new("struct tau_system *")
    cpus = ffi.new("struct tau_cpu_times[]", max(cap, 1))
    psi = ffi.new("struct tau_psi *")
    mem = ffi.new("struct tau_meminfo *")
    # Copy into an exact-size C buffer so any over-read lands outside it
    # (and shows under valgrind or ASan).
    buf = ffi.new("char[]", len(data) or 1)
    ffi.memmove(buf, data, len(data))
    assert lib.tau_parse_stat(buf, len(data), out, cpus, cap) in (0, -1)
    assert out.ncpu <= cap
    assert lib.tau_parse_meminfo(buf, len(data), mem) in (0, -1)
    assert lib.tau_parse_loadavg(buf, len(data), out) in (0, -1)
    assert lib.tau_parse_psi(buf, len(data), psi) in (0, -1)
    for n in (0, len(data) // 2):
        assert lib.tau_parse_psi(buf, n, psi) in (0, -1)


def _pid_stat(comm: bytes, tail: bytes = b"") -> bytes:
    fields = b" ".join(str(i).encode() for i in range(4, 53))
    return b"1234 (" + comm + b") S " + fields + tail + b"\n"


def test_pid_stat_fields_and_units() -> None:
    rec = ffi.new("struct tau_proc *")
    data = _pid_stat(b"bash")
    assert lib.tau_parse_pid_stat(data, len(data), rec, 100.0, 4096) == 0
    # Field k of /proc/PID/stat holds the number k in this synthetic line.
    assert (rec.pid, rec.ppid, rec.pgrp, rec.session) == (1234, 4, 5, 6)
    assert (rec.minflt, rec.majflt) == (10, 12)
    assert (rec.utime, rec.stime) == (0.14, 0.15)
    assert (rec.priority, rec.nice, rec.num_threads) == (18, 19, 20)
    assert rec.starttime == 0.22
    assert (rec.vsize, rec.rss) == (23, 24 * 4096)
    assert (rec.processor, rec.rt_priority, rec.policy) == (39, 40, 41)
    assert ffi.string(rec.comm) == b"bash"


def test_pid_stat_comm_with_parens_spaces_and_truncation() -> None:
    rec = ffi.new("struct tau_proc *")
    for comm in (b"a) (b", b"x ) y", b"))", b"(", b""):
        data = _pid_stat(comm)
        assert lib.tau_parse_pid_stat(data, len(data), rec, 100.0, 4096) == 0
        assert ffi.string(rec.comm) == comm
        assert rec.ppid == 4
    long = b"k" * 200
    data = _pid_stat(long)
    assert lib.tau_parse_pid_stat(data, len(data), rec, 100.0, 4096) == 0
    assert ffi.string(rec.comm) == long[:63]


def test_pid_stat_truncated_is_rejected() -> None:
    rec = ffi.new("struct tau_proc *")
    data = _pid_stat(b"bash")
    for cut in (0, 5, 12, 40, 60):  # all before field 24 (rss) ends
        assert lib.tau_parse_pid_stat(data[:cut], cut, rec, 100.0, 4096) == -1


def test_netdev_and_diskstats() -> None:
    net = (b"Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame"
           b" compressed multicast|bytes\n"
           b"    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n"
           b"  eth0: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0\n")
    rows = ffi.new("struct tau_netdev[]", 4)
    assert lib.tau_parse_netdev(net, len(net), rows, 4) == 2
    assert ffi.string(rows[1].name) == b"eth0"
    assert (rows[1].rx_bytes, rows[1].rx_drop, rows[1].tx_bytes, rows[1].tx_drop) == (5, 8, 9, 12)
    assert lib.tau_parse_netdev(net, len(net), rows, 1) == 2  # counts past cap
    disk = b" 254 0 vda 1 2 3 4 5 6 7 8 9 10 11 0 0 0 0\n   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n"
    drows = ffi.new("struct tau_disk[]", 4)
    assert lib.tau_parse_diskstats(disk, len(disk), drows, 4) == 2
    d = drows[0]
    assert (d.major, d.minor, ffi.string(d.name)) == (254, 0, b"vda")
    assert (d.reads, d.read_sectors, d.writes, d.write_sectors, d.io_ms) == (1, 3, 5, 7, 10)


def test_cgroup_files() -> None:
    cg = ffi.new("struct tau_cgroup *")

    def parse(bit: int, text: bytes) -> int:
        return int(lib.tau_parse_cg_file(bit, text, len(text), cg))

    assert parse(lib.TAU_CG_MEMORY_MAX, b"max\n") == 0
    assert cg.memory_max == lib.TAU_UNLIMITED
    assert parse(lib.TAU_CG_MEMORY_MAX, b"52428800\n") == 0
    assert cg.memory_max == 52428800
    assert parse(lib.TAU_CG_MEMORY_MAX, b"\n") == -1
    assert parse(lib.TAU_CG_CPU_STAT, b"usage_usec 10\nuser_usec 7\nsystem_usec 3\n"
                                      b"nr_periods 4\nnr_throttled 2\nthrottled_usec 99\n") == 0
    assert (cg.cpu_usage_usec, cg.cpu_nr_throttled, cg.cpu_throttled_usec) == (10, 2, 99)
    assert parse(lib.TAU_CG_MEMORY_EVENTS, b"low 0\nhigh 5\nmax 6\noom 1\noom_kill 1\n"
                                           b"oom_group_kill 0\n") == 0
    assert (cg.ev_high, cg.ev_max, cg.ev_oom_kill) == (5, 6, 1)
    assert parse(lib.TAU_CG_IO_STAT, b"8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
                                     b"8:16 rbytes=5 wbytes=5 rios=1 wios=1 dbytes=0 dios=0\n") == 0
    assert (cg.io_rbytes, cg.io_wbytes, cg.io_rios, cg.io_wios) == (15, 25, 2, 3)
    assert parse(lib.TAU_CG_EVENTS, b"populated 1\nfrozen 1\n") == 0
    assert (cg.populated, cg.frozen) == (1, 1)
    assert parse(lib.TAU_CG_MEMORY_STAT, b"anon 4096\nfile 8192\nshmem 0\nsock 0\n"
                                         b"pgfault 3\npgmajfault 1\n") == 0
    assert (cg.mem_anon, cg.mem_file, cg.mem_pgmajfault) == (4096, 8192, 1)


_CG_BITS = [1 << i for i in range(13)]


def test_cgroup_file_names_follow_the_bits() -> None:
    # Errors name the file through these, so each bit must give its own.
    names = {name[len("TAU_CG_"):]: getattr(lib, name) for name in dir(lib)
             if name.startswith("TAU_CG_") and name != "TAU_CG_NFILES"}
    assert sorted(names.values()) == _CG_BITS
    assert ffi.string(lib.tau_cg_file_name(lib.TAU_CG_CPU_STAT)) == b"cpu.stat"
    assert ffi.string(lib.tau_cg_file_name(lib.TAU_CG_EVENTS)) == b"cgroup.events"
    for key, bit in names.items():
        name = ffi.string(lib.tau_cg_file_name(bit)).decode()
        if key == "EVENTS":
            continue
        # TAU_CG_MEMORY_CURRENT -> memory.current, TAU_CG_IO_PRESSURE -> io.pressure
        assert name == key.lower().replace("_", ".", 1), key
    assert ffi.string(lib.tau_cg_file_name(0)) == b""
    assert ffi.string(lib.tau_cg_file_name(lib.TAU_CG_CPU_STAT | lib.TAU_CG_IO_STAT)) == b""


@settings(max_examples=300, deadline=None)
@given(_junk | st.binary(max_size=600).map(lambda b: b"1 (" + b), st.integers(0, 4))
def test_process_and_cgroup_parsers_survive_garbage(data: bytes, cap: int) -> None:
    buf = ffi.new("char[]", len(data) or 1)
    ffi.memmove(buf, data, len(data))
    rec = ffi.new("struct tau_proc *")
    assert lib.tau_parse_pid_stat(buf, len(data), rec, 100.0, 4096) in (0, -1)
    assert len(ffi.string(rec.comm, 64)) < 64
    nets = ffi.new("struct tau_netdev[]", max(cap, 1))
    disks = ffi.new("struct tau_disk[]", max(cap, 1))
    assert lib.tau_parse_netdev(buf, len(data), nets, cap) >= 0
    assert lib.tau_parse_diskstats(buf, len(data), disks, cap) >= 0
    cg = ffi.new("struct tau_cgroup *")
    for bit in _CG_BITS:
        assert lib.tau_parse_cg_file(bit, buf, len(data), cg) in (0, -1)
