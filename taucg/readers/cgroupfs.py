"""The cgroup v2 filesystem, for everything off the sampler's hot path:
single key files read back after apply, controllers, members and
processes. Writes are left to systemd (through its properties) wherever it
has one; this module only reads.

"max" is parsed explicitly, an absent file is None (its controller is off),
and a removed cgroup raises CgroupGone naming the path.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from taucg.config.values import CpuSet, parse_cpus

ROOT = Path("/sys/fs/cgroup")


class CgroupError(OSError):
    """A cgroup file could not be read; carries the path."""


class CgroupGone(CgroupError):
    pass


def unit_cgroup(unit: str, root: Path = ROOT) -> Path:
    """The cgroup directory systemd gives a slice, following its dash
    hierarchy: tau-critical.slice lives at tau.slice/tau-critical.slice."""
    if not unit.endswith(".slice"):
        raise ValueError(f"{unit} is not a slice; ask systemd for its ControlGroup")
    stem = unit.removesuffix(".slice")
    if stem == "-":
        return root
    parts = stem.split("-")
    path = root
    for i in range(1, len(parts) + 1):
        path = path / ("-".join(parts[:i]) + ".slice")
    return path


def read(cgroup: Path, name: str) -> str | None:
    """A file's text without its trailing newline; None if it is absent."""
    try:
        return (cgroup / name).read_text().rstrip("\n")
    except FileNotFoundError:
        if not cgroup.is_dir():
            raise CgroupGone(errno.ENOENT, f"cgroup {cgroup} does not exist") from None
        return None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EOPNOTSUPP):
            return None
        raise CgroupError(exc.errno or errno.EIO, f"reading {cgroup / name}: {exc.strerror}"
                          ) from exc


Max = int | None  # None is "max": no limit


def parse_max(text: str) -> Max:
    text = text.strip()
    if text == "max":
        return None
    if not text.isdigit():
        raise ValueError(f"expected a number or 'max', got {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class CpuMax:
    quota_usec: int | None  # None: no quota
    period_usec: int

    @property
    def percent(self) -> float | None:
        """CPUQuota in systemd's terms: 100 = one full CPU."""
        return None if self.quota_usec is None else 100.0 * self.quota_usec / self.period_usec


def parse_cpu_max(text: str) -> CpuMax:
    quota, _, period = text.strip().partition(" ")
    return CpuMax(parse_max(quota), int(period or 100000))


def parse_io_weight(text: str) -> int | None:
    """io.weight's "default N" line (per-device overrides are not ours)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "default" and value.strip().isdigit():
            return int(value)
    return None


def controllers(cgroup: Path = ROOT) -> set[str]:
    text = read(cgroup, "cgroup.controllers")
    return set(text.split()) if text else set()


def subtree_control(cgroup: Path = ROOT) -> set[str]:
    text = read(cgroup, "cgroup.subtree_control")
    return set(text.split()) if text else set()


def online_cpus() -> CpuSet:
    return parse_cpus(Path("/sys/devices/system/cpu/online").read_text(), allow_empty=True)


def parse_cpus_text(text: str) -> frozenset[int]:
    return parse_cpus(text, allow_empty=True).cpus


def children(cgroup: Path) -> list[str]:
    try:
        return sorted(p.name for p in cgroup.iterdir() if p.is_dir())
    except FileNotFoundError:
        raise CgroupGone(errno.ENOENT, f"cgroup {cgroup} does not exist") from None


def procs(cgroup: Path) -> list[int]:
    text = read(cgroup, "cgroup.procs")
    return [int(p) for p in text.split()] if text else []



@dataclass(frozen=True, slots=True)
class MemberUsage:
    """What a unit inside a tier slice uses, from three of its files; a
    field is None where its controller is off there."""

    cpu_seconds: float | None
    memory_bytes: int | None
    tasks: int | None


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def member_usage(cgroup: Path) -> MemberUsage:
    """Read with plain opens, not the sampler's kept-open set: members come
    and go, and thirteen kept fds per unit would cost more than three reads."""
    stat = read(cgroup, "cpu.stat")
    usage = None
    for line in (stat or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.isdigit():
            usage = int(value) / 1e6
    return MemberUsage(usage, _number(read(cgroup, "memory.current")),
                       _number(read(cgroup, "pids.current")))


def members_usage(cgroup: Path) -> dict[str, MemberUsage]:
    """Each unit directly inside a slice: systemd makes one directory per unit."""
    out = {}
    try:
        names = children(cgroup)
    except CgroupGone:
        return {}
    for name in names:
        try:
            out[name] = member_usage(cgroup / name)
        except CgroupError:
            continue  # stopped while we looked
    return out


def cpu_max(cgroup: Path) -> CpuMax | None:
    """cpu.max, or None where the cpu controller is off or the cgroup is gone."""
    try:
        text = read(cgroup, "cpu.max")
    except CgroupError:
        return None
    return parse_cpu_max(text) if text else None
