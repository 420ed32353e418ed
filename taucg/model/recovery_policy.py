"""Recovery decisions, without I/O: what to do about a unit's failure given
its policy and what happened before.

Strategies, in escalation order (the default [recovery] chain):

    restart -> restart_with_delay -> restart_with_backoff
            -> fallback_to_safe_mode -> notify_admin

A unit starts at its configured strategy. After ``max_attempts`` failures
within ``window_seconds`` it escalates to the next one in the chain (from a
strategy not in the chain, to the chain's first); the chain's last entry
repeats. Once a unit has stayed up
for ``stable_seconds`` its attempts reset and it returns to its configured
strategy, unlike systemd's RestartSteps, which never resets
(systemd issue #43813).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from taucg.config.schema import STRATEGIES, Config
from taucg.config.values import unit_name

DEFAULT_CHAIN = STRATEGIES  # config.STRATEGIES is listed in escalation order
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
    stable_seconds: float = 300.0
    window_seconds: float = 600.0
    chain: tuple[str, ...] = DEFAULT_CHAIN
    jitter: float = DEFAULT_JITTER

    @classmethod
    def from_config(cls, cfg: Config, unit: str) -> RecoveryPolicy:
        unit = unit_name(unit)
        svc = next((s for name, s in cfg.recovery.services.items()
                    if unit_name(name) == unit), None)
        base = cfg.crash_recovery
        if svc is None:
            from taucg.config.schema import RecoveryService

            svc = RecoveryService()
        return cls(
            unit=unit,
            strategy=svc.strategy or cfg.recovery.default_strategy,
            max_attempts=svc.max_attempts or base.max_recovery_attempts,
            delay_seconds=svc.delay_seconds,
            max_delay_seconds=svc.max_delay_seconds,
            backoff_multiplier=svc.backoff_multiplier,
            timeout_seconds=float(base.recovery_timeout_seconds),
            stable_seconds=cfg.recovery.stable_seconds,
            window_seconds=cfg.recovery.window_seconds,
            chain=cfg.recovery.chain,
        )

    def next_strategy(self, current: str) -> str:
        chain = self.chain
        if current not in chain:
            return chain[0] if chain else current
        i = chain.index(current)
        return chain[i + 1] if i + 1 < len(chain) else current


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
        following = self.policy.next_strategy(self.strategy)
        if len(self.failures) >= self.policy.max_attempts and following != self.strategy:
            escalated_from = self.strategy
            self.strategy = following
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
