"""Custom metrics' pure parts: the number in a source's text, thresholds
through the same Threshold as the built-in metrics, history and the
exported name."""

from __future__ import annotations

import pytest

from taucg.config.schema import CustomMetric
from taucg.faces.metrics import custom_metric_name
from taucg.model.custom_metrics import CustomMetrics, parse_number
from taucg.model.monitor import MetricSeries, Update

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "value"), [
    ("42\n", 42.0), (" 21.5 C\n", 21.5), ("-3e2", -300.0), ("0x", None), ("", None),
    ("nan", None), ("inf\n", None), ("abc 1", None),
])
def test_parse_number(text: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match=r"number|empty"):
            parse_number(text)
    else:
        assert parse_number(text) == value


def _update() -> Update:
    return Update(None, None, [])


def test_values_go_to_history_and_update_and_absent_ones_do_not() -> None:
    c = CustomMetrics([CustomMetric(name="a", file="/x"), CustomMetric(name="b", command="c")])
    h = MetricSeries(10)
    u = _update()
    shown = c.fold(u, {"a": 1.5}, h, 100.0)
    assert u.values == {"custom.a": 1.5}
    assert h.series("custom.a") == [(100.0, 1.5)] and h.series("custom.b") == []
    assert [(v.name, v.value) for v in shown] == [("a", 1.5), ("b", None)]


def test_warning_and_critical_raise_and_clear_with_hysteresis() -> None:
    c = CustomMetrics([CustomMetric(name="t", file="/x", warning=30.0, critical=40.0,
                                    hysteresis=2.0)])
    h = MetricSeries(10)

    def tick(v: float | None, now: float) -> list[tuple[str, str, str]]:
        u = _update()
        c.fold(u, {} if v is None else {"t": v}, h, now)
        return [(a.metric, a.state, a.severity) for a in u.alerts]

    assert tick(20, 1) == []
    assert tick(35, 2) == [("custom.t", "raised", "warning")]
    assert tick(None, 3) == []  # absent: neither raises nor clears
    assert tick(45, 4) == [("custom.t critical", "raised", "critical")]
    assert tick(39, 5) == []  # within the hysteresis
    assert tick(37, 6) == [("custom.t critical", "cleared", "critical")]
    assert tick(29, 7) == []
    assert tick(27, 8) == [("custom.t", "cleared", "warning")]


def test_exported_names_follow_prometheus_conventions() -> None:
    assert custom_metric_name("room", "celsius") == "taucg_custom_room_celsius"
    assert custom_metric_name("wait_seconds", "seconds") == "taucg_custom_wait_seconds"
    assert custom_metric_name("jobs", None) == "taucg_custom_jobs"
