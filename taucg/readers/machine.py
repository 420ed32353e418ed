"""What planning, verifying and the property conversions need to know about
this machine: its RAM (percentages resolve against it), its online CPUs
and the cgroup v2 controllers its root offers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taucg.readers import cgroupfs


@dataclass(frozen=True, slots=True)
class Machine:
    total_memory: int
    online_cpus: frozenset[int]
    controllers: frozenset[str]
    cgroup_root: Path = cgroupfs.ROOT

    @classmethod
    def probe(cls, cgroup_root: Path = cgroupfs.ROOT) -> Machine:
        total = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
        ctrl: set[str] = set()
        if (cgroup_root / "cgroup.controllers").exists():
            ctrl = cgroupfs.controllers(cgroup_root)
        return cls(total, cgroupfs.online_cpus().cpus, frozenset(ctrl), cgroup_root)
