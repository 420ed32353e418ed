"""The rig itself: systemd as PID 1, every controller, limits that reach the
kernel, a real OOM kill, and D-Bus from Python."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from taucg.actors.systemd_dbus import SERVICE, NoSuchUnit
from tests.support.blocking_systemd import BlockingSystemd

from .helpers import CGROUP_ROOT, Units, cgroup_dir, unit_state, wait_for


def test_systemd_is_pid1_with_every_controller() -> None:
    assert Path("/proc/1/comm").read_text().strip() == "systemd"
    listed = set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    # Every controller the kernel has and has enabled (v1 is off in the VM).
    known = set()
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, _hier, _num, enabled = line.split()
        if enabled == "1":
            known.add(name)
    v2_only = {"misc"} if "misc" in listed else set()
    assert known | v2_only <= listed | {"cpuacct", "blkio", "devices", "freezer", "net_cls",
                                        "net_prio", "perf_event"}
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= listed


def test_transient_unit_limits_reach_cgroup_files(systemd: BlockingSystemd,
                                                  units: Units) -> None:
    slice_name = units.name("rig", "slice")
    systemd.start_transient(slice_name, {"Description": "taucg test slice"})
    svc = units.name("limits")
    systemd.start_transient(svc, {
        "Description": "taucg rig limits",
        "Slice": slice_name,
        "ExecStart": [("/bin/sleep", ["/bin/sleep", "infinity"], False)],
        "MemoryMax": 50 << 20,
        "CPUWeight": 50,
        "AllowedCPUs": [0],
    })
    cg = cgroup_dir(systemd, svc)
    assert cg.parent.name == slice_name
    assert (cg / "memory.max").read_text().strip() == str(50 << 20)
    assert (cg / "cpu.weight").read_text().strip() == "50"
    assert (cg / "cpuset.cpus").read_text().strip() == "0"
    assert (cg / "cpuset.cpus.effective").read_text().strip() == "0"


def test_memory_hog_is_oom_killed(systemd: BlockingSystemd, units: Units) -> None:
    svc = units.name("hog")
    code = "import signal\nx = b'x' * (200 << 20)\nwhile True:\n    signal.pause()"
    systemd.start_transient(svc, {
        "Description": "taucg rig memory hog",
        "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", code], False)],
        "MemoryMax": 50 << 20,
        "MemorySwapMax": 0,
    })
    wait_for(lambda: unit_state(systemd, svc) == "failed", 120, f"{svc} to fail")
    assert systemd.get_property(svc, "Result", SERVICE) == "oom-kill"


def test_dbus_round_trip(systemd: BlockingSystemd, units: Units) -> None:
    svc = units.name("dbus")
    with pytest.raises(NoSuchUnit) as err:
        systemd.get_unit(svc)
    assert svc in str(err.value)
    assert "NoSuchUnit" in str(err.value)
    systemd.start_transient(svc, {
        "Description": "taucg rig D-Bus",
        "ExecStart": [("/bin/sleep", ["/bin/sleep", "infinity"], False)],
    })
    path = systemd.get_unit(svc)
    assert path.startswith("/org/freedesktop/systemd1/unit/")
    assert unit_state(systemd, svc) == "active"
    pid = systemd.get_property(svc, "MainPID", SERVICE)
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    systemd.stop(svc)
    # systemd finishes the job on SIGCHLD and reaps right after: allow a moment.
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, f"pid {pid} to be reaped")
    # A stopped transient unit is garbage-collected.
    wait_for(lambda: _gone(systemd, svc), 30, f"{svc} to be unloaded")


def _gone(systemd: BlockingSystemd, unit: str) -> bool:
    try:
        systemd.get_unit(unit)
    except NoSuchUnit:
        return True
    return False


def test_signal_stream_reports_a_unit_starting(systemd: BlockingSystemd, units: Units) -> None:
    import asyncio

    client = systemd.client
    svc = units.name("signals")

    async def watch() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        stream = await client.signals()  # open before the unit exists
        await client.start_transient(svc, {
            "Description": "taucg rig signals",
            "ExecStart": [("/bin/sleep", ["/bin/sleep", "infinity"], False)],
        })
        sig = await asyncio.wait_for(stream.__anext__(), 60)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            seen.append((sig.member, str(sig.body[:3])))
            if sig.member == "JobRemoved" and svc in sig.body:
                return seen
            remaining = deadline - asyncio.get_running_loop().time()
            sig = await asyncio.wait_for(stream.__anext__(), max(remaining, 0.1))

    seen = systemd.run(watch())
    members = {m for m, _ in seen}
    assert "UnitNew" in members or "JobNew" in members, seen
    assert any(m == "JobRemoved" and svc in body for m, body in seen)
