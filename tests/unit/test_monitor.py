from __future__ import annotations

import dataclasses

from taucg.model.monitor import (
    LeakAlarm,
    LeakDetector,
    MetricSeries,
    Monitor,
    Threshold,
    Thresholds,
    cgroup_cpu_percent,
    cpu_percent,
    metric_names,
    process_cpu_percent,
    slope,
    tier_usage,
)
from taucg.readers.samples import (
    CgroupCpu,
    CgroupSample,
    CpuTimes,
    LoadAvg,
    MemInfo,
    ProcessSample,
    SystemSample,
)


def cpu(busy: float, idle: float) -> CpuTimes:
    return CpuTimes(None, busy, 0, 0, idle, 0, 0, 0, 0, 0, 0)


def test_cpu_percent() -> None:
    assert cpu_percent(cpu(10, 90), cpu(40, 160)) == 30.0
    assert cpu_percent(cpu(10, 90), cpu(10, 90)) == 0.0
    assert cpu_percent(cpu(50, 50), cpu(10, 20)) == 0.0  # counters reset: no nonsense


def test_threshold_edges_and_hysteresis() -> None:
    t = Threshold("cpu", 80, 5)
    values = [50, 79.9, 80, 95, 81, 76, 74.9, 74, 80.5]
    alerts = [t.update(v, i) for i, v in enumerate(values)]
    fired = [(a.state, a.value) for a in alerts if a]
    # One raise at 80, none while it stays high or dips into the band, one
    # clear below 75, then a new raise.
    assert fired == [("raised", 80), ("cleared", 74.9), ("raised", 80.5)]


def test_slope_and_history_trend() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == 2.0
    assert slope([(0, 1)]) is None
    h = MetricSeries(5)
    for i in range(10):
        h.add("m", float(i), float(i * i))
    assert [t for t, _ in h.series("m")] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert h.trend("m", 1.0) == 17.0  # between t=8 and t=9
    h.forget([])
    assert h.series("m") == []


def test_leak_detector() -> None:
    d = LeakDetector(min_samples=5, min_seconds=40, min_growth=10 << 20)
    for i in range(10):
        d.add("leaky", i * 10.0, (100 << 20) + i * (4 << 20))
        d.add("flat", i * 10.0, 100 << 20)
        d.add("jump", i * 10.0, (100 << 20) if i < 9 else (300 << 20))  # one spike
        d.add("sawtooth", i * 10.0, (100 << 20) + (i % 2) * (50 << 20))
    suspects = d.suspects()
    assert [s.subject for s in suspects] == ["leaky"]
    assert suspects[0].growth_bytes == 36 << 20
    assert abs(suspects[0].bytes_per_second - (4 << 20) / 10) < 1


def _proc(pid: int, start: float, cpu_s: float) -> ProcessSample:
    return ProcessSample(pid, 1, pid, pid, 1, 20, 0, 0, 0, 0, 0, b"S", b"x\0", cpu_s, 0.0,
                         start, 0, 0, 0, 0)


def test_process_cpu_percent_respects_identity() -> None:
    prev = [_proc(10, 5.0, 1.0), _proc(11, 6.0, 2.0)]
    cur = [_proc(10, 5.0, 1.5), _proc(11, 99.0, 0.1)]  # pid 11 reused by a new process
    assert process_cpu_percent(prev, cur, 1.0) == {(10, 5.0): 50.0}


def _cg(path: str, t: float, usage: float, mem: int | None) -> CgroupSample:
    return CgroupSample(path, t, CgroupCpu(usage, usage, 0, 0, 0, 0), mem, None, None, None,
                        None, 3, None, None, None, None, None, True, False)


def test_tier_usage_from_slice_cgroups() -> None:
    paths = {"critical": "/c", "low": "/l"}
    prev = {"/c": _cg("/c", 0, 1.0, 10), "/l": _cg("/l", 0, 0.0, 5)}
    cur = {"/c": _cg("/c", 2, 3.0, 20), "/l": None}
    usage = tier_usage(paths, prev, cur)
    assert set(usage) == {"critical"}
    assert usage["critical"].cpu_percent == 100.0
    assert usage["critical"].memory_bytes == 20
    assert cgroup_cpu_percent(prev["/c"], cur["/c"]) == 100.0  # type: ignore[arg-type]


def _sys(t: float, busy: float, idle: float, used_frac: float) -> SystemSample:
    total = 1000
    mem = MemInfo(total, 0, int(total * (1 - used_frac)), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return SystemSample(t, cpu(busy, idle), (), 0, 0, 0, 0, 0, mem, None, None, None, None)


def test_monitor_alerts_once_per_crossing() -> None:
    m = Monitor(Thresholds(cpu_percent=80, memory_percent=85, disk_percent=90))
    samples = [_sys(0, 0, 0, 0.5), _sys(1, 90, 10, 0.9), _sys(2, 180, 20, 0.9),
               _sys(3, 185, 115, 0.5)]
    alerts = [a for s in samples for a in m.update(s, disk_percent={"/": 95.0}).alerts]
    assert [(a.metric, a.state) for a in alerts] == [
        ("disk_percent /", "raised"),
        ("cpu_percent", "raised"), ("memory_percent", "raised"),
        ("cpu_percent", "cleared"), ("memory_percent", "cleared"),
    ]
    assert len(m.history.series("cpu_percent")) == 3


def test_disk_and_net_rates_pair_devices_by_name() -> None:
    from taucg.model.monitor import disk_rates, net_rates
    from taucg.readers.samples import DiskStats, NetDevice

    d0 = [DiskStats(8, 0, "sda", 0, 0, 0.0, 0, 0, 0.0, 0, 0.0)]
    d1 = [DiskStats(8, 0, "sda", 5, 4096, 0.0, 1, 8192, 0.0, 0, 0.5),
          DiskStats(8, 16, "sdb", 1, 1, 0.0, 1, 1, 0.0, 0, 0.0)]  # new: no rate yet
    rates = disk_rates(d0, d1, 2.0)
    assert [(r.name, r.read_bytes_per_second, r.write_bytes_per_second, r.busy_percent)
            for r in rates] == [("sda", 2048.0, 4096.0, 25.0)]
    n0 = [NetDevice("eth0", 100, 1, 0, 0, 50, 1, 0, 0)]
    n1 = [NetDevice("eth0", 300, 3, 1, 0, 150, 2, 0, 0)]
    assert [(r.rx_bytes_per_second, r.tx_bytes_per_second, r.rx_errors)
            for r in net_rates(n0, n1, 2.0)] == [(100.0, 50.0, 1)]
    assert net_rates(n0, n1, 0.0) == []


def test_a_steadily_growing_process_raises_and_clears_one_leak_alert() -> None:
    detector, alarm = LeakDetector(length=120), LeakAlarm()
    subject = "process 4242 (leaky, started 1.00s after boot)"
    for i in range(40):  # 40 readings over 390 s, +4 MiB each
        detector.add(subject, 10.0 * i, (100 + 4 * i) << 20)
    alerts = alarm.update(detector.suspects(), 1000.0)
    alerts += alarm.update(detector.suspects(), 1001.0)  # still leaking: no second alert
    detector.forget([])  # the process exited
    alerts += alarm.update(detector.suspects(), 1002.0)
    assert [(a.metric, a.state) for a in alerts] == [
        ("leak process 4242 (leaky, started 1.00s after boot)", "raised"),
        ("leak process 4242 (leaky, started 1.00s after boot)", "cleared")]
    assert "grew 156 MiB steadily over 390 s" in alerts[0].message()


def test_monitor_update_carries_values_and_tier_totals() -> None:
    m = Monitor(Thresholds(cpu_percent=80, memory_percent=85, disk_percent=90))
    first = m.update(_sys(0, 0, 0, 0.5), None, [_proc(10, 5.0, 1.0)],
                     tiers={"critical": _cg("/c", 0, 1.0, 10), "low": None})
    assert first.tiers["critical"].cpu_percent is None  # no previous sample yet
    assert "cpu_percent" not in first.values
    second = m.update(_sys(1, 50, 50, 0.5), None, [_proc(10, 5.0, 1.5)],
                      tiers={"critical": _cg("/c", 2, 3.0, 20), "low": None})
    assert set(second.tiers) == {"critical"}
    assert second.values["cpu_percent"] == 50.0
    assert second.values["memory_percent"] == 50.0
    assert second.values["tier.critical.cpu_percent"] == 100.0
    assert second.values["tier.critical.memory_bytes"] == 20.0
    assert m.history.series("tier.critical.memory_bytes")[-1][1] == 20.0


def test_metric_names_are_the_series_the_monitor_records() -> None:
    """What completion offers for `history --metric` is what update records."""
    m = Monitor(Thresholds(cpu_percent=80, memory_percent=85, disk_percent=90))
    tiers = {"critical": _cg("/c", 0, 1.0, 10), "low": _cg("/l", 0, 1.0, 10)}
    load = LoadAvg(0.5, 0.4, 0.3, 1, 100, 42)
    m.update(dataclasses.replace(_sys(0, 0, 0, 0.5), load=load), None, [], tiers=tiers)
    second = m.update(dataclasses.replace(_sys(1, 50, 50, 0.5), load=load), None, [],
                      tiers={"critical": _cg("/c", 1, 2.0, 20), "low": _cg("/l", 1, 2.0, 10)})
    names = metric_names(["critical", "low"])
    assert set(second.values) == set(names)
    assert set(m.history.metrics()) == set(names)
    assert names["tier.low.memory_bytes"].startswith("low: ")


def test_leaks_are_seen_under_fast_sampling_too() -> None:
    """One reading a second for ten minutes: the series keeps a point per
    ~27 s, so it spans the five minutes detection needs, in bounded memory."""
    detector = LeakDetector(length=120)
    subject = "process 7 (grower, started 1.00s after boot)"
    for second in range(600):
        detector.add(subject, float(second), (100 << 20) + second * (128 << 10))
    assert len(detector._series[subject]) <= 25
    assert [s.subject for s in detector.suspects()] == [subject]
