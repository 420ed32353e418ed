"""Recovery decisions, without I/O: what to do about a unit's failure given
its policy and what happened before.

Strategies, in escalation order (the default chain):

    restart -> restart_with_delay -> restart_with_backoff
            -> fallback_to_safe_mode -> notify_admin

A unit starts at its configured strategy. After ``max_attempts`` failures
within ``window_seconds`` it escalates to the next one; notify_admin is
the end of the chain and repeats (never silent). Once a unit has stayed up
for ``stable_seconds`` its attempts reset and it returns to its configured
strategy, unlike systemd's RestartSteps, which never resets
(systemd issue #43813).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from taucg.config import STRATEGIES, Config
from taucg.values import unit_name

CHAIN = STRATEGIES  # config.STRATEGIES is listed in escalation order
DEFAULT_STABLE_SECONDS = 300.0
DEFAULT_WINDOW_SECONDS = 600.0
DEFAULT_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    unit: str
    strategy: str
    max_attempts: int
    delay_seconds: float
    max_delay_seconds: float
    backoff_multiplier: float
    timeout_seconds: float
    stable_seconds: float = DEFAULT_STABLE_SECONDS
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    jitter: float = DEFAULT_JITTER

    @classmethod
    def from_config(cls, cfg: Config, unit: str) -> RecoveryPolicy:
        unit = unit_name(unit)
        svc = next((s for name, s in cfg.recovery.services.items()
                    if unit_name(name) == unit), None)
        base = cfg.crash_recovery
        if svc is None:
            from taucg.config import RecoveryService

            svc = RecoveryService()
        return cls(
            unit=unit,
            strategy=svc.strategy or cfg.recovery.default_strategy,
            max_attempts=svc.max_attempts or base.max_recovery_attempts,
            delay_seconds=svc.delay_seconds,
            max_delay_seconds=svc.max_delay_seconds,
            backoff_multiplier=svc.backoff_multiplier,
            timeout_seconds=float(base.recovery_timeout_seconds),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    strategy: str
    attempt: int  # 1-based, within the current strategy
    delay: float  # seconds to wait before acting
    escalated_from: str | None = None


@dataclass(slots=True)
class UnitRecovery:
    """One unit's recovery state; feed it failures and up-times."""

    policy: RecoveryPolicy
    rand: Callable[[], float] = field(default=random.random)
    strategy: str = ""
    failures: list[float] = field(default_factory=list)  # in the current strategy
    up_since: float | None = None

    def __post_init__(self) -> None:
        if not self.strategy:
            self.strategy = self.policy.strategy

    def on_active(self, now: float) -> None:
        if self.up_since is None:
            self.up_since = now

    def maybe_reset(self, now: float) -> bool:
        """After stable_seconds of uptime: back to the configured strategy."""
        if self.up_since is None or now - self.up_since < self.policy.stable_seconds:
            return False
        changed = bool(self.failures) or self.strategy != self.policy.strategy
        self.failures.clear()
        self.strategy = self.policy.strategy
        return changed

    def on_failure(self, now: float) -> Decision:
        self.maybe_reset(now)
        self.up_since = None
        window = self.policy.window_seconds
        self.failures = [t for t in self.failures if now - t < window]
        escalated_from = None
        if len(self.failures) >= self.policy.max_attempts and self.strategy != CHAIN[-1]:
            escalated_from = self.strategy
            self.strategy = CHAIN[CHAIN.index(self.strategy) + 1]
            self.failures = []
        self.failures.append(now)
        attempt = len(self.failures)
        return Decision(self.strategy, attempt, self.delay(self.strategy, attempt),
                        escalated_from)

    def delay(self, strategy: str, attempt: int) -> float:
        p = self.policy
        if strategy == "restart_with_delay":
            return p.delay_seconds
        if strategy != "restart_with_backoff":
            return 0.0
        base = min(p.max_delay_seconds, p.delay_seconds * p.backoff_multiplier ** (attempt - 1))
        # Jitter spreads restarts of units that failed together.
        jittered = base * (1 - p.jitter + 2 * p.jitter * self.rand())
        return min(p.max_delay_seconds, max(0.0, jittered))
