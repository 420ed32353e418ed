"""The governor's control law, without I/O: pressure and heat in, the
settings each lower tier should have out.

Inputs each tick are the protected tiers' pressure *totals* (stall seconds
since boot, from cpu/memory/io.pressure): the delta between two ticks over
the elapsed time is the share of wall time stalled, which reacts within one
tick where avg10 lags by seconds.

The law, per resource (cpu, memory, io):
- **Tighten** when the worst protected tier's stall share stays above its
  target for ``react_ticks`` ticks: one step, on the lowest governed tier
  that still has room for that resource (Background, then Low, then
  Normal; for CPU only tiers that use some, since squeezing an idle tier
  frees nothing). CPU: CPUWeight halves down to its floor, then CPUQuota caps
  (halving from the CPUs' whole capacity), then AllowedCPUs narrows by one
  core down to ``min_cores``. Memory: MemoryHigh drops to 90% of the tier's
  current usage (senpai's idea: squeeze to just below what it holds, so the
  kernel reclaims its coldest pages) down to ``memory_high_floor``, with a
  ``memory.reclaim`` request of 5% of its usage. IO: IOWeight halves.
  When every lever of a hot resource is at its floor, Background is frozen
  (``freeze_background``), the last resort.
- **Relax** once the stall share has been below half its target (the
  hysteresis band) for ``relax_seconds``: one step back on the highest
  tightened tier, then again after each further ``relax_seconds`` of calm.
  Weights and quotas double back, memory.high rises by a quarter of the
  distance plus 5% of RAM, cores return one at a time, and each setting
  lands on exactly its configured value. Multiplicative tightening and
  step-wise release (AIMD) with a dead band do not oscillate: a step back
  that brings the pressure back is followed by the next tightening only
  after ``react_ticks`` hot ticks.
- **Heat**: above ``throttle_celsius`` every governed tier's CPUQuota is
  capped in proportion to how far above it is (the whole capacity at the
  line, ``min_cpu_quota`` at ``critical_celsius``); above critical,
  Background is frozen. Both clear below the line minus the hysteresis.
- **Pooling** (``resource_pooling``): while the protected tiers are idle and
  calm, the governed tiers' configured CPUQuota caps are lifted, so their
  unused share flows down; the caps return the tick the protected tiers
  use CPU or stall again. With pooling off the configured limits stay fixed
  unless pressure or heat tightens them.

It never kills: its strongest action is a freeze, which it always thaws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from taucg.config.schema import TIER_NAMES, Config, TierPolicy
from taucg.config.values import CpuSet, Size
from taucg.readers.samples import CgroupSample

RESOURCES = ("cpu", "memory", "io")
HALF = 0.5
MEMORY_SQUEEZE = 0.9  # memory.high at 90% of what the tier holds
RECLAIM_SHARE = 0.05  # memory.reclaim asks for 5% of the tier's usage per step
IDLE_CPU_PERCENT = 5.0  # protected tiers below this (of one CPU) count as idle
POOL_RELEASE = 4.0  # pooled CPU goes back once the protected use is this many times idle


def governed_tiers(protect: tuple[str, ...]) -> tuple[str, ...]:
    """The tiers below the lowest protected one, lowest first."""
    if not protect:
        return ()
    lowest = max(TIER_NAMES.index(t) for t in protect)
    return tuple(reversed(TIER_NAMES[lowest + 1:]))


@dataclass(frozen=True, slots=True)
class Reading:
    """What one tick tells the governor about one tier."""

    time: float  # monotonic seconds
    stall_seconds: Mapping[str, float]  # resource -> "some" total
    full_seconds: Mapping[str, float]  # resource -> "full" total (where the kernel has it)
    cpu_seconds: float | None  # cpu.stat usage
    memory_current: int | None

    @classmethod
    def of(cls, s: CgroupSample) -> Reading:
        some, full = {}, {}
        for r, p in (("cpu", s.pressure_cpu), ("memory", s.pressure_memory),
                     ("io", s.pressure_io)):
            if p is not None:
                some[r] = p.some.total_seconds
                if p.full is not None:
                    full[r] = p.full.total_seconds
        return cls(s.monotonic, some, full, s.cpu.usage_seconds if s.cpu else None,
                   s.memory_current)


@dataclass(frozen=True, slots=True)
class Setting:
    """A tier's governed values, in property-table terms; None: as configured."""

    cpu_weight: int | None = None
    cpu_quota: float | None = None
    allowed_cpus: CpuSet | None = None
    memory_high: Size | None = None
    io_weight: int | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k in ("cpu_weight", "cpu_quota", "allowed_cpus", "memory_high",
                               "io_weight") if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Action:
    tier: str
    kind: str  # tighten, relax, freeze, thaw, reclaim, pool, unpool, thermal
    key: str  # property key, "freeze" or "memory.reclaim"
    before: str
    after: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The settings every governed tier should have now, and why."""

    settings: Mapping[str, Mapping[str, Any]]  # tier -> property key -> value (absent: config)
    frozen: frozenset[str]
    reclaim: Mapping[str, int]  # tier -> bytes to ask memory.reclaim for, this tick
    actions: tuple[Action, ...]
    stall_percent: Mapping[str, float]  # resource -> worst protected share this tick
    celsius: float | None
    pooled: bool


@dataclass(slots=True)
class _Resource:
    hot_ticks: int = 0
    calm_since: float | None = None
    last_relax: float | None = None


@dataclass(slots=True)
class Governor:
    cfg: Config
    online_cpus: frozenset[int]
    total_memory: int
    settings: dict[str, Setting] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    _prev: dict[str, Reading] = field(default_factory=dict)
    _state: dict[str, _Resource] = field(default_factory=lambda: {r: _Resource()
                                                                   for r in RESOURCES})
    _thermal: bool = False
    _thermal_cap: float | None = None
    _thermal_frozen: bool = False
    _pressure_frozen: bool = False
    _full_ticks: int = 0
    _pooled: bool = False
    _idle_ticks: int = 0  # consecutive reads with the protected tiers idle
    _use: dict[str, float] = field(default_factory=dict)
    _usage: dict[str, int | None] = field(default_factory=dict)

    # ----------------------------------------------------------- tiers ---

    @property
    def protected(self) -> tuple[str, ...]:
        return tuple(t for t in TIER_NAMES if t in self.cfg.governor.protect)

    @property
    def governed(self) -> tuple[str, ...]:
        """Tiers below the lowest protected one, lowest first."""
        return governed_tiers(self.cfg.governor.protect)

    def _policy(self, tier: str) -> TierPolicy:
        return self.cfg.tiers[tier]

    @property
    def capacity(self) -> float:
        """CPUQuota of the whole machine, percent of one CPU."""
        return 100.0 * max(1, len(self.online_cpus))

    def configured_weight(self, tier: str, key: str) -> int:
        v = getattr(self._policy(tier), key)
        return 100 if v is None or v == "idle" else int(v)

    def configured_quota(self, tier: str) -> float:
        v = self._policy(tier).cpu_quota
        return self.capacity if v is None else float(v)

    def configured_cores(self, tier: str) -> frozenset[int]:
        cpus = self._policy(tier).allowed_cpus
        have = cpus.cpus & self.online_cpus if cpus is not None else self.online_cpus
        return have or self.online_cpus

    def configured_high(self, tier: str) -> int:
        size = self._policy(tier).memory_high
        resolved = None if size is None else size.resolve(self.total_memory)
        return self.total_memory if resolved is None else resolved

    # ------------------------------------------------------------ tick ---

    def step(self, readings: Mapping[str, CgroupSample | None], celsius: float | None
             ) -> Decision:
        g = self.cfg.governor
        now_readings = {t: Reading.of(s) for t, s in readings.items() if s is not None}
        stall = self._stall(now_readings, full=False)
        full = self._stall(now_readings, full=True)
        protected_cpu = self._protected_cpu(now_readings)
        self._use = self._cpu_use(now_readings)
        actions: list[Action] = []
        reclaim: dict[str, int] = {}
        usage = {t: r.memory_current for t, r in now_readings.items()}
        self._usage = usage
        first = not self._prev
        self._prev = now_readings
        if g.enabled and not first:
            targets = {"cpu": g.cpu_pressure_percent, "memory": g.memory_pressure_percent,
                       "io": g.io_pressure_percent}
            now = max((r.time for r in now_readings.values()), default=0.0)
            for resource in RESOURCES:
                self._control(resource, stall.get(resource), targets[resource], now,
                              usage, actions, reclaim)
            self._full_pressure(full, targets, actions)
            self._pooling(protected_cpu, stall, targets, actions)
        if self.cfg.resource_monitoring.temperature_monitoring:
            self._heat(celsius, actions)
        return Decision({tier: self.wanted(tier) for tier in self.governed},
                        frozenset(self.frozen), reclaim, tuple(actions), stall, celsius,
                        self._pooled)

    def _stall(self, now: Mapping[str, Reading], *, full: bool) -> dict[str, float]:
        """Worst protected tier's share of wall time stalled, per resource."""
        out: dict[str, float] = {}
        for tier in self.protected:
            cur, prev = now.get(tier), self._prev.get(tier)
            if cur is None or prev is None or cur.time <= prev.time:
                continue
            a, b = (prev.full_seconds, cur.full_seconds) if full else \
                (prev.stall_seconds, cur.stall_seconds)
            for r in RESOURCES:
                if r in a and r in b:
                    share = max(0.0, b[r] - a[r]) / (cur.time - prev.time) * 100
                    out[r] = max(out.get(r, 0.0), share)
        return out

    def _cpu_use(self, now: Mapping[str, Reading]) -> dict[str, float]:
        """Each tier's CPU use since the last tick, percent of one CPU."""
        out = {}
        for tier, cur in now.items():
            prev = self._prev.get(tier)
            if (prev is None or cur.cpu_seconds is None or prev.cpu_seconds is None
                    or cur.time <= prev.time):
                continue
            out[tier] = max(0.0, cur.cpu_seconds - prev.cpu_seconds) / (cur.time - prev.time) * 100
        return out

    def _protected_cpu(self, now: Mapping[str, Reading]) -> float | None:
        use = self._cpu_use(now)
        known = [use[t] for t in self.protected if t in use]
        return sum(known) if known else None

    # --------------------------------------------------------- control ---

    def _control(self, resource: str, share: float | None, target: float, now: float,
                 usage: Mapping[str, int | None], actions: list[Action],
                 reclaim: dict[str, int]) -> None:
        st = self._state[resource]
        if share is None:
            return
        reason = f"{resource} pressure on {'/'.join(self.protected)} {share:.1f}% " \
                 f"(target {target:g}%)"
        if share > target:
            st.hot_ticks += 1
            st.calm_since = None
            st.last_relax = None
            if (st.hot_ticks >= self.cfg.governor.react_ticks
                    and not self._tighten(resource, usage, actions, reclaim, reason)
                    and self._contributes("background", resource, usage)):
                # Only a Background that takes part in the contention is frozen:
                # pressure from elsewhere (system.slice, Critical itself) is not its doing.
                self._freeze(actions, reason + "; every other lever is at its floor")
            return
        st.hot_ticks = 0
        if share >= target * HALF:
            st.calm_since = None  # inside the dead band: hold
            return
        if st.calm_since is None:
            st.calm_since = now
            return
        relax = self.cfg.governor.relax_seconds
        # The first step back waits a whole period of calm, the next ones a
        # quarter each: release is bounded, and a relapse stops it early.
        wait = relax if st.last_relax is None or st.last_relax < st.calm_since else relax / 4
        since = max(st.calm_since, st.last_relax or st.calm_since)
        if now - since >= wait:
            st.last_relax = now
            calm = f"{resource} pressure {share:.1f}% below {target * HALF:g}% for " \
                   f"{relax:g} s"
            if not self._relax(resource, usage, actions, calm):
                self._thaw_pressure(actions, calm)

    def _tighten(self, resource: str, usage: Mapping[str, int | None],
                 actions: list[Action], reclaim: dict[str, int], reason: str) -> bool:
        g = self.cfg.governor
        for tier in self.governed:
            s = self.settings.get(tier, Setting())
            new = s
            if not self._contributes(tier, resource, usage):
                continue  # squeezing a tier that holds next to nothing frees nothing
            if resource == "cpu":
                w = s.cpu_weight or self.configured_weight(tier, "cpu_weight")
                q = s.cpu_quota if s.cpu_quota is not None else self.configured_quota(tier)
                cores = s.allowed_cpus.cpus if s.allowed_cpus else self.configured_cores(tier)
                # An idle tier (CPUWeight=idle) already yields to everyone.
                idle = self._policy(tier).cpu_weight == "idle"
                if w > g.min_cpu_weight and not idle:
                    new = replace(s, cpu_weight=max(g.min_cpu_weight, int(w * HALF)))
                elif q > g.min_cpu_quota:
                    new = replace(s, cpu_quota=max(g.min_cpu_quota, round(q * HALF, 2)))
                elif len(cores) > g.min_cores:
                    new = replace(s, allowed_cpus=CpuSet(frozenset(sorted(cores)[:-1])))
            elif resource == "memory":
                floor = g.memory_high_floor.resolve(self.total_memory) or self.total_memory
                current = usage.get(tier)
                high = (s.memory_high.bytes if s.memory_high and s.memory_high.bytes
                        else self.configured_high(tier))
                if current and high > floor:
                    target = max(floor, min(high, int(current * MEMORY_SQUEEZE)) // 4096 * 4096)
                    if target < high:
                        new = replace(s, memory_high=Size(bytes=target))
                        reclaim[tier] = int(current * RECLAIM_SHARE) // 4096 * 4096
            elif resource == "io":
                w = s.io_weight or self.configured_weight(tier, "io_weight")
                if w > g.min_io_weight:
                    new = replace(s, io_weight=max(g.min_io_weight, int(w * HALF)))
            if new != s:
                self._record(tier, "tighten", s, new, actions, reason)
                self.settings[tier] = new
                return True
        return False

    def _contributes(self, tier: str, resource: str, usage: Mapping[str, int | None]) -> bool:
        """Whether the tier takes a real part in the contention for a resource:
        some CPU, or a memory share worth reclaiming (2% of RAM, and more
        than twice the floor). IO has no per-tier reading here: every tier."""
        if tier not in self.governed:
            return False
        if resource == "cpu":
            return self._use.get(tier, 0.0) >= IDLE_CPU_PERCENT
        if resource == "memory":
            floor = self.cfg.governor.memory_high_floor.resolve(self.total_memory) or 0
            return (usage.get(tier) or 0) >= max(2 * floor, self.total_memory // 50)
        return True

    def _relax(self, resource: str, usage: Mapping[str, int | None], actions: list[Action],
               reason: str) -> bool:
        """One step back on the highest tightened tier; False: nothing to give back."""
        for tier in reversed(self.governed):
            s = self.settings.get(tier)
            if s is None:
                continue
            new = s
            if resource == "cpu":
                if s.allowed_cpus is not None:
                    cores = self.configured_cores(tier)
                    missing = cores - s.allowed_cpus.cpus
                    grown = set(s.allowed_cpus.cpus) | ({min(missing)} if missing else set())
                    new = replace(s, allowed_cpus=None if grown >= cores
                                  else CpuSet(frozenset(grown)))
                elif s.cpu_quota is not None:
                    q = s.cpu_quota * 2
                    new = replace(s, cpu_quota=None if q >= self.configured_quota(tier) else q)
                elif s.cpu_weight is not None:
                    w = s.cpu_weight * 2
                    new = replace(s, cpu_weight=None if w >= self.configured_weight(
                        tier, "cpu_weight") else w)
            elif resource == "memory" and s.memory_high is not None:
                want = self.configured_high(tier)
                have = s.memory_high.bytes or want
                up = have + (want - have) // 4 + int(self.total_memory * 0.05)
                new = replace(s, memory_high=None if up >= want
                              else Size(bytes=up // 4096 * 4096))
            elif resource == "io" and s.io_weight is not None:
                w = s.io_weight * 2
                new = replace(s, io_weight=None if w >= self.configured_weight(
                    tier, "io_weight") else w)
            if new != s:
                self._record(tier, "relax", s, new, actions, reason)
                if new == Setting():
                    del self.settings[tier]
                else:
                    self.settings[tier] = new
                return True
        return False

    def _record(self, tier: str, kind: str, old: Setting, new: Setting,
                actions: list[Action], reason: str) -> None:
        for key in ("cpu_weight", "cpu_quota", "allowed_cpus", "memory_high", "io_weight"):
            a, b = getattr(old, key), getattr(new, key)
            if a != b:
                actions.append(Action(tier, kind, key, _show(a), _show(b), reason))

    # ------------------------------------------------- freeze and heat ---

    def _freeze(self, actions: list[Action], reason: str) -> None:
        if not self.cfg.governor.freeze_background or "background" not in self.governed:
            return
        self._pressure_frozen = True
        if "background" not in self.frozen:
            self.frozen.add("background")
            actions.append(Action("background", "freeze", "freeze", "running", "frozen",
                                  reason))

    def _full_pressure(self, full: Mapping[str, float], targets: Mapping[str, float],
                       actions: list[Action]) -> None:
        """Every task of a protected tier stalled ("full") above the target for
        react_ticks ticks: the last resort at once, whatever levers remain."""
        worst = max(((r, full[r]) for r in ("cpu", "memory") if r in full),
                    key=lambda rv: rv[1] / targets[rv[0]], default=None)
        if worst is None or worst[1] <= targets[worst[0]]:
            self._full_ticks = 0
            return
        self._full_ticks += 1
        if (self._full_ticks >= self.cfg.governor.react_ticks
                and self._contributes("background", worst[0], self._usage)):
            self._freeze(actions, f"full {worst[0]} pressure on {'/'.join(self.protected)} "
                                  f"{worst[1]:.1f}% (target {targets[worst[0]]:g}%)")

    def _thaw_pressure(self, actions: list[Action], reason: str) -> None:
        """A pressure freeze ends once nothing is hot and the levers were given back."""
        if not self._pressure_frozen or self._full_ticks:
            return
        if any(st.hot_ticks for st in self._state.values()):
            return
        self._pressure_frozen = False
        if not self._thermal_frozen and "background" in self.frozen:
            self.frozen.discard("background")
            actions.append(Action("background", "thaw", "freeze", "frozen", "running",
                                  reason))

    def _heat(self, celsius: float | None, actions: list[Action]) -> None:
        th, g = self.cfg.thermal, self.cfg.governor
        if celsius is None:
            return
        if celsius >= th.throttle_celsius:
            self._thermal = True
        elif celsius < th.throttle_celsius - th.hysteresis_celsius:
            self._thermal = False
        cap = None
        if self._thermal:
            span = max(0.1, th.critical_celsius - th.throttle_celsius)
            excess = min(1.0, max(0.0, (celsius - th.throttle_celsius) / span))
            # In steps of 5% of capacity, so a drifting sensor does not rewrite
            # cpu.max every tick.
            step = self.capacity / 20
            cap = max(g.min_cpu_quota, round(self.capacity * (1 - excess) / step) * step)
        if cap != self._thermal_cap:
            reason = (f"temperature {celsius:.1f} °C (throttle at {th.throttle_celsius:g} °C"
                      + (f", released below {th.throttle_celsius - th.hysteresis_celsius:g} °C)"
                         if cap is None else ")"))
            before = {t: self.wanted(t).get("cpu_quota") for t in self.governed}
            self._thermal_cap = cap
            for tier in self.governed:
                after = self.wanted(tier).get("cpu_quota")
                if after != before[tier]:  # a tier whose own cap is lower keeps it
                    actions.append(Action(tier, "thermal", "cpu_quota", _cap(before[tier]),
                                          _cap(after), reason))
        hot = celsius >= th.critical_celsius
        cool = celsius < th.critical_celsius - th.hysteresis_celsius
        if hot and not self._thermal_frozen and "background" in self.governed:
            self._thermal_frozen = True
            if "background" not in self.frozen:
                self.frozen.add("background")
                actions.append(Action("background", "freeze", "freeze", "running", "frozen",
                                      f"temperature {celsius:.1f} °C at or above critical "
                                      f"{th.critical_celsius:g} °C"))
        elif cool and self._thermal_frozen:
            self._thermal_frozen = False
            if not self._pressure_frozen:
                self.frozen.discard("background")
                actions.append(Action("background", "thaw", "freeze", "frozen", "running",
                                      f"temperature {celsius:.1f} °C, below critical"))

    def _pooling(self, protected_cpu: float | None, stall: Mapping[str, float],
                 targets: Mapping[str, float], actions: list[Action]) -> None:
        if not self.cfg.process_management.resource_pooling:
            return
        calm = all(stall.get(r, 0.0) < targets[r] * HALF for r in RESOURCES)
        # Hysteresis: pooling starts after react_ticks idle reads and ends
        # only when the protected tiers use POOL_RELEASE times the idle
        # level. Without it the daemon's own faster sampling while pooled
        # (it lives in Critical) unpooled it, and the two flapped each second.
        use = protected_cpu if protected_cpu is not None else float("inf")
        self._idle_ticks = self._idle_ticks + 1 if use < IDLE_CPU_PERCENT else 0
        limit = IDLE_CPU_PERCENT * POOL_RELEASE if self._pooled else IDLE_CPU_PERCENT
        idle = use < limit and (self._pooled or
                                self._idle_ticks >= self.cfg.governor.react_ticks)
        capped = [t for t in self.governed if self._policy(t).cpu_quota is not None]
        if not capped:
            return
        if calm and idle and not self._thermal and not self.settings:
            if not self._pooled:
                self._pooled = True
                for tier in capped:
                    actions.append(Action(tier, "pool", "cpu_quota",
                                          f"{self.configured_quota(tier):g}%", "none",
                                          "the protected tiers are idle: their CPU flows down"))
            return
        if self._pooled:
            self._pooled = False
            why = ("the protected tiers use CPU again" if not idle else
                   "pressure on the protected tiers")
            for tier in capped:
                actions.append(Action(tier, "unpool", "cpu_quota", "none",
                                      f"{self.configured_quota(tier):g}%", why))

    # --------------------------------------------------------- output ---

    def wanted(self, tier: str) -> dict[str, Any]:
        """The values the tier should carry now, for every governed key: the
        pressure settings, the configured CPUQuota lifted while pooling, and
        the heat's cap over both."""
        out = self.settings.get(tier, Setting()).values()
        quota = out.get("cpu_quota")
        if self._pooled and quota is None and self._policy(tier).cpu_quota is not None:
            quota = self.capacity
        if self._thermal_cap is not None:
            base = quota if quota is not None else self.configured_quota(tier)
            quota = min(base, self._thermal_cap)
        if quota is not None:
            out["cpu_quota"] = quota
        return out

    @property
    def quiet(self) -> bool:
        """Nothing governed: every tier carries exactly its config."""
        return (not self.settings and not self.frozen and self._thermal_cap is None
                and not self._pooled)


def _cap(v: float | None) -> str:
    return "none" if v is None else f"{v:g}%"


def _show(v: Any) -> str:
    if v is None:
        return "configured"
    if isinstance(v, float):
        return f"{v:g}%"
    return str(v)
