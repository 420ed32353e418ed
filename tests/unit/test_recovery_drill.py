"""`taucg recovery test --dry-run`'s forecast: the decisions are the
policy's own (UnitRecovery), fed the persisted attempts."""

from __future__ import annotations

import pytest

from taucg.actors.drills import signal_number
from taucg.model.recovery_drill import forecast
from taucg.model.recovery_policy import RecoveryPolicy, UnitRecovery

NOW = 1_700_000_000.0
CHAIN = ("restart", "restart_with_delay", "restart_with_backoff", "fallback_to_safe_mode",
         "notify_admin")


def policy(strategy: str = "restart", attempts: int = 2, **kw: float) -> RecoveryPolicy:
    return RecoveryPolicy("a.service", strategy, attempts, kw.get("delay", 5.0),
                          kw.get("max_delay", 300.0), kw.get("mult", 2.0), 60.0,
                          stable_seconds=kw.get("stable", 300.0),
                          window_seconds=kw.get("window", 600.0), chain=CHAIN)


def test_a_fresh_unit_walks_the_whole_chain_and_ends_notifying() -> None:
    plan = forecast(policy(), [], NOW)
    assert plan.strategy_now == "restart" and plan.attempts_in_window == 0
    assert [(s.strategy, s.attempt) for s in plan.steps] == [
        ("restart", 1), ("restart", 2), ("restart_with_delay", 1), ("restart_with_delay", 2),
        ("restart_with_backoff", 1), ("restart_with_backoff", 2),
        ("fallback_to_safe_mode", 1), ("fallback_to_safe_mode", 2), ("notify_admin", 1)]
    assert plan.repeats == "notify_admin"
    assert [s.escalated_from for s in plan.steps if s.escalated_from] == list(CHAIN[:-1])
    delayed = [s for s in plan.steps if s.strategy == "restart_with_delay"]
    assert all(s.delay_seconds == s.delay_min_seconds == s.delay_max_seconds == 5.0
               for s in delayed)


def test_persisted_attempts_move_the_next_step_along_the_chain() -> None:
    p = policy()
    failures = [NOW - 100, NOW - 50, NOW - 20]  # two restarts, then one delayed
    plan = forecast(p, failures, NOW)
    assert plan.strategy_now == "restart_with_delay" and plan.attempts_in_window == 1
    first = plan.steps[0]
    assert (first.strategy, first.attempt) == ("restart_with_delay", 2)
    # The same as the watcher would decide, replaying the same rows.
    tracker = UnitRecovery(p, rand=lambda: 0.5)
    for t in failures:
        tracker.on_failure(t)
    d = tracker.on_failure(NOW)
    assert (d.strategy, d.attempt, d.delay) == (first.strategy, first.attempt,
                                                 first.delay_seconds)


def test_attempts_outside_the_window_do_not_count() -> None:
    plan = forecast(policy(window=60.0), [NOW - 500, NOW - 400], NOW)
    assert (plan.steps[0].strategy, plan.steps[0].attempt) == ("restart", 1)


def test_a_unit_up_for_stable_seconds_starts_afresh() -> None:
    failures = [NOW - 900, NOW - 880, NOW - 860]
    plan = forecast(policy(stable=300.0, window=3600.0), failures, NOW, up_since=NOW - 850)
    assert plan.reset_by_uptime and plan.strategy_now == "restart"
    assert (plan.steps[0].strategy, plan.steps[0].attempt) == ("restart", 1)
    held = forecast(policy(stable=300.0, window=3600.0), failures, NOW, up_since=NOW - 100)
    assert not held.reset_by_uptime
    assert held.steps[0].strategy == "restart_with_delay"


def test_backoff_delays_grow_with_their_jitter_band_and_cap() -> None:
    plan = forecast(policy("restart_with_backoff", attempts=5, delay=2.0, max_delay=10.0,
                           mult=2.0), [], NOW)
    backoff = [s for s in plan.steps if s.strategy == "restart_with_backoff"]
    assert [s.delay_seconds for s in backoff] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff[0].delay_min_seconds == pytest.approx(1.8)
    assert backoff[0].delay_max_seconds == pytest.approx(2.2)
    assert all(s.delay_max_seconds <= 10.0 for s in backoff)


def test_a_chain_ending_in_a_restart_shows_it_repeat_to_max_attempts() -> None:
    p = RecoveryPolicy("a.service", "restart", 3, 1.0, 8.0, 2.0, 60.0,
                       chain=("restart", "restart_with_backoff"))
    plan = forecast(p, [], NOW)
    assert [(s.strategy, s.attempt) for s in plan.steps][-3:] == [
        ("restart_with_backoff", 1), ("restart_with_backoff", 2), ("restart_with_backoff", 3)]
    assert plan.repeats == "restart_with_backoff"


@pytest.mark.parametrize(("text", "number"), [("SIGSEGV", 11), ("segv", 11), ("11", 11),
                                              ("SIGABRT", 6), ("kill", 9)])
def test_signal_names(text: str, number: int) -> None:
    assert signal_number(text) == number


def test_a_bad_signal_names_the_choices() -> None:
    with pytest.raises(ValueError, match="SIGSEGV"):
        signal_number("SIGNOPE")
