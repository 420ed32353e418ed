"""What tests read from contrib/: the Prometheus rules and the Grafana
dashboard's queries, and the metric names they use."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus" / "taucg-rules.yml"
RULE_TESTS = CONTRIB / "prometheus" / "taucg-rules.test.yml"
DASHBOARD = CONTRIB / "grafana" / "taucg-fleet.json"


def tool(name: str) -> str:
    """A Debian prometheus/prometheus-alertmanager binary. scripts/setup
    installs them; a missing one skips here and fails in CI."""
    path = shutil.which(name)
    if path is None:
        why = (f"{name} is missing: scripts/setup installs Debian's prometheus and "
               "prometheus-alertmanager")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return path


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def rules_with_short_for(seconds: int) -> str:
    """The shipped rules with every `for:` shortened to `seconds`: how the
    fleet test sees an alert fire within a test's patience (the windows of
    rate() stay as shipped; they need only two samples)."""
    doc = rules()
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{seconds}s"
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[Query]:
    out = []
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            out.append(Query(p["title"], t["refId"], t["expr"]))
    return out


def node_variable() -> tuple[str, str]:
    """The `node` variable's label_values(SELECTOR, LABEL) as (selector, label)."""
    [var] = [v for v in dashboard()["templating"]["list"] if v["name"] == "node"]
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
    assert m, var["query"]
    return m.group(1), m.group(2)


def substitute(expr: str, node: str, rate_interval: str = "1m") -> str:
    """What Grafana sends for the expression with node chosen."""
    out = expr.replace("$node", node).replace("${node}", node)
    out = out.replace("$__rate_interval", rate_interval)
    assert "$" not in out, f"an unknown variable in {expr!r}"
    return out


# A metric's name, not a part of a recording rule's level:name:operations.
METRIC = re.compile(r"(?<![:\w])((?:taucg|process)_[a-z0-9_]+)(?![:\w])")


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(expr))
