"""The leak feed from changes alone finds what a full feed finds."""

from __future__ import annotations

import random

import pytest

from taucg.model.monitor import LeakDetector
from taucg.model.process_leaks import ProcessLeakFeed, subject_of
from taucg.model.process_table import ProcessTable
from taucg.readers.samples import ProcessChanges, ProcessSample

MIB = 1 << 20


def _proc(pid: int, rss: int, start: float = 1.0, state: bytes = b"S",
          utime: float = 0.0) -> ProcessSample:
    return ProcessSample(pid, 1, pid, pid, 1, 20, 0, 0, 0, 0, 0, state, b"p%d" % pid,
                         utime, 0.0, start, rss * 2, rss, 0, 0)


def _detector() -> LeakDetector:
    return LeakDetector(min_samples=5, min_seconds=40, min_growth=4 * MIB, length=30)


@pytest.mark.parametrize("seed", range(6))
def test_changes_only_feed_finds_the_same_suspects_as_a_full_feed(seed: int) -> None:
    rng = random.Random(seed)
    full, feed_det = _detector(), _detector()
    feed, table = ProcessLeakFeed(feed_det), ProcessTable()
    live = {pid: _proc(pid, 100 * MIB) for pid in range(1, 40)}
    leakers = set(rng.sample(sorted(live), 6))
    now, next_pid, seen_suspects = 0.0, 100, 0
    for tick in range(400):
        now += rng.choice((1.0, 1.0, 3.0, 10.0))
        changed: list[ProcessSample] = []
        gone: list[tuple[int, float]] = []
        for pid, was in list(live.items()):
            grow = pid in leakers and tick < 250 and rng.random() < 0.7
            wobble = rng.random() < 0.03
            if grow or wobble:
                rss = was.rss + (MIB if grow else rng.choice((-1, 1)) * 4096)
                live[pid] = was._replace(rss=rss)
                changed.append(live[pid])
            elif rng.random() < 0.05:  # CPU time only: a change, same RSS
                live[pid] = was._replace(user_seconds=was.user_seconds + 0.01)
                changed.append(live[pid])
        if rng.random() < 0.05:  # an exit, and a PID reused
            pid = rng.choice(sorted(live))
            old = live.pop(pid)
            gone.append((pid, old.start_seconds))
            if rng.random() < 0.5:
                live[pid] = _proc(pid, 50 * MIB, start=now)
                changed.append(live[pid])
        if rng.random() < 0.05:
            live[next_pid] = _proc(next_pid, 10 * MIB, start=now)
            changed.append(live[next_pid])
            leakers.add(next_pid)
            next_pid += 1
        if tick == 0:
            changed = list(live.values())
        # The reference: every live process, every tick.
        for p in live.values():
            full.add(subject_of(p), now, p.rss)
        full.forget(subject_of(p) for p in live.values())
        expected = full.suspects()
        got = feed.update(now, table.apply(ProcessChanges(changed, gone)), table)
        assert [(s.subject, s.growth_bytes, round(s.bytes_per_second, 6)) for s in got] == \
            [(s.subject, s.growth_bytes, round(s.bytes_per_second, 6)) for s in expected], tick
        seen_suspects += len(expected)
    assert seen_suspects > 0  # the scenario did raise suspects to compare
    assert feed.active < len(live)  # and the idle ones went dormant


def test_table_keeps_zombies_and_replaces_a_full_list() -> None:
    table = ProcessTable()
    delta = table.replace_all([_proc(1, 10), _proc(2, 10, state=b"Z")])
    assert len(delta.changed) == 2 and [z.pid for z in table.zombies()] == [2]
    delta = table.replace_all([_proc(1, 10), _proc(3, 10)])
    assert [r.pid for r in delta.changed] == [3] and [r.pid for r in delta.gone] == [2]
    assert table.zombies() == [] and sorted(r.pid for r in table) == [1, 3]
    table.apply(ProcessChanges([_proc(3, 10, state=b"Z")], [(1, 1.0), (3, 99.0)]))
    assert sorted(r.pid for r in table) == [3]  # (3, 99.0) was not the one recorded
    assert [z.pid for z in table.zombies()] == [3]
