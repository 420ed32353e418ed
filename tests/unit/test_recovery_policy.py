from __future__ import annotations

from taucg.config.loading import loads
from taucg.model.recovery_policy import DEFAULT_CHAIN, RecoveryPolicy, UnitRecovery

CFG = loads("""
[crash_recovery]
max_recovery_attempts = 3
[recovery]
default_strategy = "restart"
[recovery.services."tau-session.service"]
strategy = "restart_with_backoff"
max_attempts = 4
delay_seconds = 2.0
max_delay_seconds = 10.0
backoff_multiplier = 2.0
""")


def test_policy_from_config_with_and_without_suffix() -> None:
    p = RecoveryPolicy.from_config(CFG, "tau-session")
    assert (p.unit, p.strategy, p.max_attempts, p.delay_seconds) == (
        "tau-session.service", "restart_with_backoff", 4, 2.0)
    d = RecoveryPolicy.from_config(CFG, "tau-powerd.service")
    assert (d.strategy, d.max_attempts, d.timeout_seconds) == ("restart", 3, 60.0)


def test_backoff_grows_to_the_cap_without_jitter() -> None:
    r = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-session"), rand=lambda: 0.5)
    delays = [r.on_failure(t).delay for t in (0, 1, 2, 3)]
    assert delays == [2.0, 4.0, 8.0, 10.0]


def test_jitter_stays_within_its_band_and_the_cap() -> None:
    low = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-session"), rand=lambda: 0.0)
    high = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-session"), rand=lambda: 1.0)
    assert low.on_failure(0).delay == 1.8
    assert high.on_failure(0).delay == 2.2
    for _ in range(3):
        high.on_failure(1)
    assert high.delay("restart_with_backoff", 4) == 10.0  # capped even with +10%


def test_escalation_follows_the_chain_and_ends_at_notify() -> None:
    r = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-powerd"))
    seen = [r.on_failure(float(t)) for t in range(3 * 4 + 3)]
    strategies = [d.strategy for d in seen]
    assert strategies[:3] == ["restart"] * 3
    assert seen[3].escalated_from == "restart" and seen[3].strategy == "restart_with_delay"
    order = list(dict.fromkeys(strategies))
    assert order == list(DEFAULT_CHAIN)
    assert strategies[-1] == "notify_admin" and seen[-1].attempt >= 3  # repeats, never silent


def test_stable_uptime_resets_attempts_and_strategy() -> None:
    r = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-powerd"))
    for t in range(4):
        r.on_failure(float(t))
    assert r.strategy == "restart_with_delay"
    r.on_active(10.0)
    assert not r.maybe_reset(100.0)  # up for 90 s: not yet stable
    d = r.on_failure(400.0)  # up for 390 s before failing: counts as a fresh start
    assert (d.strategy, d.attempt) == ("restart", 1)


def test_failures_outside_the_window_do_not_count() -> None:
    r = UnitRecovery(RecoveryPolicy.from_config(CFG, "tau-powerd"))
    r.on_failure(0.0)
    r.on_failure(1.0)
    d = r.on_failure(700.0)  # the first two are older than the 600 s window
    assert (d.strategy, d.attempt) == ("restart", 1)


def test_a_configured_chain() -> None:
    cfg = loads('[crash_recovery]\nmax_recovery_attempts = 2\n[recovery]\n'
                'default_strategy = "restart"\n'
                'chain = ["restart", "fallback_to_safe_mode", "notify_admin"]\n')
    r = UnitRecovery(RecoveryPolicy.from_config(cfg, "x"))
    assert [r.on_failure(float(t)).strategy for t in range(7)] == [
        "restart", "restart", "fallback_to_safe_mode", "fallback_to_safe_mode",
        "notify_admin", "notify_admin", "notify_admin"]
