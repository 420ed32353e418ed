from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taucg.config.loading import builtin, loads
from taucg.faces.unit_files import generate
from taucg.model.tiers import (
    MANAGED_DEFAULTS,
    UINT64_MAX,
    service_dropin,
    service_tiers,
    slice_specs,
    tier_spec,
)

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def test_slices_in_order_with_parent_first() -> None:
    specs = slice_specs(builtin(), 8 * GIB)
    assert [s.unit for s in specs] == ["tau.slice", "tau-critical.slice", "tau-high.slice",
                                       "tau-normal.slice", "tau-low.slice",
                                       "tau-background.slice"]


def test_properties_and_directives() -> None:
    cfg = loads('[tiers.low]\ncpu_weight = 30\ncpu_quota = 150.0\nmemory_high = "60%"\n'
                'memory_max = "2G"\nallowed_cpus = "0-1"\ntasks_max = "infinity"\n')
    spec = tier_spec("low", cfg.tiers["low"], 10 * GIB)
    p = spec.properties
    assert p["CPUWeight"] == 30
    assert p["CPUQuotaPerSecUSec"] == 1_500_000  # 150% = 1.5 s of CPU per second
    assert "MemoryHigh" not in p and p["MemoryHighScale"] == round(0.6 * (1 << 32))
    assert p["MemoryMax"] == 2 * GIB
    assert p["AllowedCPUs"] == [0, 1]
    assert p["TasksMax"] == UINT64_MAX
    assert p["MemoryMin"] == 0 and p["MemoryLow"] == 0  # unset keys reset
    assert p["IOWeight"] == 30  # the built-in default still applies
    assert p["ManagedOOMPreference"] == "none"
    assert dict(spec.directives) == {
        "CPUWeight": "30", "CPUQuota": "150%", "MemoryHigh": "60%", "MemoryMax": "2G",
        "AllowedCPUs": "0-1", "IOWeight": "30", "TasksMax": "infinity"}
    e = spec.expected
    assert e.cpu_max_quota_usec == 150_000
    assert e.memory_max == 2 * GIB and e.memory_percent_keys == {"memory_high"}
    assert abs(e.memory_high - 0.6 * 10 * GIB) < 4096  # type: ignore[operator]
    assert e.pids_max is None


def test_oomd_preference_and_parent_protection() -> None:
    specs = {s.unit: s for s in slice_specs(builtin(), 8 * GIB)}
    assert specs["tau-critical.slice"].properties["ManagedOOMPreference"] == "avoid"
    assert specs["tau-high.slice"].properties["ManagedOOMPreference"] == "avoid"
    assert specs["tau-low.slice"].properties["ManagedOOMPreference"] == "none"
    parent = specs["tau.slice"]
    assert parent.properties["MemoryLow"] == (256 + 128) << 20
    assert parent.properties["MemoryMin"] == 128 << 20
    assert set(parent.properties) == set(MANAGED_DEFAULTS)


def test_service_dropins() -> None:
    cfg = loads('[tiers.high]\nunits = ["db", "web.socket"]\n')
    assert service_tiers(cfg) == {"db.service": "high", "web.socket": "high"}
    assert "[Service]\nSlice=tau-high.slice\n" in service_dropin("db.service", "high")
    assert "[Socket]\nSlice=tau-high.slice\n" in service_dropin("web.socket", "high")


def test_shipped_units_equal_the_generator() -> None:
    for name, text in generate().items():
        assert (ROOT / "units" / name).read_text() == text, f"units/{name} is stale"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-units"), "--check"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout
