"""Limit hits: what the kernel did because a tier reached its limits.

memory.events counts the times a tier went over memory.high (throttled
into reclaim), hit memory.max, and had a process OOM-killed; cpu.stat
counts the periods and the time cpu.max throttled it. This module turns
two samples into those hits, and OOM kills into alerts that name the tier
and the victim, which the kernel log supplies (readers/kmsg.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from taucg.model.monitor import Alert
from taucg.model.tiers import tier_of
from taucg.readers.kmsg import OomKill
from taucg.readers.samples import CgroupSample


@dataclass(frozen=True, slots=True)
class LimitHits:
    """Counts since the cgroup was created, and the throttling between two
    samples (None without a previous one or without the cpu controller)."""

    oom_kills: int | None
    memory_high_events: int | None
    memory_max_events: int | None
    throttled_seconds: float | None  # between the two samples
    throttled_periods: int | None  # between the two samples

    def to_dict(self) -> dict[str, float | int | None]:
        return {"oom_kills": self.oom_kills, "memory_high_events": self.memory_high_events,
                "memory_max_events": self.memory_max_events,
                "throttled_seconds": self.throttled_seconds,
                "throttled_periods": self.throttled_periods}

    def text(self) -> str:
        def n(v: float | int | None, fmt: str = "d") -> str:
            return "-" if v is None else format(v, fmt)

        return (f"oom {n(self.oom_kills)} high {n(self.memory_high_events)} "
                f"max {n(self.memory_max_events)} "
                f"throttled {n(self.throttled_seconds, '.2f')}s")


def limit_hits(prev: CgroupSample | None, cur: CgroupSample) -> LimitHits:
    ev = cur.memory_events
    thr_s = thr_n = None
    if prev is not None and prev.cpu is not None and cur.cpu is not None:
        # A counter that went backwards is a recreated cgroup: count from zero.
        thr_s = max(0.0, cur.cpu.throttled_seconds - prev.cpu.throttled_seconds)
        thr_n = max(0, cur.cpu.throttled_periods - prev.cpu.throttled_periods)
    return LimitHits(ev.oom_kill if ev else None, ev.high if ev else None,
                     ev.max if ev else None, thr_s, thr_n)


def _victims(kills: Sequence[OomKill]) -> str:
    return ", ".join(f"{k.task} (pid {k.pid}, {k.cgroup.rsplit('/', 1)[-1]})" for k in kills)


@dataclass(slots=True)
class OomAlarm:
    """One alert per tick in which a tier's oom_kill count rose, naming the
    killed processes the kernel log reported in that tier; cleared at the
    first tick with no new kill. The first sample of a tier is the baseline:
    kills before the daemon started are not news."""

    counts: dict[str, int] = field(default_factory=dict)
    pending: list[OomKill] = field(default_factory=list)  # logged, not yet counted
    raised: set[str] = field(default_factory=set)

    def update(self, tiers: Mapping[str, CgroupSample | None], kills: Sequence[OomKill],
               now: float, log_unavailable: str | None = None) -> list[Alert]:
        self.pending += kills
        alerts: list[Alert] = []
        for tier, s in tiers.items():
            if s is None or s.memory_events is None:
                continue
            count = s.memory_events.oom_kill
            before = self.counts.get(tier)
            self.counts[tier] = count
            new = 0 if before is None else count - before
            if new > 0:
                alerts.append(self._raise(tier, new, now, log_unavailable))
            elif tier in self.raised:
                self.raised.discard(tier)
                alerts.append(Alert(f"oom_kill {tier}", "cleared", 0.0, 0.0, now,
                                    f"no new OOM kill in tier {tier}", severity="critical"))
        # A kill logged after this tick's cgroup sample is counted next
        # tick, so it waits; one outside the tiers is none of ours.
        self.pending = [k for k in self.pending if tier_of(k.cgroup) in tiers][-64:]
        return alerts

    def _raise(self, tier: str, new: int, now: float, unavailable: str | None) -> Alert:
        mine = [k for k in self.pending if tier_of(k.cgroup) == tier][:new]
        self.pending = [k for k in self.pending if k not in mine]
        self.raised.add(tier)
        killed = f"{new} process{'es' if new > 1 else ''} OOM-killed in tier {tier}"
        if mine:
            text = f"{killed}: {_victims(mine)}"
            if len(mine) < new:
                text += f"; {new - len(mine)} more not named in the kernel log"
        else:
            why = unavailable or "the kernel log holds no matching oom-kill line"
            text = f"{killed}; the victim is not known ({why})"
        return Alert(f"oom_kill {tier}", "raised", float(new), 0.0, now,
                     text + f"; raise MemoryMax of tau-{tier}.slice or find what grew",
                     severity="critical")
