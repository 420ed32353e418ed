"""The property table: every row converts, shows and compares its values."""

from __future__ import annotations

import pytest

from taucg.actors.systemd_dbus import PROPERTY_SIGNATURES, to_variant
from taucg.config.values import CpuSet, Size, parse_cpus
from taucg.model import properties
from taucg.model.properties import BY_KEY, TABLE, UINT64_MAX, dbus_values, property_for
from taucg.readers.machine import Machine

GIB = 1 << 30
M = Machine(8 * GIB, frozenset(range(4)), frozenset({"cpu", "memory", "io", "pids", "cpuset"}))


def test_the_dbus_client_knows_every_signature_from_the_table() -> None:
    for p in TABLE:
        assert PROPERTY_SIGNATURES[p.dbus] == p.signature
        if p.scale:
            assert PROPERTY_SIGNATURES[p.scale] == "u"
    assert to_variant("AllowedCPUs", [0, 1, 9]).value == bytes([0b11, 0b10])


def test_defaults_are_what_systemd_calls_unset() -> None:
    sent = dbus_values({}, defaults=True)
    assert sent == {p.dbus: p.default for p in TABLE}
    assert dbus_values({}) == {}
    with pytest.raises(KeyError, match="not in the property table: cpu_wieght"):
        dbus_values({"cpu_wieght": 3})


@pytest.mark.parametrize(("key", "value", "dbus", "sent", "shown"), [
    ("cpu_weight", 250, "CPUWeight", 250, "250"),
    ("cpu_weight", "idle", "CPUWeight", 0, "idle"),
    ("cpu_quota", 50.0, "CPUQuotaPerSecUSec", 500_000, "50%"),
    ("memory_max", Size(bytes=GIB), "MemoryMax", GIB, "1G"),
    ("memory_max", Size(), "MemoryMax", UINT64_MAX, "infinity"),
    ("memory_high", Size(percent=25), "MemoryHighScale", 1 << 30, "25% of RAM"),
    ("memory_swap_max", Size(bytes=0), "MemorySwapMax", 0, "0"),
    ("allowed_cpus", parse_cpus("1-2"), "AllowedCPUs", [1, 2], "1-2"),
    ("tasks_max", "infinity", "TasksMax", UINT64_MAX, "infinity"),
    ("tasks_max", 512, "TasksMax", 512, "512"),
])
def test_to_dbus_and_show(key: str, value: object, dbus: str, sent: object, shown: str) -> None:
    p = BY_KEY[key]
    name, v = p.to_dbus(value)
    assert (name, v) == (dbus, sent)
    assert p.show(name, v) == shown
    assert property_for(name) is p


def test_unset_values_show_as_admins_expect() -> None:
    assert BY_KEY["cpu_weight"].show("CPUWeight", UINT64_MAX) == "default"
    assert BY_KEY["cpu_quota"].show("CPUQuotaPerSecUSec", UINT64_MAX) == "none"
    assert BY_KEY["allowed_cpus"].show("AllowedCPUs", b"") == "all"


def test_live_values_compare_as_systemd_stores_them() -> None:
    high = BY_KEY["memory_high"]
    name, scale = high.to_dbus(Size(percent=50))
    # systemd resolved 50% of RAM to whole pages: the same, within rounding.
    assert high.same(name, scale, 4 * GIB - 4096, M)
    assert not high.same(name, scale, 3 * GIB, M)
    cpus = BY_KEY["allowed_cpus"]
    assert cpus.same("AllowedCPUs", [0, 1], b"\x03", M)
    assert not cpus.same("AllowedCPUs", [0, 1], b"\x01", M)
    assert BY_KEY["cpu_weight"].same("CPUWeight", 30, 30, M)


def test_expected_cgroup_text_and_matching() -> None:
    q = BY_KEY["cpu_quota"]
    assert q.expect(150.0, M) == [("cpu.max", "150000 100000")]
    assert q.matches("cpu.max", "150000 100000", "150000 100000\n", 150.0, M)
    assert not q.matches("cpu.max", "150000 100000", "max 100000", 150.0, M)
    mx = BY_KEY["memory_max"]
    assert mx.expect(None, M) == [("memory.max", "max")]
    assert BY_KEY["memory_min"].expect(None, M) == [("memory.min", "0")]
    # The kernel rounds bytes down to a page: within a page is a match.
    assert mx.matches("memory.max", str(GIB + 100), str(GIB), Size(bytes=GIB + 100), M)
    assert not mx.matches("memory.max", str(GIB), str(GIB - 8192), Size(bytes=GIB), M)
    io = BY_KEY["io_weight"]
    assert io.expect(None, M) == [("io.weight", "default 100")]
    assert io.matches("io.weight", "default 30", "default 30\n8:0 200", 30, M)
    cs = BY_KEY["allowed_cpus"]
    offline = CpuSet(frozenset({1, 7}))  # CPU 7 is not online here
    assert cs.expect(offline, M) == [("cpuset.cpus.effective", "1")]
    assert cs.expect(None, M) == []
    assert BY_KEY["startup_cpu_weight"].expect(50, M) == []  # boot-time only


def test_effective_files_cover_every_row_once() -> None:
    files = properties.effective_files()
    assert len(files) == len(set(files))
    for p in TABLE:
        assert set(p.files) <= set(files)
    assert {"cpu.idle", "memory.swap.max", "cpuset.cpus.effective"} <= set(files)
