from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taucg.config.loading import builtin, loads
from taucg.model.properties import TABLE, UINT64_MAX
from taucg.model.tiers import service_dropin, service_tiers, slice_specs, tier_spec
from taucg.readers.machine import Machine

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def machine(total: int) -> Machine:
    return Machine(total, frozenset({0, 1, 2, 3}), frozenset({"cpu", "memory", "io", "pids"}))


def expected_files(spec: object, total: int) -> dict[str, str]:
    return {file: text for _, file, text in spec.expectations(machine(total))}  # type: ignore[attr-defined]


def test_slices_in_order_with_parent_first() -> None:
    specs = slice_specs(builtin(), 8 * GIB)
    assert [s.unit for s in specs] == ["tau.slice", "tau-critical.slice", "tau-high.slice",
                                       "tau-normal.slice", "tau-low.slice",
                                       "tau-background.slice"]


def test_properties_and_directives() -> None:
    cfg = loads('[tiers.low]\ncpu_weight = 30\ncpu_quota = 150.0\nmemory_high = "60%"\n'
                'memory_max = "2G"\nallowed_cpus = "0-1"\ntasks_max = "infinity"\n')
    spec = tier_spec("low", cfg.tiers["low"])
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
    e = expected_files(spec, 10 * GIB)
    assert e["cpu.max"] == "150000 100000"
    assert e["memory.max"] == str(2 * GIB) and spec.percent_keys == {"memory_high"}
    assert abs(int(e["memory.high"]) - 0.6 * 10 * GIB) < 4096
    assert e["pids.max"] == "max"
    assert e["cpuset.cpus.effective"] == "0-1"
    assert e["io.weight"] == "default 30" and e["cpu.weight"] == "30"


def test_new_properties_are_one_row_each() -> None:
    cfg = loads('[tiers.background]\ncpu_weight = "idle"\nstartup_cpu_weight = 50\n'
                'memory_swap_max = "256M"\n')
    spec = tier_spec("background", cfg.tiers["background"])
    p = spec.properties
    assert p["CPUWeight"] == 0  # idle travels as 0 over D-Bus
    assert p["StartupCPUWeight"] == 50
    assert p["MemorySwapMax"] == 256 << 20
    d = dict(spec.directives)
    assert d["CPUWeight"] == "idle" and d["StartupCPUWeight"] == "50"
    assert d["MemorySwapMax"] == "256M"
    e = expected_files(spec, 8 * GIB)
    assert e["cpu.idle"] == "1" and "cpu.weight" not in e
    assert e["memory.swap.max"] == str(256 << 20)
    # Unset, the new rows send systemd's defaults and expect the kernel's.
    plain = tier_spec("normal", loads("").tiers["normal"])
    assert plain.properties["MemorySwapMax"] == UINT64_MAX
    assert plain.properties["StartupCPUWeight"] == UINT64_MAX
    assert expected_files(plain, 8 * GIB)["memory.swap.max"] == "max"


def test_every_tier_key_has_a_row_and_every_row_a_key() -> None:
    import dataclasses

    from taucg.config.schema import TierPolicy
    from taucg.model.properties import CONFIG_KEYS

    fields = {f.name for f in dataclasses.fields(TierPolicy)} - {"units"}
    assert fields == set(CONFIG_KEYS)


def test_oomd_preference_and_parent_protection() -> None:
    specs = {s.unit: s for s in slice_specs(builtin(), 8 * GIB)}
    assert specs["tau-critical.slice"].properties["ManagedOOMPreference"] == "avoid"
    assert specs["tau-high.slice"].properties["ManagedOOMPreference"] == "avoid"
    assert specs["tau-low.slice"].properties["ManagedOOMPreference"] == "none"
    parent = specs["tau.slice"]
    assert parent.properties["MemoryLow"] == (256 + 128) << 20
    assert parent.properties["MemoryMin"] == 128 << 20
    assert set(parent.properties) == {p.dbus for p in TABLE}


def test_service_dropins() -> None:
    cfg = loads('[tiers.high]\nunits = ["db", "web.socket"]\n')
    assert service_tiers(cfg) == {"db.service": "high", "web.socket": "high"}
    assert "[Service]\nSlice=tau-high.slice\n" in service_dropin("db.service", "high")
    assert "[Socket]\nSlice=tau-high.slice\n" in service_dropin("web.socket", "high")


def test_shipped_units_equal_the_generator() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-units"), "--check"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout
