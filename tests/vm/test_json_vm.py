"""The JSON contract where only real systemd can fill the documents: status
on applied slices with a member, apply and its dry run, recovery's units
read over D-Bus, leave-safe-mode, classify placing a scope's process, and
health with its services check. Each document is validated against the
shipped schema (tests/host/test_json_contract.py covers the host's share)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import private_paths, write_config
from tests.support.json_contract import one_document, validate

from .helpers import Units, wait_for

UNIT_DIR = Path("/etc/systemd/system")


@pytest.fixture(scope="module", autouse=True)
def applied_default(systemd: BlockingSystemd) -> Iterator[None]:
    """The built-in default applied once, removed at the end (as test_apply_vm does)."""
    taucg("apply")
    yield
    for p in list(UNIT_DIR.glob("tau*.slice")):
        p.unlink()
    systemd.reload()
    systemd.stop("tau.slice")


@pytest.fixture
def private(tmp_path: Path) -> Path:
    sections = private_paths(tmp_path)
    sections["crash_recovery"]["critical_processes"] = ["systemd-journald"]
    return write_config(tmp_path / "taucg.toml", **sections)


def test_status_of_applied_slices_with_a_member(systemd: BlockingSystemd, units: Units) -> None:
    svc = units.name("json-member")
    systemd.start_transient(svc, {
        "Description": "taucg JSON status member", "Slice": "tau-high.slice",
        "ExecStart": [("/bin/sleep", ["/bin/sleep", "600"], False)]})
    doc = one_document(taucg("status", "-o", "json", "--interval", "0.2"), "status")
    high = doc["tiers"]["high"]
    assert high["applied"] is True and {"unit": svc, "tasks": 1} in high["members"]
    assert high["configured"]["cpu_weight"] == 400
    assert high["configured"]["memory_low_bytes"] == 128 << 20
    assert isinstance(high["memory_bytes"], int) and high["memory_bytes"] > 0
    assert high["drift"] == []
    assert doc["tiers"]["low"]["configured"]["memory_high_ram_percent"] == 60

    p = subprocess.Popen(taucg_argv("status", "-w", "1", "-o", "json", "--interval", "0.2"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        for _ in range(2):
            line = validate(json.loads(p.stdout.readline()), "status")
            assert line["tiers"]["high"]["applied"] is True
    finally:
        p.terminate()  # ours, by its Popen
        p.wait(timeout=120)


def test_apply_and_its_dry_run(tmp_path: Path) -> None:
    done = one_document(taucg("apply", "-o", "json"), "apply")
    assert done["dry_run"] is False and done["plan"]["changed"] is False
    assert done["drift"] == []

    cfg = write_config(tmp_path / "taucg.toml", tiers={"low": {"cpu_weight": 25}})
    r = taucg("apply", "--dry-run", "-o", "json", config=cfg, check=False)
    assert r.returncode == 10, r.stdout + r.stderr
    plan = one_document(r, "apply")["plan"]
    assert [(p["name"], p["before"], p["after"]) for p in plan["properties"]] == [
        ("CPUWeight", "30", "25")]


def test_recovery_units_over_dbus_and_leave_safe_mode(private: Path) -> None:
    doc = one_document(taucg("recovery", "-o", "json", config=private), "recovery")
    assert doc["systemd_reachable"] is True
    journald = next(u for u in doc["units"] if u["unit"] == "systemd-journald.service")
    assert journald["state"] == "active" and journald["load"] == "loaded"
    assert isinstance(journald["n_restarts"], int)

    thawed = one_document(taucg("recovery", "leave-safe-mode", "-o", "json", config=private),
                          "recovery-leave-safe-mode")
    assert set(thawed["thawed"]) <= {"tau-low.slice", "tau-background.slice"}


def test_classify_dry_run_lists_a_scope_process(tmp_path: Path, units: Units) -> None:
    scope = units.name("json-prey", "scope")
    # `unit` matches one unit exactly (no globs): this test's own scope.
    cfg = write_config(tmp_path / "taucg.toml", **private_paths(tmp_path),
                       rules=[{"comm": "sleep", "unit": scope, "tier": "low"}])
    p = subprocess.Popen(["systemd-run", "--quiet", "--scope", "--unit", scope,
                          "/bin/sleep", "600"])
    try:
        # systemd-run --scope registers the scope, then execs the command.
        wait_for(lambda: Path(f"/proc/{p.pid}/comm").read_text().strip() == "sleep"
                 and f"/{scope}" in Path(f"/proc/{p.pid}/cgroup").read_text(), 120,
                 "the scope's sleep to run")
        pid = p.pid
        doc = one_document(taucg("classify", "--dry-run", "-o", "json", config=cfg),
                           "classify")
        mine = [e for e in doc["placements"] if e["pid"] == pid]
        assert mine and mine[0]["tier"] == "low" and mine[0]["placed"] is False, doc
    finally:
        p.kill()  # ours, by its Popen
        p.wait(timeout=60)


def test_health_with_the_services_check(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "taucg.toml", **private_paths(tmp_path),
                       health_checking={"service_health_checks": ["systemd-journald"]})
    r = taucg("health", "-o", "json", config=cfg, check=False)
    doc = one_document(r, "health")
    services: dict[str, Any] = next(c for c in doc["checks"] if c["name"] == "services")
    assert services["measured"] == {"healthy": 1, "installed": 1}, services
    assert doc["healthy"] == (r.returncode == 0)
