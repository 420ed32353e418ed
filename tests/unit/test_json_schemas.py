"""The shipped JSON Schemas are valid and strict enough to catch the shapes
issue 15 complained of; the output helpers keep one time format."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema.validators import validator_for

from taucg.faces import schemas
from taucg.faces.cli.common import wants_json
from taucg.faces.render import Bytes, Percent, Seconds, When, cell_text, document, utc
from tests.support.json_contract import UTC_TIME, validate

STATUS_TIER = {
    "unit": "tau-low.slice", "applied": False, "cgroup": "/sys/fs/cgroup/tau.slice/x",
    "reason": "slice not started: run 'taucg apply'",
    "configured": {"cpu_weight": 30, "memory_high_ram_percent": 60, "tasks_max": 4096},
    "directives": {"CPUWeight": "30"}}


def status_doc() -> dict[str, Any]:
    return document("status", {"tiers": {"low": copy.deepcopy(STATUS_TIER)},
                               "cgroup_v2": True, "sampled_at": utc(0.0),
                               "sampling": {"daemon": False, "interval_seconds": None}})


def rejected(doc: dict[str, Any], name: str) -> bool:
    schema = schemas.load(name)
    return not validator_for(schema)(schema).is_valid(doc)


def test_every_schema_is_valid_and_names_its_document() -> None:
    names = schemas.names()
    assert "error" in names and "status" in names and len(names) >= 20
    for name in names:
        schema = schemas.load(name)
        validator_for(schema).check_schema(schema)
        text = json.dumps(schema)
        assert f'"const": "taucg.{name}/1"' in text, name


def test_status_configured_values_must_be_numbers() -> None:
    validate(status_doc(), "status")
    doc = status_doc()
    doc["tiers"]["low"]["configured"]["memory_high_ram_percent"] = "60%"
    assert rejected(doc, "status")
    doc = status_doc()
    doc["tiers"]["low"]["configured"]["MemoryHigh"] = 60
    assert rejected(doc, "status")
    doc = status_doc()
    doc["sampled_at"] = 1733000000.0  # an epoch float is not the contract's time
    assert rejected(doc, "status")


def test_a_tree_must_nest_and_a_flat_list_must_not() -> None:
    proc = {"pid": 2, "ppid": 1, "user": "root", "state": "S", "threads": 1,
            "rss_bytes": 4096, "cpu_seconds": 0.5, "tier": None, "unit": None, "comm": "x"}
    validate(document("processes", {"tree": False, "processes": [proc]}), "processes")
    assert rejected(document("processes", {"tree": True, "processes": [proc]}), "processes")
    nested = {**proc, "children": [{**proc, "pid": 3, "ppid": 2, "children": []}]}
    validate(document("processes", {"tree": True, "processes": [nested]}), "processes")
    # A bare array is what the issue found; it is not a document.
    assert rejected([proc], "processes")  # type: ignore[arg-type]


def test_health_value_is_split_into_typed_measurements() -> None:
    check = {"name": "disk_usage", "score": 1.0, "weight": 0.15, "summary": "22.6% (/)",
             "measured": {"usage_percent": 22.6, "mountpoint": "/"}, "detail": "",
             "recommendation": None}
    doc = document("health", {"score": 1.0, "threshold": 0.7, "healthy": True,
                              "checks": [check], "recommendations": []})
    validate(doc, "health")
    doc["checks"][0]["value"] = "22.6% (/)"
    assert rejected(doc, "health")


def test_times_are_rfc3339_utc_and_nan_is_null() -> None:
    assert utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert UTC_TIME.fullmatch(utc(1733000000.123456) or "")
    assert utc(None) is None
    doc = document("resources", {"cpu": {"usage_percent": float("nan")}, "sampled_at": utc(1)})
    assert next(iter(doc)) == "schema" and doc["cpu"]["usage_percent"] is None


def test_raw_cells_are_plain_numbers() -> None:
    assert cell_text(Bytes(1536)) == "1.5K"
    assert cell_text(Bytes(1536), raw=True) == "1536"
    assert cell_text(Seconds(2.0), raw=True) == "2"
    assert cell_text(Percent(12.25), raw=True) == "12.25"
    assert cell_text(When(1733000000.5), raw=True) == "1733000000.5"
    assert cell_text((Bytes(1024), " / ", Bytes(2048)), raw=True) == "1024 / 2048"
    assert cell_text(Bytes(None), raw=True) == "-"


@pytest.mark.parametrize(("words", "json_wanted"), [
    (["status", "-o", "json"], True), (["status", "--format=json"], True),
    (["status", "-ojson"], True), (["status", "--format", "plain"], False),
    (["run", "--tier", "low", "--", "cmd", "-o", "json"], False),
])
def test_json_is_recognised_before_click_parses(words: list[str], json_wanted: bool) -> None:
    assert wants_json(words) is json_wanted


def test_the_governor_document_has_typed_tier_values() -> None:
    from taucg.config.loading import loads
    from taucg.config.values import Size
    from taucg.faces.cli.governor_cmds import governor_document
    from taucg.faces.daemon_state import GovernorView

    view = GovernorView(
        ("critical", "high"), {"cpu": 5.0, "memory": 10.0, "io": 10.0}, {"cpu": 12.5}, None,
        False, {"normal": {"cpu_weight": 50, "memory_high": Size(bytes=1 << 30)}},
        frozenset({"background"}),
        ({"time": 1733000000.0, "kind": "tighten", "tier": "normal", "key": "cpu_weight",
          "before": "100", "after": "50", "reason": "cpu stall 12.5% over 5%"},),
        {"tighten": 1})
    api = view.to_dict(loads(""))
    assert api["tiers"]["normal"]["governed"]["cpu_weight"] == "50"  # the API keeps its text
    doc = validate(document("governor", governor_document(api)), "governor")
    normal = doc["tiers"]["normal"]
    assert normal["governed"] == {"cpu_weight": 50, "memory_high_bytes": 1 << 30}
    assert normal["configured"] == {"cpu_weight": 100}
    assert doc["tiers"]["background"]["frozen"] is True
    assert doc["actions"][0]["acted_at"] == utc(1733000000.0)
    off = validate(document("governor", governor_document({"running": False, "why": "off"})),
                   "governor")
    assert off["running"] is False
