"""The cgroup sweep against a real systemd unit with every controller on."""

from __future__ import annotations

import sys
import time

from taucg.actors.systemd_dbus import SERVICE
from taucg.readers.sampler import Sampler
from tests.support.blocking_systemd import BlockingSystemd

from .helpers import Units, cgroup_dir, unit_state, wait_for


def test_cgroup_sweep_sees_memory_rise_and_oom_kill(systemd: BlockingSystemd,
                                                    units: Units) -> None:
    slice_name = units.name("sampler", "slice")
    systemd.start_transient(slice_name, {"Description": "taucg sampler test slice"})
    svc = units.name("grower")
    # Grows by 8 MiB steps so the sweep can watch memory.current climb
    # before MemoryMax ends it.
    code = ("import time\nheld = []\nwhile True:\n"
            "    held.append(b'x' * (8 << 20))\n    time.sleep(0.3)\n")
    systemd.start_transient(svc, {
        "Description": "taucg sampler memory grower",
        "Slice": slice_name,
        "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", code], False)],
        "MemoryMax": 96 << 20,
        "MemorySwapMax": 0,
    })
    svc_cg = str(cgroup_dir(systemd, svc))
    slice_cg = str(cgroup_dir(systemd, slice_name))
    sampler = Sampler()
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while unit_state(systemd, svc) == "active" and time.monotonic() < deadline:
        sample = sampler.cgroups([svc_cg])[0]
        if sample is not None and sample.memory_current is not None:
            assert sample.memory_max == 96 << 20
            seen.append(sample.memory_current)
        time.sleep(0.2)
    # It leaves "active" through "deactivating" while systemd reaps it.
    wait_for(lambda: unit_state(systemd, svc) != "deactivating", 60, "the grower to stop")
    assert unit_state(systemd, svc) == "failed"
    assert systemd.get_property(svc, "Result", SERVICE) == "oom-kill"
    assert len(seen) >= 3, "the sweep never saw the service running"
    assert max(seen) >= 32 << 20
    assert max(seen) > seen[0]
    # memory.events is hierarchical: the slice counts its child's kill even
    # after the service's own cgroup is gone.
    parent = sampler.cgroups([slice_cg])[0]
    assert parent is not None and parent.memory_events is not None
    assert parent.memory_events.oom_kill >= 1
    assert parent.memory_current is not None and parent.pids_current is not None
    assert parent.cpu is not None and parent.cpu.usage_seconds > 0


def test_process_sweep_sees_systemd_as_pid1() -> None:
    records = {r.pid: r for r in Sampler().processes()}
    assert records[1].comm == "systemd"
    assert records[1].ppid == 0
