"""The C parsers against a fake /proc tree and against garbage."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from taucg._sampler import ffi, lib

from taucg.sampler import CLOCK_TICKS_PER_SECOND, Sampler

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
