"""The changed-only process sweep over a fake /proc tree, where every
change (a tick of CPU time, an exit, a reused PID) is made by the test;
the same sweep against real processes is in tests/host/test_changed_sweep.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from taucg.readers._sampler import ffi, lib

from taucg.model.process_table import ProcessTable
from taucg.readers.sampler import Sampler
from taucg.readers.samples import CLOCK_TICKS_PER_SECOND, PAGE_SIZE, ProcessChanges


def _line(pid: int, utime: int = 0, rss_pages: int = 100, start: int = 500,
          state: str = "S", comm: str = "fake") -> str:
    # Fields 3.. of /proc/PID/stat; only the ones the sampler reads vary.
    fields = [state, "1", str(pid), str(pid), "0", "-1", "0", "10", "0", "0", "0",
              str(utime), "0", "0", "0", "20", "0", "1", "0", str(start), "1000000",
              str(rss_pages)] + ["0"] * 14 + ["0", "0", "0"]
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


def _write(root: Path, pid: int, **kw: object) -> None:
    d = root / str(pid)
    d.mkdir(exist_ok=True)
    # Rewritten in place, as the kernel's file would read differently: the
    # sampler's kept-open fd sees the new text.
    with open(d / "stat", "w") as f:
        f.write(_line(pid, **kw))  # type: ignore[arg-type]


def _pids(ch: ProcessChanges) -> set[int]:
    return {r.pid for r in ch.changed}


def test_first_sweep_reports_all_as_new_then_only_what_changed(tmp_path: Path) -> None:
    for pid in (10, 11, 12):
        _write(tmp_path, pid)
    s = Sampler(proc_root=str(tmp_path))
    first = s.process_changes()
    assert _pids(first) == {10, 11, 12} and all(r.is_new for r in first.changed)
    assert s.process_changes().changed == []  # nothing moved
    assert s.last_process_stats is not None and s.last_process_stats.unchanged == 3
    _write(tmp_path, 11, utime=7)  # 11 ran for 7 ticks
    _write(tmp_path, 12, rss_pages=200)  # 12 grew
    ch = s.process_changes(rescan=False)
    assert _pids(ch) == {11, 12} and not any(r.is_new for r in ch.changed)
    by = {r.pid: r for r in ch.changed}
    assert by[11].user_seconds == 7 / CLOCK_TICKS_PER_SECOND
    assert by[12].rss == 200 * PAGE_SIZE
    assert s.process_changes(rescan=False).changed == []


def test_exit_is_reported_gone_once_and_a_new_pid_as_new(tmp_path: Path) -> None:
    for pid in (20, 21):
        _write(tmp_path, pid, start=600)
    s = Sampler(proc_root=str(tmp_path))
    s.process_changes()
    shutil.rmtree(tmp_path / "21")
    _write(tmp_path, 22)
    ch = s.process_changes()  # the listing finds 21 gone and 22 new
    assert ch.gone == [(21, 600 / CLOCK_TICKS_PER_SECOND)]
    assert [(r.pid, r.is_new) for r in ch.changed] == [(22, True)]
    again = s.process_changes()
    assert again.gone == [] and again.changed == []


def test_a_tracked_pid_is_reported_new_without_a_listing(tmp_path: Path) -> None:
    _write(tmp_path, 30)
    s = Sampler(proc_root=str(tmp_path))
    s.process_changes()
    _write(tmp_path, 31)
    assert s.process_changes(rescan=False).changed == []  # not listed, not tracked
    s.track([31])
    assert [(r.pid, r.is_new) for r in s.process_changes(rescan=False).changed] == [(31, True)]


def test_a_reused_pid_is_new_and_the_table_drops_the_old_process(tmp_path: Path) -> None:
    _write(tmp_path, 40, start=500, comm="old")
    s = Sampler(proc_root=str(tmp_path))
    table = ProcessTable()
    table.apply(s.process_changes())
    old = table.get(40)
    assert old is not None
    _write(tmp_path, 40, start=900, comm="new")  # another process now holds PID 40
    ch = s.process_changes(rescan=False)
    assert [(r.pid, r.comm, r.is_new) for r in ch.changed] == [(40, "new", True)]
    delta = table.apply(ch)
    assert delta.gone == [old]
    now = table.get(40)
    assert now is not None and now.comm == "new" and len(table) == 1


def test_full_sweeps_in_between_do_not_hide_changes(tmp_path: Path) -> None:
    _write(tmp_path, 50)
    s = Sampler(proc_root=str(tmp_path))
    s.process_changes()
    _write(tmp_path, 50, utime=3)
    assert len(s.processes()) == 1  # another consumer sweeps everything
    assert _pids(s.process_changes()) == {50}


def test_a_short_array_loses_nothing(tmp_path: Path) -> None:
    for pid in range(60, 70):
        _write(tmp_path, pid)
    reader = ffi.gc(lib.tau_proc_open(str(tmp_path).encode(), 100, 100.0, 4096),
                    lib.tau_proc_close)
    out = ffi.new("struct tau_proc[]", 4)
    gone = ffi.new("struct tau_proc_gone[]", 2)
    ch = ffi.new("struct tau_proc_changes *")
    stats = ffi.new("struct tau_proc_stats *")
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    assert (ch.changed, ch.more) == (4, 6)
    seen = {out[i].pid for i in range(4)}
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    assert (ch.changed, ch.more) == (4, 2)
    seen |= {out[i].pid for i in range(4)}
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    assert (ch.changed, ch.more) == (2, 0)
    seen |= {out[i].pid for i in range(2)}
    assert seen == set(range(60, 70))
    for pid in range(60, 65):
        shutil.rmtree(tmp_path / str(pid))
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    assert (ch.gone, ch.gone_more) == (2, 3)
    left = {gone[i].pid for i in range(2)}
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    left |= {gone[i].pid for i in range(ch.gone)}
    assert lib.tau_proc_sweep_changed(reader, 1, out, 4, gone, 2, ch, stats) == 0
    left |= {gone[i].pid for i in range(ch.gone)}
    assert left == set(range(60, 65)) and ch.gone_more == 0


def test_the_sampler_grows_its_arrays_and_merges(tmp_path: Path) -> None:
    for pid in range(100, 1400):  # more than the 1024 records it starts with
        _write(tmp_path, pid)
    s = Sampler(proc_root=str(tmp_path))
    first = s.process_changes()
    assert sorted(_pids(first)) == list(range(100, 1400)) and len(first.changed) == 1300
    assert all(r.is_new for r in first.changed)
    for pid in range(100, 1400):
        shutil.rmtree(tmp_path / str(pid))
    assert sorted(g[0] for g in s.process_changes().gone) == list(range(100, 1400))
    # Their PID chunk was freed with the last of them; PIDs there work again.
    _write(tmp_path, 150, start=700)
    again = s.process_changes()
    assert [(r.pid, r.is_new) for r in again.changed] == [(150, True)]
    shutil.rmtree(tmp_path / "150")
    assert s.process_changes().gone == [(150, 700 / CLOCK_TICKS_PER_SECOND)]


@given(st.binary(min_size=1, max_size=400), st.integers(0, 399), st.integers(1, 255))
def test_a_one_byte_change_always_changes_the_hash(line: bytes, at: int, flip: int) -> None:
    at %= len(line)
    other = bytearray(line)
    other[at] ^= flip
    assert lib.tau_stat_hash(line, len(line)) != lib.tau_stat_hash(bytes(other), len(other))
    assert lib.tau_stat_hash(line, len(line)) != 0
