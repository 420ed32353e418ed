"""Custom metrics ([[metrics.custom]]): the number in a source's text, the
thresholds that raise and clear alerts (the same edge-triggered
``Threshold`` as the built-in metrics), and what one tick adds to the
history and the published state.

A metric is recorded as ``custom.NAME`` in the history (so `taucg history
--metric custom.NAME` and the socket API's history show it); its warning
alert is ``custom.NAME``, its critical one ``custom.NAME critical``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from taucg.config.schema import CustomMetric
from taucg.model.monitor import Alert, MetricSeries, Threshold, Update

PREFIX = "custom."


def history_name(name: str) -> str:
    return PREFIX + name


def parse_number(text: str) -> float:
    """The first word of the text as a finite number (a trailing unit or
    comment after it is allowed: "42.5 C"). ValueError says what was there."""
    words = text.split()
    if not words:
        raise ValueError("is empty; it should hold a number")
    try:
        value = float(words[0])
    except ValueError:
        shown = words[0] if len(words[0]) <= 40 else words[0][:40] + "..."
        raise ValueError(f"holds {shown!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"holds {words[0]!r}; a metric must be a finite number")
    return value


@dataclass(frozen=True, slots=True)
class CustomValue:
    """One custom metric as the metrics endpoint exports it (None: absent
    this tick)."""

    name: str
    unit: str | None
    help: str | None
    value: float | None


class CustomMetrics:
    def __init__(self, metrics: Sequence[CustomMetric]) -> None:
        self.metrics = tuple(metrics)
        self._alarms: list[tuple[str, Threshold, str]] = []
        for m in self.metrics:
            metric = history_name(m.name)
            if m.warning is not None:
                self._alarms.append((m.name, Threshold(metric, m.warning, m.hysteresis),
                                     "warning"))
            if m.critical is not None:
                self._alarms.append((m.name, Threshold(f"{metric} critical", m.critical,
                                                       m.hysteresis), "critical"))

    def fold(self, update: Update, values: Mapping[str, float], history: MetricSeries,
             now: float) -> tuple[CustomValue, ...]:
        """Adds this tick's values (name -> number; a metric without one is
        absent this tick) to the history and ``update.values``, and their
        alerts to ``update.alerts``; returns what the metrics endpoint shows."""
        for m in self.metrics:
            v = values.get(m.name)
            if v is not None:
                update.values[history_name(m.name)] = v
                history.add(history_name(m.name), now, v)
        for name, alarm, severity in self._alarms:
            v = values.get(name)
            if v is None:
                continue  # an absent value neither raises nor clears
            a = alarm.update(v, now)
            if a is not None:
                update.alerts.append(Alert(a.metric, a.state, a.value, a.threshold, a.time,
                                           severity=severity))
        return tuple(CustomValue(m.name, m.unit, m.help, values.get(m.name))
                     for m in self.metrics)
