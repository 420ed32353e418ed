"""The exposition by Prometheus's conventions, on a daemon state built from
known samples: every value is the sample's own, no metric is a percent,
and summing a tier metric over its tiers counts each thing once."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taucg import __version__
from taucg.config.schema import TIER_NAMES
from taucg.faces.daemon_state import DaemonState, GovernorView, Tick
from taucg.faces.metrics import DaemonCollector
from taucg.model.health import CheckResult, Health, ServiceState
from taucg.readers.cgroupfs import CpuMax, MemberUsage
from taucg.readers.samples import (
    CgroupCpu,
    CgroupIo,
    CgroupMemoryEvents,
    CgroupSample,
    CpuTimes,
    MemInfo,
    Pressure,
    PressureLine,
)


def tier_sample(i: int) -> CgroupSample:
    """Tier i's slice: every value derived from i, so each is told apart."""
    line = PressureLine(0.0, 0.0, 0.0, 0.5 * i)
    return CgroupSample(
        f"/tau.slice/t{i}", 100.0, CgroupCpu(10.0 * i, 6.0 * i, 4.0 * i, 100 * i, 7 * i, 0.25 * i),
        1000 * i, "max" if i % 2 else 4000 * i, 3000 * i, None,
        CgroupMemoryEvents(0, 20 * i, 3 * i, i, 2 * i), 5 * i, "max" if i == 1 else 50 * i,
        CgroupIo(11 * i, 13 * i, 0, 0), Pressure(line, line), Pressure(line, line),
        Pressure(line, None), True, False)


def state() -> DaemonState:
    cgroups = {t: tier_sample(i + 1) for i, t in enumerate(TIER_NAMES)}
    members = {"normal": {"web.service": MemberUsage(1.5, 2048, 4),
                          "run-u7.scope": MemberUsage(0.5, 1024, 1)},
               "low": {"batch.service": MemberUsage(None, None, None)}}
    units = {"web.service": ServiceState("web.service", "loaded", "active", 3),
             "batch.service": ServiceState("batch.service", "loaded", "failed", 0)}
    tick = Tick(time=1_700_000_000.5, seconds=0.01, processes=42, cpu_percent=55.0,
                memory_percent=40.0, tiers={}, cgroups=cgroups,
                cpu_max={"low": CpuMax(50_000, 100_000), "normal": CpuMax(None, 100_000)},
                members=members,
                cpu_times=CpuTimes(None, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0, 0),
                memory=MemInfo(1000, 100, 600, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    gv = GovernorView(protect=("critical",), targets={}, stall_percent={"cpu": 25.0},
                      celsius=None, pooled=False,
                      settings={"low": {"cpu_weight": 25, "cpu_quota": 150.0}},
                      frozen=frozenset(), actions=(), actions_total={"tighten": 2})
    return DaemonState(pid=1, version=__version__, started=0.0, config_file=None,
                       generation=1, loaded_at=0.0, interval_seconds=5, sweeps=7,
                       sweep_seconds_total=0.07, last=tick, governor=gv, units=units,
                       health=Health(0.6, 0.75, (CheckResult("memory_usage", 0.6, "40%"),)))


def exposition(s: DaemonState) -> str:
    registry = CollectorRegistry()
    registry.register(DaemonCollector(lambda: s))
    return generate_latest(registry).decode()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sm in family.samples:
            out[sm.name].append((sm.labels, sm.value))
    return out


@pytest.fixture(scope="module")
def text() -> str:
    return exposition(state())


def value(text: str, name: str, **labels: str) -> float:
    found = [v for ls, v in samples(text)[name] if ls == labels]
    assert len(found) == 1, (name, labels, samples(text)[name])
    return found[0]


def test_no_metric_is_a_percent(text: str) -> None:
    names = set(samples(text))
    assert names and not [n for n in names if "percent" in n]
    assert not [n for n in names if "avg10" in n]  # a kernel average of a percent


def test_tier_metrics_sum_once_over_the_five_tiers(text: str) -> None:
    """For each metric with a tier label: only the five tiers (no "all"),
    one sample per tier for each other label set, finite values, so that
    sum by () is the total of distinct things."""
    tiered = 0
    for name, rows in samples(text).items():
        if not any("tier" in ls for ls, _ in rows):
            continue
        tiered += 1
        seen: dict[tuple[tuple[str, str], ...], set[str]] = defaultdict(set)
        for ls, v in rows:
            assert ls["tier"] in TIER_NAMES, (name, ls)
            assert math.isfinite(v), (name, ls, v)
            rest = tuple(sorted((k, x) for k, x in ls.items() if k != "tier"))
            assert ls["tier"] not in seen[rest], f"{name} counts tier {ls['tier']} twice"
            seen[rest].add(ls["tier"])
        assert sum(v for _, v in rows) >= 0
    assert tiered >= 25


def test_tier_counters_are_the_kernel_counters(text: str) -> None:
    # Sums over the tiers are the sums of the samples: 1+2+3+4+5 = 15.
    def total(name: str) -> float:
        return sum(v for _, v in samples(text)[name])

    assert total("taucg_tier_cpu_usage_seconds_total") == 150.0
    assert total("taucg_tier_cpu_throttled_seconds_total") == 3.75
    assert total("taucg_tier_cpu_throttled_periods_total") == 105
    assert total("taucg_tier_memory_bytes") == 15000
    assert total("taucg_tier_oom_kills_total") == 30
    assert total("taucg_tier_memory_high_events_total") == 300
    assert total("taucg_tier_memory_max_events_total") == 45
    assert total("taucg_tier_io_write_bytes_total") == 13 * 15
    assert total("taucg_tier_pressure_memory_stalled_seconds_total") == 7.5
    assert value(text, "taucg_tier_pressure_cpu_waiting_seconds_total", tier="low") == 2.0
    # io has no full line in these samples: no sample, not a zero.
    assert "taucg_tier_pressure_io_stalled_seconds_total" not in samples(text)


def test_limits_have_no_sample_for_max(text: str) -> None:
    # memory.max is "max" for the odd tiers (critical, normal, background).
    assert {ls["tier"] for ls, _ in samples(text)["taucg_tier_memory_max_bytes"]} == {
        "high", "low"}
    assert value(text, "taucg_tier_memory_max_bytes", tier="low") == 16000
    assert value(text, "taucg_tier_tasks_max", tier="background") == 250
    assert "critical" not in {ls["tier"] for ls, _ in samples(text)["taucg_tier_tasks_max"]}
    assert value(text, "taucg_tier_cpu_quota_seconds", tier="low") == 0.05
    assert value(text, "taucg_tier_cpu_period_seconds", tier="low") == 0.1
    assert [ls["tier"] for ls, _ in samples(text)["taucg_tier_cpu_quota_seconds"]] == ["low"]
    assert value(text, "taucg_tier_cpu_period_seconds", tier="normal") == 0.1


def test_member_units(text: str) -> None:
    assert value(text, "taucg_unit_cpu_usage_seconds_total",
                 unit="web.service", tier="normal") == 1.5
    assert value(text, "taucg_unit_memory_bytes", unit="run-u7.scope", tier="normal") == 1024
    assert value(text, "taucg_unit_tasks", unit="web.service", tier="normal") == 4
    assert value(text, "taucg_unit_restarts_total", unit="web.service", tier="normal") == 3
    states = {ls["state"]: v for ls, v in samples(text)["taucg_unit_state"]
              if ls["unit"] == "batch.service"}
    assert states == {"active": 0, "activating": 0, "deactivating": 0, "inactive": 0,
                      "failed": 1}
    # A unit systemd has not answered for yet has figures but no state.
    assert not [ls for ls, _ in samples(text)["taucg_unit_state"]
                if ls["unit"] == "run-u7.scope"]


def test_machine_wide_values_have_their_own_names(text: str) -> None:
    assert value(text, "taucg_system_cpu_seconds_total", mode="steal") == 8.0
    assert sum(v for _, v in samples(text)["taucg_system_cpu_seconds_total"]) == 36.0
    assert value(text, "taucg_system_memory_used_ratio") == 0.4
    assert value(text, "taucg_system_memory_used_bytes") == 400
    assert value(text, "taucg_system_memory_total_bytes") == 1000


def test_build_info_sweep_time_and_governor(text: str) -> None:
    [(labels, one)] = samples(text)["taucg_build_info"]
    assert one == 1 and labels["version"] == __version__ and labels["python"]
    assert value(text, "taucg_sampler_last_sweep_timestamp_seconds") == 1_700_000_000.5
    assert value(text, "taucg_sampler_sweeps_total") == 7
    assert value(text, "taucg_governor_stall_ratio", resource="cpu") == 0.25
    assert value(text, "taucg_governor_cpu_quota_seconds", tier="low") == 1.5
    assert value(text, "taucg_governor_setting", tier="low", property="cpu_weight") == 25


def test_counters_end_in_total(text: str) -> None:
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)


def test_before_the_first_sweep_only_the_daemon_metrics(text: str) -> None:
    from dataclasses import replace

    empty = samples(exposition(replace(state(), last=None, governor=None)))
    assert not [n for n in empty if n.startswith(("taucg_tier_", "taucg_unit_"))]
    assert "taucg_build_info" in empty and "taucg_sampler_sweeps_total" in empty




def test_forecasts_by_resource_subject_tier_and_limit() -> None:
    from dataclasses import replace

    from taucg.model.forecast import Forecast

    low = Forecast("memory", "tau-low.slice", "low", "MemoryMax", 800e6, 300e6, 2e6, 0.97,
                   40, 78.0, 250.0, 10.0)
    var = Forecast("filesystem", "/var", None, "size", 100e9, 90e9, 1e6, 0.8, 30, 600.0,
                   10_000.0, 10.0)
    got = samples(exposition(replace(state(), forecasts=(low, var))))
    left = {ls["subject"]: (ls, v) for ls, v in got["taucg_forecast_seconds_to_limit"]}
    assert left["tau-low.slice"] == ({"resource": "memory", "subject": "tau-low.slice",
                                      "tier": "low", "limit": "MemoryMax"}, 250.0)
    assert left["/var"][1] == 10_000.0 and left["/var"][0]["resource"] == "filesystem"
    rates = {ls["subject"]: v for ls, v in got["taucg_forecast_growth_bytes_per_second"]}
    assert rates == {"tau-low.slice": 2e6, "/var": 1e6}
    quality = {ls["subject"]: v for ls, v in got["taucg_forecast_fit_quality"]}
    assert quality == {"tau-low.slice": 0.97, "/var": 0.8}
    none = samples(exposition(state()))
    assert not none["taucg_forecast_seconds_to_limit"]


def test_health_score_and_the_nodes_own_threshold(text: str) -> None:
    """The fleet rule compares the two, so each node is judged by its own
    health_score_threshold."""
    assert value(text, "taucg_health_score") == 0.6
    assert value(text, "taucg_health_score_threshold") == 0.75
    assert value(text, "taucg_health_check_score", check="memory_usage") == 0.6
