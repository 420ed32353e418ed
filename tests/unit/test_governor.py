"""The governor's control law on synthetic pressure series: it tightens
lowest first, never oscillates, and gives every setting back exactly."""

from __future__ import annotations

from collections.abc import Iterator

from taucg.config.loading import loads
from taucg.config.values import CpuSet, Size
from taucg.model.governor import Decision, Governor
from taucg.readers.samples import CgroupCpu, CgroupSample, Pressure, PressureLine

GIB = 1 << 30
CONFIG = """
[governor]
react_ticks = 2
relax_seconds = 10.0
[process_management]
resource_pooling = false
"""


def line(total: float) -> PressureLine:
    return PressureLine(0.0, 0.0, 0.0, total)


def sample(t: float, cpu_stall: float = 0.0, mem_stall: float = 0.0, io_stall: float = 0.0,
           cpu_used: float = 0.0, memory: int = GIB, mem_full: float = 0.0) -> CgroupSample:
    return CgroupSample(
        "/x", t, CgroupCpu(cpu_used, cpu_used, 0.0, 0, 0, 0.0), memory, None, None, None,
        None, 1, None, None,
        Pressure(line(cpu_stall), line(0.0)), Pressure(line(mem_stall), line(mem_full)),
        Pressure(line(io_stall), None), True, False)


class Series:
    """Feeds the governor one tick a second; ``share`` is the protected tiers'
    stall percentage for the resource under test."""

    def __init__(self, config: str = CONFIG, *, resource: str = "cpu",
                 celsius: float | None = None) -> None:
        self.gov = Governor(loads(config), frozenset({0, 1, 2, 3}), 8 * GIB)
        self.t = 0.0
        self.totals = {"cpu": 0.0, "memory": 0.0, "io": 0.0, "full": 0.0}
        self.resource = resource
        self.celsius = celsius
        self.decisions: list[Decision] = []

    def tick(self, share: float, full: float = 0.0, protected_cpu: float = 0.0) -> Decision:
        """protected_cpu: Critical's CPU use this tick, percent of one CPU."""
        self.t += 1.0
        self.totals[self.resource] += share / 100
        self.totals["full"] += full / 100
        self.totals["critical_cpu"] = self.totals.get("critical_cpu", 0.0) + protected_cpu / 100
        protected = sample(self.t, self.totals["cpu"], self.totals["memory"],
                           self.totals["io"], mem_full=self.totals["full"],
                           cpu_used=self.totals["critical_cpu"])
        lower = sample(self.t, memory=2 * GIB, cpu_used=self.t * 0.5)  # half a CPU each
        readings = {"critical": protected, "high": sample(self.t), "normal": lower,
                    "low": lower, "background": lower}
        d = self.gov.step(readings, self.celsius)
        self.decisions.append(d)
        return d

    def run(self, share: float, ticks: int) -> Iterator[Decision]:
        for _ in range(ticks):
            yield self.tick(share)


def kinds(decisions: list[Decision]) -> list[tuple[str, str, str]]:
    return [(a.kind, a.tier, a.key) for d in decisions for a in d.actions]


def test_tightens_lowest_first_and_only_after_react_ticks() -> None:
    s = Series()
    s.tick(0.0)  # the first reading only sets the baseline
    assert s.tick(50.0).actions == ()  # one hot tick is not yet "stays above"
    d = s.tick(50.0)
    assert [(a.tier, a.key, a.before, a.after) for a in d.actions] == [
        ("background", "cpu_weight", "configured", "5")]
    assert "cpu pressure on critical/high 50.0%" in d.actions[0].reason
    for _ in range(20):
        s.tick(50.0)
    order = [a.tier for a in (a for d in s.decisions for a in d.actions)]
    # Background runs out of levers before Low is touched, Low before Normal.
    assert order.index("low") > max(i for i, t in enumerate(order) if t == "background")
    assert "normal" not in order[:order.index("low")]


def test_cpu_levers_in_order_weight_quota_cores() -> None:
    s = Series()
    s.tick(0.0)
    for _ in range(12):
        s.tick(60.0)
    bg = [(a.key, a.after) for d in s.decisions for a in d.actions if a.tier == "background"]
    keys = [k for k, _ in bg]
    assert keys[:3] == ["cpu_weight"] * 3  # 10 -> 5 -> 2 -> 1
    assert [v for k, v in bg if k == "cpu_weight"] == ["5", "2", "1"]
    assert keys.index("cpu_quota") > keys.index("cpu_weight")
    assert "allowed_cpus" in keys and keys.index("allowed_cpus") > keys.index("cpu_quota")
    wanted = s.decisions[-1].settings["background"]
    assert wanted["cpu_weight"] == 1 and wanted["cpu_quota"] == 5.0


def test_relaxes_back_to_exactly_the_config_in_bounded_steps() -> None:
    s = Series()
    s.tick(0.0)
    for _ in range(30):
        s.tick(60.0)
    assert s.gov.settings  # something is governed
    steps = ticks = 0
    while not s.gov.quiet:
        ticks += 1
        assert ticks < 400, "never released"
        steps += sum(1 for a in s.tick(0.0).actions if a.kind == "relax")
    # 10 s of calm, then a step every 2.5 s (every third 1 s tick): bounded.
    assert steps <= 40 and ticks <= 12 + 3 * steps
    assert all(not v for v in s.decisions[-1].settings.values())
    assert s.decisions[-1].frozen == frozenset()


def test_no_oscillation_in_the_dead_band() -> None:
    """Pressure that settles between half the target and the target neither
    tightens further nor relaxes: the settings hold still."""
    s = Series()
    s.tick(0.0)
    for _ in range(4):
        s.tick(40.0)
    held = dict(s.gov.settings)
    acts = [a for d in s.run(7.0, 200) for a in d.actions]  # target 10, band 5-10
    assert acts == []
    assert s.gov.settings == held


def test_flapping_pressure_does_not_ratchet_both_ways() -> None:
    """Alternating hot and calm ticks never reach react_ticks in a row and
    never stay calm long enough to relax: no action at all."""
    s = Series()
    s.tick(0.0)
    acts = [a for _ in range(100) for share in (50.0, 0.0) for a in s.tick(share).actions]
    assert acts == []


def test_memory_squeezes_to_below_usage_with_reclaim_and_a_floor() -> None:
    s = Series(resource="memory")
    s.tick(0.0)
    s.tick(30.0)
    d = s.tick(30.0)
    a = d.actions[0]
    assert (a.tier, a.key) == ("background", "memory_high")
    high = d.settings["background"]["memory_high"]
    assert isinstance(high, Size) and high.bytes == int(2 * GIB * 0.9) // 4096 * 4096
    assert d.reclaim == {"background": int(2 * GIB * 0.05) // 4096 * 4096}
    for _ in range(100):
        s.tick(30.0)
    for tier in ("background", "low", "normal"):
        got = s.gov.settings[tier].memory_high
        assert got is not None and got.bytes is not None and got.bytes >= 64 << 20


def test_full_pressure_freezes_background_then_thaws_when_calm() -> None:
    s = Series(resource="memory")
    s.tick(0.0)
    s.tick(50.0, full=30.0)
    d = s.tick(50.0, full=30.0)
    assert "background" in d.frozen
    assert ("freeze", "background", "freeze") in kinds([d])
    for _ in range(300):
        d = s.tick(0.0)
        if "background" not in d.frozen:
            break
    assert "background" not in d.frozen
    assert ("thaw", "background", "freeze") in kinds(s.decisions)


def test_never_more_than_one_freeze_and_no_kill_action() -> None:
    s = Series()
    s.tick(0.0)
    for _ in range(200):
        s.tick(90.0)
    all_kinds = {k for k, _, _ in kinds(s.decisions)}
    assert all_kinds <= {"tighten", "freeze"}
    assert sum(1 for k, _, _ in kinds(s.decisions) if k == "freeze") == 1


def test_heat_caps_cpu_in_proportion_and_gives_it_back() -> None:
    s = Series(celsius=40.0)
    s.tick(0.0)
    assert "cpu_quota" not in s.tick(0.0).settings["background"]  # as configured
    s.celsius = 90.0  # halfway between throttle 85 and critical 95
    d = s.tick(0.0)
    assert d.settings["low"]["cpu_quota"] == 200.0  # half of four CPUs
    assert d.settings["background"]["cpu_quota"] == 50.0  # its config is lower already
    s.celsius = 96.0
    assert "background" in s.tick(0.0).frozen
    s.celsius = 83.0  # below critical - 3, but not below throttle - 3: still capped
    d = s.tick(0.0)
    assert "background" not in d.frozen and d.settings["low"]["cpu_quota"] == 400.0
    s.celsius = 81.0
    d = s.tick(0.0)
    assert "cpu_quota" not in d.settings["low"]
    assert s.gov.quiet


def test_temperature_monitoring_off_ignores_heat() -> None:
    s = Series(CONFIG + "[resource_monitoring]\ntemperature_monitoring = false\n",
               celsius=99.0)
    s.tick(0.0)
    d = s.tick(0.0)
    assert d.frozen == frozenset() and "cpu_quota" not in d.settings["low"]


def test_pooling_lifts_configured_caps_while_protected_idle() -> None:
    s = Series(CONFIG.replace("resource_pooling = false", "resource_pooling = true"))
    s.tick(0.0)
    assert not s.tick(0.0).pooled  # one idle read is not yet "idle": react_ticks = 2
    d = s.tick(0.0)
    assert d.pooled and d.settings["background"]["cpu_quota"] == 400.0
    assert "cpu_quota" not in d.settings["low"]  # no configured cap to lift
    s.tick(50.0)  # the protected tiers stall: the cap returns at once
    d = s.decisions[-1]
    assert not d.pooled and "cpu_quota" not in d.settings["background"]
    assert ("unpool", "background", "cpu_quota") in kinds([d])


def test_pooling_does_not_flap_on_a_little_protected_cpu() -> None:
    # Seen in the VM: pooled, the daemon (in Critical) sampled faster, used
    # a few percent more CPU, unpooled, slowed down, pooled: every second.
    s = Series(CONFIG.replace("resource_pooling = false", "resource_pooling = true"))
    for _ in range(3):
        s.tick(0.0)
    assert s.decisions[-1].pooled
    for _ in range(10):
        s.tick(0.0, protected_cpu=12.0)  # above idle (5%), below the release level
    assert all(d.pooled for d in s.decisions[-10:])
    assert [k for k in kinds(s.decisions) if k[0] in ("pool", "unpool")] == [
        ("pool", "background", "cpu_quota")]
    d = s.tick(0.0, protected_cpu=30.0)  # Critical works: its CPU comes back
    assert not d.pooled and ("unpool", "background", "cpu_quota") in kinds([d])


def test_disabled_governor_and_cores_floor() -> None:
    off = Series(CONFIG + "[governor]\n" if False else CONFIG.replace(
        "react_ticks = 2", "enabled = false\nreact_ticks = 2"))
    off.tick(0.0)
    assert [a for d in off.run(90.0, 50) for a in d.actions] == []
    s = Series()
    s.tick(0.0)
    for _ in range(200):
        s.tick(90.0)
    for tier in ("background", "low", "normal"):
        cpus = s.gov.settings[tier].allowed_cpus
        assert isinstance(cpus, CpuSet) and len(cpus.cpus) == 1


def test_a_tier_that_uses_no_cpu_is_not_squeezed_for_cpu() -> None:
    s = Series()
    s.tick(0.0)
    # Only Normal uses CPU: Background and Low are skipped for the CPU levers.
    for _ in range(6):
        s.t += 1.0
        s.totals["cpu"] += 0.5
        busy = sample(s.t, memory=GIB, cpu_used=s.t)
        idle = sample(s.t, memory=GIB)
        prot = sample(s.t, s.totals["cpu"])
        s.decisions.append(s.gov.step({"critical": prot, "high": sample(s.t), "normal": busy,
                                       "low": idle, "background": idle}, None))
    assert {a.tier for d in s.decisions for a in d.actions} == {"normal"}


def test_an_empty_background_is_never_frozen() -> None:
    """Pressure from elsewhere (system.slice, Critical's own threads) is no
    reason to freeze a Background that holds nothing."""
    s = Series(resource="memory")
    s.tick(0.0)
    for _ in range(10):
        s.t += 1.0
        s.totals["memory"] += 0.5
        s.totals["full"] += 0.3
        prot = sample(s.t, mem_stall=s.totals["memory"], mem_full=s.totals["full"])
        empty = sample(s.t, memory=1 << 20)
        s.decisions.append(s.gov.step({"critical": prot, "high": sample(s.t), "normal": empty,
                                       "low": empty, "background": empty}, None))
    assert all(d.frozen == frozenset() for d in s.decisions)
    assert [a for d in s.decisions for a in d.actions] == []
