"""Any valid config survives load -> dump -> load unchanged."""

from __future__ import annotations

import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from taucg.config.loading import loads, to_dict
from taucg.config.schema import STRATEGIES, TIER_NAMES

sizes_bytes = st.integers(min_value=0, max_value=1 << 50)
# At least 1G, so that a lone memory_max stays above the defaults' memory_low.
suffix_sizes = st.builds(lambda n, s: f"{n}{s}", st.integers(1, 4096), st.sampled_from("GT"))
cpu_lists = st.sets(st.integers(0, 63), min_size=1, max_size=8).map(
    lambda s: ",".join(str(c) for c in sorted(s)))


@st.composite
def tiers(draw: st.DrawFn) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    used_units: set[str] = set()
    for name in draw(st.lists(st.sampled_from(TIER_NAMES), unique=True)):
        t: dict[str, object] = {}
        if draw(st.booleans()):
            t["cpu_weight"] = draw(st.integers(1, 10000))
        if draw(st.booleans()):
            t["cpu_quota"] = draw(st.floats(0.5, 800, allow_nan=False).map(lambda f: round(f, 2)))
        if draw(st.booleans()):
            # All four, sorted, so that min <= low <= high <= max holds whatever
            # the defaults say.
            picked = sorted(draw(st.lists(sizes_bytes, min_size=4, max_size=4)))
            for key, val in zip(("memory_min", "memory_low", "memory_high", "memory_max"),
                                picked, strict=True):
                t[key] = val
        elif draw(st.booleans()):
            t["memory_max"] = draw(st.one_of(suffix_sizes, st.just("infinity"),
                                             st.integers(60, 100).map(lambda p: f"{p}%")))
        if draw(st.booleans()):
            t["allowed_cpus"] = draw(cpu_lists)
        if draw(st.booleans()):
            t["io_weight"] = draw(st.integers(1, 10000))
        if draw(st.booleans()):
            t["tasks_max"] = draw(st.one_of(st.integers(1, 100000), st.just("infinity")))
        units = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
                              max_size=3, unique=True))
        units = [u for u in units if u not in used_units]
        used_units.update(units)
        t["units"] = [f"{u}.service" for u in units]
        out[name] = t
    return out


rules = st.lists(st.fixed_dictionaries(
    {"tier": st.sampled_from(TIER_NAMES)},
    optional={"comm": st.from_regex(r"[a-z*?]{1,10}", fullmatch=True),
              "exe": st.just("/usr/bin/*"),
              "cmdline": st.just("^python3? .*"),
              "user": st.one_of(st.integers(0, 65535), st.just("www-data")),
              "unit": st.just("cron.service")},
).filter(lambda r: len(r) > 1), max_size=4)

sections = st.fixed_dictionaries({}, optional={
    "resource_monitoring": st.fixed_dictionaries({}, optional={
        "interval_seconds": st.integers(1, 86400),
        "cpu_threshold_percent": st.floats(0, 100),
        "network_monitoring": st.booleans()}),
    "process_management": st.fixed_dictionaries({}, optional={
        "max_concurrent_processes": st.integers(1, 100000),
        "process_priority_levels": st.integers(0, 5)}),
    "crash_recovery": st.fixed_dictionaries({}, optional={
        "critical_processes": st.lists(st.from_regex(r"[a-z]{1,8}(\.service)?", fullmatch=True),
                                       max_size=4)}),
    "health_checking": st.fixed_dictionaries({}, optional={
        "health_score_threshold": st.floats(0, 1)}),
    "logging": st.fixed_dictionaries({}, optional={
        "log_level": st.sampled_from(["debug", "info", "warning", "error", "critical"]),
        "log_file_path": st.from_regex(r"/[a-z]{1,8}/[a-z]{1,8}\.log", fullmatch=True)}),
    "tiers": tiers(),
    "rules": rules,
    "recovery": st.fixed_dictionaries({}, optional={
        "default_strategy": st.sampled_from(STRATEGIES)}),
})


@settings(max_examples=150, deadline=None)
@given(sections)
def test_round_trip(data: dict[str, object]) -> None:
    first = loads(tomli_w.dumps(data), "gen.toml")
    dumped = tomli_w.dumps(to_dict(first))
    second = loads(dumped, "dump.toml")
    assert second == first
    # And the admin's own values really took effect.
    for name, tier in data.get("tiers", {}).items():  # type: ignore[attr-defined]
        if "cpu_weight" in tier:
            assert first.tiers[name].cpu_weight == tier["cpu_weight"]
