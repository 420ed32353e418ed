"""Unit completion from live systemd over D-Bus: a service the test starts
is offered with its state and description, the config's critical units
come first, and a stopped (garbage-collected) unit is no longer offered.

The VM emulates its CPU, so the D-Bus deadline is raised through
TAUCG_COMPLETION_TIMEOUT: what is tested here is that the units come from
systemd, not how fast a Tab press is (the host tests cover the deadline)."""

from __future__ import annotations

from pathlib import Path

from tests.support.blocking_systemd import BlockingSystemd
from tests.support.completion import complete, values
from tests.support.configs import write_config

from .helpers import Units, unit_state, wait_for

SLOW_VM = {"TAUCG_COMPLETION_TIMEOUT": "30"}


def _sleeper(systemd: BlockingSystemd, units: Units, label: str) -> str:
    svc = units.name(label)
    systemd.start_transient(svc, {
        "Description": f"taucg completion test {label}",
        "ExecStart": [("/bin/sleep", ["/bin/sleep", "infinity"], False)],
    })
    wait_for(lambda: unit_state(systemd, svc) == "active", 120, f"{svc} to be active")
    return svc


def test_loaded_services_complete_with_their_state(systemd: BlockingSystemd, units: Units,
                                                   tmp_path: Path) -> None:
    svc = _sleeper(systemd, units, "complete")
    cfg = write_config(tmp_path / "c.toml",
                       crash_recovery={"critical_processes": ["taucg-test-critical"]})
    items, err = complete(f"taucg recovery history --config {cfg} --unit taucg-test-",
                          env=SLOW_VM)
    offered = values(items)
    assert offered[0] == "taucg-test-critical.service"  # the config's first, even unloaded
    assert svc in offered
    assert ("plain", svc, "active: taucg completion test complete") in items
    assert all(v.startswith("taucg-test-") for v in offered)
    assert err == ""
    everything, _ = complete(f"taucg recovery save-state --config {cfg} ", env=SLOW_VM)
    names = values(everything)
    assert "systemd-journald.service" in names
    assert all(n.endswith(".service") for n in names)  # slices and scopes are not offered


def test_a_stopped_unit_is_no_longer_offered(systemd: BlockingSystemd, units: Units) -> None:
    svc = _sleeper(systemd, units, "gone")
    items, _ = complete(f"taucg recovery --unit {svc}", env=SLOW_VM)
    assert values(items) == [svc]
    systemd.stop(svc)

    def not_offered() -> bool:
        return svc not in values(complete(f"taucg recovery --unit {svc}", env=SLOW_VM)[0])

    wait_for(not_offered, 240, f"{svc} to leave the completion after it stopped")
