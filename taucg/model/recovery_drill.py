"""What recovery would do, without doing it: the decision for a unit's next
failure and the escalation chain after it, from its persisted attempts.
Every decision is the policy's own (recovery_policy.UnitRecovery fed the
recorded failures, as the watcher replays them at start); nothing here
decides anything itself.

The failures after the next are assumed to follow at once, within the
attempt window, which is what escalation is about; the chain stops where
its last strategy repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taucg.model.recovery_policy import Decision, RecoveryPolicy, UnitRecovery

MAX_STEPS = 50


@dataclass(frozen=True, slots=True)
class Step:
    failure: int  # 1: the next failure, 2: the one after, ...
    strategy: str
    attempt: int  # within the strategy
    delay_seconds: float  # without jitter
    delay_min_seconds: float  # the jitter's range
    delay_max_seconds: float
    escalated_from: str | None


@dataclass(frozen=True, slots=True)
class Forecast:
    unit: str
    strategy_now: str  # where the unit's escalation stands
    attempts_in_window: int  # recorded failures that count now
    reset_by_uptime: bool  # up for stable_seconds: the next failure starts afresh
    steps: tuple[Step, ...]
    repeats: str | None  # the strategy the chain ends repeating


def _tracker(policy: RecoveryPolicy, failures: Sequence[float], up_since: float | None,
             rand: float) -> UnitRecovery:
    tracker = UnitRecovery(policy, rand=lambda: rand)
    for t in sorted(failures):
        tracker.on_failure(t)
    if up_since is not None and (not failures or up_since >= max(failures)):
        tracker.on_active(up_since)
    return tracker


def forecast(policy: RecoveryPolicy, failures: Sequence[float], now: float,
             up_since: float | None = None, max_steps: int = MAX_STEPS) -> Forecast:
    """failures: the recorded attempt times (the crash history's rows that
    were attempts); up_since: when the unit last became active, if it is."""
    # Three trackers fed alike: the middle of the jitter, and its two ends.
    mid, low, high = (_tracker(policy, failures, up_since, r) for r in (0.5, 0.0, 1.0))
    in_window = [t for t in mid.failures if now - t < policy.window_seconds]
    reset = mid.up_since is not None and now - mid.up_since >= policy.stable_seconds
    strategy_now = policy.strategy if reset else mid.strategy
    steps = []
    repeats = None
    for i in range(1, max_steps + 1):
        d: Decision = mid.on_failure(now)
        lo, hi = low.on_failure(now), high.on_failure(now)
        steps.append(Step(i, d.strategy, d.attempt, d.delay, min(lo.delay, hi.delay),
                          max(lo.delay, hi.delay), d.escalated_from))
        last = policy.next_strategy(d.strategy) == d.strategy
        if last and (d.attempt >= policy.max_attempts or d.strategy == "notify_admin"):
            repeats = d.strategy
            break
    return Forecast(policy.unit, strategy_now, 0 if reset else len(in_window), reset,
                    tuple(steps), repeats)
