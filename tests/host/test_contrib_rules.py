"""contrib/: the Prometheus rules pass promtool's check and their own
unit tests (taucg-rules.test.yml), and the rules and the Grafana dashboard
read only metrics the daemon exports (their queries against a real
Prometheus are tests/host/test_fleet.py and tests/vm/test_fleet_vm.py)."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from tests.support.contrib import (
    RULE_TESTS,
    RULES,
    dashboard,
    dashboard_queries,
    metric_names,
    node_variable,
    rules,
    rules_with_short_for,
    tool,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=RULES.parent)


def test_promtool_checks_the_rules() -> None:
    r = promtool("check", "rules", RULES.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    r = promtool("test", "rules", RULE_TESTS.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_has_a_unit_test_and_a_severity() -> None:
    import yaml

    alerts = {r["alert"]: r for g in rules()["groups"] for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert set(alerts) - tested == set(), "alerts no promtool test sees fire"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"], name


def test_shortened_rules_still_pass_promtool(tmp_path: object) -> None:
    """The fleet test's copy (every `for:` a few seconds) is valid too."""
    from pathlib import Path

    out = Path(str(tmp_path)) / "short.yml"
    out.write_text(rules_with_short_for(3))
    r = promtool("check", "rules", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "for: 3s" in out.read_text() and "for: 5m" not in out.read_text()


def exported_names() -> set[str]:
    """Every sample name the collector can export: the unit tests' full
    state, with recovery, plus the daemon's own process_* metrics."""
    from taucg.actors.recovery_watcher import RecoveryView
    from tests.unit.test_metrics import exposition, samples, state

    s = replace(state(), interval_in_use=5.0, recovery=RecoveryView(("a.service",), True, {}, (),
                                              {("a.service", "restart"): 1}))
    names = set(samples(exposition(s)))
    return names | {"process_cpu_seconds_total", "process_resident_memory_bytes"}


def test_rules_and_dashboard_read_only_exported_metrics() -> None:
    exported = exported_names()
    recorded = {r["record"] for g in rules()["groups"] for r in g["rules"] if "record" in r}
    used: dict[str, set[str]] = {}
    for g in rules()["groups"]:
        for r in g["rules"]:
            used[r.get("alert") or r["record"]] = metric_names(r["expr"]) - recorded
    for q in dashboard_queries():
        used[f"panel {q.panel!r} {q.ref}"] = metric_names(q.expr)
    used["the node variable"] = metric_names(node_variable()[0])
    unknown = {k: v - exported for k, v in used.items() if v - exported}
    assert not unknown, f"names taucg does not export: {unknown}"
    assert len(used) > 30


def test_dashboard_has_the_fleet_then_one_node() -> None:
    d = dashboard()
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ["Fleet", "Node $node"]
    selector, label = node_variable()
    assert label == "instance" and "taucg_build_info" in selector
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
    # Every panel after the node row is about the one node.
    after = d["panels"][[p["title"] for p in d["panels"]].index("Node $node") + 1:]
    assert after and all('instance="$node"' in t["expr"] for p in after for t in p["targets"])


def test_example_scrape_config_is_valid(tmp_path: object) -> None:
    """contrib/prometheus/prometheus.yml, its TLS files moved to stand-ins
    (promtool checks that they exist), with the rules beside it."""
    from pathlib import Path

    tmp = Path(str(tmp_path))
    text = (RULES.parent / "prometheus.yml").read_text()
    for name in ("ca.pem", "prometheus.pem", "prometheus-key.pem"):
        (tmp / name).write_text("")
    (tmp / "prometheus.yml").write_text(text.replace("/etc/prometheus/taucg/", f"{tmp}/"))
    (tmp / RULES.name).write_text(RULES.read_text())
    r = subprocess.run([tool("promtool"), "check", "config", "prometheus.yml"],
                       capture_output=True, text=True, timeout=120, check=False, cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 1 rule files found" in r.stdout + r.stderr
