"""The forecast estimator (Theil-Sen with Kendall's tau), the time to a
limit, the forecast alarm's raise and clear, and the Monitor feeding it."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from taucg.config.schema import Forecast as ForecastConfig
from taucg.model.forecast import (
    ForecastAlarm,
    Forecaster,
    Subject,
    Tracks,
    binding_memory_limit,
    duration,
    forecast,
    process_subject,
    theil_sen,
    thin,
)
from taucg.model.monitor import Monitor, Thresholds, slope
from taucg.readers.samples import CgroupSample, CpuTimes, MemInfo, ProcessSample, SystemSample

MiB = 1 << 20
CFG = ForecastConfig(horizon_minutes=10.0, window_seconds=600, min_points=10, min_quality=0.6,
                     hysteresis_percent=20.0)


def line(n: int, rate: float, start: float = 0.0, every: float = 1.0
         ) -> list[tuple[float, float]]:
    return [(i * every, start + rate * i * every) for i in range(n)]


# ------------------------------------------------------------ estimator ---


def test_a_known_slope_survives_outliers_that_ruin_least_squares() -> None:
    rng = random.Random(17)
    rate = 2.0 * MiB
    pts = [(t, v + rng.gauss(0, 0.2 * MiB)) for t, v in line(60, rate, 100 * MiB)]
    # A fifth of the points wild: cache drops, a burst, a misread.
    for i in range(0, 60, 5):
        pts[i] = (pts[i][0], pts[i][1] + rng.choice((-1, 1)) * 400 * MiB)
    fit = theil_sen(pts)
    assert fit is not None
    assert fit.slope == pytest.approx(rate, rel=0.05)
    assert fit.at(30) == pytest.approx(100 * MiB + rate * 30, rel=0.05)
    assert fit.quality > 0.5
    ls = slope(pts)
    assert ls is not None and abs(ls - rate) > 0.05 * rate, "the outliers should move LS"


def test_flat_gives_no_forecast() -> None:
    pts = [(float(t), 500.0 * MiB) for t in range(30)]
    fit = theil_sen(pts)
    assert fit is not None and fit.slope == 0 and fit.quality == 0
    subject = Subject("memory", "tau-low.slice", "low", pts, 500.0 * MiB, "MemoryMax",
                      1000.0 * MiB)
    assert forecast(subject, CFG)[0] is None


def test_noise_has_low_quality_and_raises_nothing() -> None:
    rng = random.Random(3)
    pts = [(float(t), 500 * MiB + rng.gauss(0, 50 * MiB)) for t in range(60)]
    fit = theil_sen(pts)
    assert fit is not None and abs(fit.quality) < 0.3
    subject = Subject("memory", "tau-low.slice", "low", pts, pts[-1][1], "MemoryMax",
                      600.0 * MiB)
    fc, seen = forecast(subject, CFG)
    assert fc is None and seen is not None
    assert ForecastAlarm(CFG).update([(subject, fc, seen)], 60.0) == []


def test_time_to_the_limit_from_the_current_reading() -> None:
    pts = line(40, 1.0 * MiB, 100 * MiB)  # +60 MiB/min, 139 MiB at t=39
    subject = Subject("memory", "tau-low.slice", "low", pts, pts[-1][1], "MemoryMax",
                      300.0 * MiB)
    fc, _ = forecast(subject, CFG)
    assert fc is not None
    assert fc.seconds_to_limit == pytest.approx(300 - 139, rel=1e-6)
    assert fc.text() == "tau-low.slice reaches MemoryMax in ~3 min at +60 MiB/min"
    d = fc.to_dict(1000.0)
    assert d["reaches_at"] == pytest.approx(1000 + 39 + 161)
    assert d["quality"] == 1.0 and d["points"] == 40


def test_too_few_points_or_a_short_window_give_no_forecast() -> None:
    pts = line(9, 1.0 * MiB)
    subject = Subject("memory", "x", None, pts, pts[-1][1], "MemoryMax", 100.0 * MiB)
    assert forecast(subject, CFG) == (None, None)
    # 100 points, but only the last 10 s lie in a 10 s window: 11 points.
    narrow = dataclasses.replace(CFG, window_seconds=10, min_points=12)
    many = Subject("memory", "x", None, line(100, 1.0), 99.0, "MemoryMax", 200.0)
    assert forecast(many, narrow) == (None, None)


def test_thin_bounds_the_pairs_and_keeps_the_ends() -> None:
    pts = line(1000, 1.0)
    few = thin(pts, 64)
    assert len(few) == 64 and few[0] == pts[0] and few[-1] == pts[-1]
    fit = theil_sen(pts)
    assert fit is not None and fit.points == 64 and fit.slope == pytest.approx(1.0)


def test_binding_limit_says_which() -> None:
    def cg(high: int | str | None, mx: int | str | None) -> CgroupSample:
        return CgroupSample("/x", 0.0, None, 10, mx, high, None, None, None, None,  # type: ignore[arg-type]
                            None, None, None, None, True, False)

    assert binding_memory_limit(cg(500, 800)) == ("MemoryHigh", 500)
    assert binding_memory_limit(cg("max", 800)) == ("MemoryMax", 800)
    assert binding_memory_limit(cg(800, 800)) == ("MemoryMax", 800)
    assert binding_memory_limit(cg(700, "max")) == ("MemoryHigh", 700)
    assert binding_memory_limit(cg("max", "max")) is None


def test_a_leaking_process_meets_its_tiers_limit_or_the_ram_first() -> None:
    tier = CgroupSample("/l", 0.0, None, 900 * MiB, 1000 * MiB, "max", None, None, None,
                        None, None, None, None, None, True, False)
    pts = line(20, 1.0 * MiB, 50 * MiB)
    s = process_subject("process 7 (leaky)", pts, 69 * MiB, "low", {"low": tier}, 4000 * MiB)
    assert s is not None and s.limit_name == "tau-low.slice's MemoryMax"
    assert s.limit == 69 * MiB + 100 * MiB  # the tier's headroom on top of its RSS
    s = process_subject("process 7 (leaky)", pts, 69 * MiB, None, {"low": tier}, 40 * MiB)
    assert s is not None and s.limit_name == "the RAM" and s.limit == 109 * MiB


def test_tracks_space_points_and_drop_the_old() -> None:
    t = Tracks(window_seconds=128.0)  # spacing 1 s
    for i in range(400):
        t.add("/var", i * 0.5, float(i))
    pts = t.series("/var")
    assert all(b[0] - a[0] >= 1.0 for a, b in itertools.pairwise(pts))
    assert pts[0][0] >= pts[-1][0] - 128.0
    t.forget([])
    assert t.series("/var") == []


def test_duration_words() -> None:
    assert [duration(s) for s in (42, 14 * 60, 3.5 * 3600, 3 * 86400)] == [
        "42 s", "14 min", "3.5 h", "3.0 d"]


# ---------------------------------------------------------------- alarm ---


def _subject(pts: list[tuple[float, float]], limit: float) -> Subject:
    return Subject("memory", "tau-low.slice", "low", pts, pts[-1][1], "MemoryMax", limit)


def test_the_alarm_raises_under_the_horizon_and_clears_with_hysteresis() -> None:
    alarm = ForecastAlarm(CFG)  # horizon 600 s, clear past 720 s
    rate = 1.0 * MiB
    base = line(30, rate)  # at 29 MiB, +1 MiB/s

    def step(limit_mib: float) -> list[str]:
        s = _subject(base, limit_mib * MiB)
        return [f"{a.state} {a.text}" for a in alarm.update([(s, *forecast(s, CFG))], 30.0)]

    assert step(29 + 700) == []  # 700 s away: beyond the horizon
    raised = step(29 + 500)
    assert raised == ["raised tau-low.slice reaches MemoryMax in ~8 min at +60 MiB/min"]
    assert step(29 + 400) == []  # still raised, nothing new
    assert step(29 + 700) == []  # past the horizon but inside the band
    cleared = step(29 + 800)
    assert len(cleared) == 1 and cleared[0].startswith(
        "cleared tau-low.slice no longer reaches MemoryMax within 10 min")


def test_the_alarm_clears_when_growth_stops_or_the_subject_goes() -> None:
    alarm = ForecastAlarm(CFG)
    grow = _subject(line(30, 1.0 * MiB), 100.0 * MiB)
    a = alarm.update([(grow, *forecast(grow, CFG))], 30.0)
    assert [x.state for x in a] == ["raised"] and a[0].metric == \
        "forecast memory tau-low.slice"
    assert a[0].value == pytest.approx(71.0) and a[0].threshold == 600.0
    flat = _subject([(float(t), 50.0 * MiB) for t in range(30)], 100.0 * MiB)
    a = alarm.update([(flat, *forecast(flat, CFG))], 31.0)
    assert [x.state for x in a] == ["cleared"] and "no longer growing" in (a[0].text or "")
    a = alarm.update([(grow, *forecast(grow, CFG))], 32.0)
    assert [x.state for x in a] == ["raised"]
    a = alarm.update([], 33.0)  # the tier's limit was lifted
    assert [x.state for x in a] == ["cleared"]
    assert alarm.update([], 34.0) == []


# -------------------------------------------------------------- monitor ---


def _sys(t: float) -> SystemSample:
    mem = MemInfo(8 << 30, 0, 6 << 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    times = CpuTimes(None, t, 0, 0, t, 0, 0, 0, 0, 0, 0)
    return SystemSample(t, times, (), 0, 0, 0, 0, 0, mem, None, None, None, None)


def _tier(t: float, mem: int) -> CgroupSample:
    return CgroupSample("/sys/fs/cgroup/tau.slice/tau-low.slice", t, None, mem, 800 * MiB,
                        "max", None, None, None, None, None, None, None, None, True, False)


def test_the_monitor_forecasts_a_tier_and_a_filesystem_and_alerts() -> None:
    m = Monitor(Thresholds(101, 101, 101), 120, CFG)
    said = []
    update = None
    for i in range(30):
        t = float(i * 2)
        update = m.update(_sys(t), tiers={"low": _tier(t, 200 * MiB + i * 4 * MiB),
                                          "high": None},
                          filesystems={"/var": (10 << 30, 100 << 30)})
        said += [a for a in update.alerts if a.metric.startswith("forecast")]
    assert update is not None
    by = {fc.subject: fc for fc in update.forecasts}
    assert set(by) == {"tau-low.slice"}, "a flat filesystem has no forecast"
    low = by["tau-low.slice"]
    assert low.limit_name == "MemoryMax" and low.tier == "low"
    assert low.bytes_per_second == pytest.approx(2 * MiB)
    assert low.seconds_to_limit == pytest.approx((800 - 316) / 2, rel=1e-6)
    assert [a.state for a in said] == ["raised"]
    # Raised at the tenth sample (min_points): 236 MiB, (800 - 236) / 2 = 282 s.
    assert said[0].text == "tau-low.slice reaches MemoryMax in ~5 min at +120 MiB/min"


def test_a_filling_filesystem_is_forecast_full() -> None:
    f = Forecaster(dataclasses.replace(CFG, window_seconds=256))
    out = []
    for i in range(40):
        out, _ = f.tick(float(i * 4), Monitor(Thresholds(1, 1, 1)).history, {},
                        {"/srv": ((10 << 30) + i * 40 * MiB, 20 << 30)}, [], None)
    assert [fc.resource for fc in out] == ["filesystem"]
    assert out[0].text().startswith("filesystem /srv is full in ~")
    assert out[0].bytes_per_second == pytest.approx(10 * MiB)


def test_a_leak_suspect_is_forecast_against_the_ram() -> None:
    cfg = dataclasses.replace(CFG, horizon_minutes=120.0)
    m = Monitor(Thresholds(101, 101, 101), 120, cfg, locate=lambda _pid: None)
    update = None
    for i in range(40):
        t = float(i * 30)
        leaky = ProcessSample(42, 1, 42, 42, 1, 20, 0, 0, 0, 0, 0, b"S", b"leaky\0", 0.0,
                              0.0, 5.0, 0, (100 + 3 * i) * MiB, 0, 0)
        update = m.update(_sys(t), processes=[leaky])
    assert update is not None
    procs = [fc for fc in update.forecasts if fc.resource == "process_memory"]
    assert len(procs) == 1 and procs[0].limit_name == "the RAM"
    assert procs[0].bytes_per_second == pytest.approx(0.1 * MiB, rel=0.01)
    # 6 GiB available at +6 MiB/min: some 17 h, far past the two-hour horizon.
    assert procs[0].seconds_to_limit == pytest.approx((6 << 30) / (0.1 * MiB), rel=0.01)
    assert not [a for a in update.alerts if a.metric.startswith("forecast")]


def test_forecasts_off_when_disabled() -> None:
    m = Monitor(Thresholds(101, 101, 101), 120, dataclasses.replace(CFG, enabled=False))
    assert m.forecaster is None
    assert m.update(_sys(0.0), tiers={"low": _tier(0.0, 1)}).forecasts == []


def test_the_status_document_carries_forecast_items() -> None:
    from taucg.faces.forecasts import document_item
    from taucg.faces.render import document, utc
    from tests.support.json_contract import validate

    pts = line(40, 1.0 * MiB, 100 * MiB)
    fc, _ = forecast(_subject(pts, 300.0 * MiB), CFG)
    assert fc is not None
    item = document_item(fc.to_dict(1_700_000_000.0))
    assert item["time_to_limit_seconds"] == pytest.approx(161.0)
    assert item["reaches_at"] == utc(1_700_000_000.0 + 39 + 161)
    base = {"tiers": {}, "cgroup_v2": True, "sampled_at": utc(0.0),
            "sampling": {"daemon": True, "interval_seconds": 2}}
    validate(document("status", {**base, "forecasts": [item]}), "status")
    validate(document("status", {**base, "forecasts": None}), "status")
    with pytest.raises(AssertionError):
        validate(document("status", {**base, "forecasts": [{**item, "quality": "high"}]}),
                 "status")
