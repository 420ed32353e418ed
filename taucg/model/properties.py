"""The one table of the systemd resource properties taucg manages.

Each row holds everything taucg knows about one property: its config key
in ``[tiers.<tier>]``, the unit-file directive, the D-Bus name and
signature (and the ``…Scale`` variant for percentages of RAM), the value
that means "systemd's default", the cgroup controller it needs, the cgroup
files that show its effect, and, through its kind, how a configured value
becomes directive text, a D-Bus value and expected file text, how a
D-Bus value is shown, and how configured and effective values compare.

Apply's plan, its verify, `taucg status`, preflight, placed scopes and
`taucg run` all read this table. Adding a property is one row here plus
its key in config.schema.TierPolicy (a unit test checks they agree).

Values here are the config's own: int, float (CPUQuota percent), Size,
CpuSet, "infinity" (TasksMax) and "idle" (CPUWeight). None everywhere
means "not configured": systemd's default is sent and expected.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from taucg.config.values import CpuSet, Size, format_bytes, format_cpus
from taucg.readers import cgroupfs
from taucg.readers.machine import Machine

UINT64_MAX = (1 << 64) - 1  # systemd's "infinity" and "not set" for t-typed values
UINT32_MAX = (1 << 32) - 1
CPU_PERIOD_USEC = 100_000  # systemd's default CPUQuotaPeriodSec
USEC_PER_PERCENT = 10_000  # CPUQuotaPerSecUSec: CPU µs per wall second; 1% = 10,000
WEIGHT_IDLE = 0  # CPUWeight=idle travels over D-Bus as 0 (cpu.idle = 1)
PAGE = 4096


class Kind:
    """How one family of values converts; subclasses override what differs."""

    def directive(self, value: Any) -> str:
        return str(value)

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        """(D-Bus name, value) to send; None sends systemd's default."""
        return prop.dbus, prop.default if value is None else value

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        """A D-Bus value (sent or read back) as an admin reads it."""
        return str(value)

    def same(self, prop: Property, dbus_name: str, want: Any, have: Any,
             machine: Machine) -> bool:
        """Whether systemd's live value ``have`` already is ``want``."""
        return bool(want == have)

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        """(cgroup file, text the kernel should show); [] when not checkable."""
        return []

    def matches(self, prop: Property, file: str, expected: str, actual: str,
                value: Any, machine: Machine) -> bool:
        return actual.strip() == expected


class Weight(Kind):
    """CPUWeight, StartupCPUWeight, IOWeight: 1-10000; CPUWeight also "idle"."""

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        if value == "idle":
            return prop.dbus, WEIGHT_IDLE
        return super().dbus(prop, value)

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        if value == UINT64_MAX:
            return "default"
        return "idle" if value == WEIGHT_IDLE else str(value)

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        if prop.cgroup_file is None:
            return []  # StartupCPUWeight: in force only while the system boots
        if value == "idle":
            return [("cpu.idle", "1")]
        weight = str(100 if value is None else value)
        if prop.cgroup_file == "io.weight":
            return [("io.weight", f"default {weight}")]
        return [(prop.cgroup_file, weight)]

    def matches(self, prop: Property, file: str, expected: str, actual: str,
                value: Any, machine: Machine) -> bool:
        if file == "io.weight":
            return cgroupfs.parse_io_weight(actual) == cgroupfs.parse_io_weight(expected)
        return actual.strip() == expected


class Quota(Kind):
    """CPUQuota: percent of one CPU in the config, µs per second over D-Bus."""

    def directive(self, value: Any) -> str:
        return f"{value:g}%"

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        return prop.dbus, UINT64_MAX if value is None else round(value * USEC_PER_PERCENT)

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        return "none" if value == UINT64_MAX else f"{value / USEC_PER_PERCENT:g}%"

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        quota = "max" if value is None else str(round(value / 100 * CPU_PERIOD_USEC))
        return [("cpu.max", f"{quota} {CPU_PERIOD_USEC}")]

    def matches(self, prop: Property, file: str, expected: str, actual: str,
                value: Any, machine: Machine) -> bool:
        return (cgroupfs.parse_cpu_max(actual).quota_usec
                == cgroupfs.parse_cpu_max(expected).quota_usec)


def _scale(percent: float) -> int:
    return min(UINT32_MAX, round(percent / 100 * (1 << 32)))


class Memory(Kind):
    """Sizes: bytes, infinity, or a percentage of RAM sent as <Name>Scale so
    systemd computes the bytes exactly as it does for "40%" in a unit file."""

    def directive(self, value: Any) -> str:
        return str(value)

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        if value is None:
            return prop.dbus, prop.default
        size: Size = value
        if size.percent is not None:
            assert prop.scale is not None, f"{prop.key} takes no percentage"
            return prop.scale, _scale(size.percent)
        return prop.dbus, UINT64_MAX if size.is_infinity else size.bytes

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        if dbus_name == prop.scale:
            return f"{value / (1 << 32) * 100:.4g}% of RAM"
        return "infinity" if value == UINT64_MAX else format_bytes(int(value))

    def same(self, prop: Property, dbus_name: str, want: Any, have: Any,
             machine: Machine) -> bool:
        if dbus_name == prop.scale:
            # systemd computed the bytes from the percentage; allow its rounding.
            wanted = int(machine.total_memory * want / (1 << 32))
            return abs(int(have) - wanted) <= self._slack(machine, True)
        return bool(want == have)

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        assert prop.cgroup_file is not None
        if value is None:
            return [(prop.cgroup_file, "0" if prop.default == 0 else "max")]
        resolved = value.resolve(machine.total_memory)
        return [(prop.cgroup_file, "max" if resolved is None else str(resolved))]

    def matches(self, prop: Property, file: str, expected: str, actual: str,
                value: Any, machine: Machine) -> bool:
        want, have = cgroupfs.parse_max(expected), cgroupfs.parse_max(actual)
        if want is None or have is None:
            return want == have
        # The kernel rounds to pages; systemd rounds percentages of RAM its own way.
        percent = isinstance(value, Size) and value.percent is not None
        return abs(have - want) <= self._slack(machine, percent)

    @staticmethod
    def _slack(machine: Machine, percent: bool) -> int:
        return max(2 * PAGE, machine.total_memory // 200) if percent else PAGE - 1


class Cpus(Kind):
    """AllowedCPUs: a CPU list in the config, a bitmask over D-Bus."""

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        return prop.dbus, prop.default if value is None else sorted(value.cpus)

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        return format_cpus(set(_cpus(value))) or "all"

    def same(self, prop: Property, dbus_name: str, want: Any, have: Any,
             machine: Machine) -> bool:
        return _cpus(want) == _cpus(have)

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        if value is None:
            return []  # the parent's CPUs: nothing of ours to check
        cpus: CpuSet = value
        return [("cpuset.cpus.effective", format_cpus(set(cpus.cpus & machine.online_cpus)))]

    def matches(self, prop: Property, file: str, expected: str, actual: str,
                value: Any, machine: Machine) -> bool:
        return cgroupfs.parse_cpus_text(actual) == cgroupfs.parse_cpus_text(expected)


def cpus_to_mask(cpus: list[int] | frozenset[int]) -> bytes:
    """AllowedCPUs/CPUAffinity take a little-endian bitmask as an array of bytes."""
    cpus = list(cpus)
    if not cpus:
        return b""
    mask = bytearray(max(cpus) // 8 + 1)
    for c in cpus:
        mask[c // 8] |= 1 << (c % 8)
    return bytes(mask)


def mask_to_cpus(mask: bytes) -> frozenset[int]:
    return frozenset(i * 8 + b for i, byte in enumerate(mask) for b in range(8) if byte >> b & 1)


def _cpus(value: Any) -> frozenset[int]:
    """Wanted values are CPU lists; systemd reports a bitmask."""
    if isinstance(value, list | set | frozenset):
        return frozenset(value)
    return mask_to_cpus(bytes(value))


class Tasks(Kind):
    """TasksMax: a count, or "infinity"."""

    def dbus(self, prop: Property, value: Any) -> tuple[str, Any]:
        return prop.dbus, UINT64_MAX if value in (None, "infinity") else value

    def show(self, prop: Property, dbus_name: str, value: Any) -> str:
        return "infinity" if value == UINT64_MAX else str(value)

    def expect(self, prop: Property, value: Any, machine: Machine) -> list[tuple[str, str]]:
        return [("pids.max", "max" if value in (None, "infinity") else str(value))]


@dataclass(frozen=True, slots=True)
class Property:
    key: str  # the row's name: its [tiers.<tier>] key where admins set it
    directive: str  # unit-file directive, as systemd.resource-control(5) names it
    dbus: str  # D-Bus property name, as read back and (without a percentage) written
    signature: str  # its D-Bus type
    default: Any  # what "systemd's default" is over D-Bus: an unset key sends it
    kind: Kind
    controller: str | None = None  # the cgroup controller it needs
    cgroup_file: str | None = None  # the file that shows its effect
    scale: str | None = None  # D-Bus name for a percentage of RAM
    configurable: bool = True  # False: derived by taucg (ManagedOOMPreference)
    extra_files: tuple[str, ...] = ()  # other files its values may be checked in

    def to_dbus(self, value: Any) -> tuple[str, Any]:
        return self.kind.dbus(self, value)

    def show(self, dbus_name: str, value: Any) -> str:
        return self.kind.show(self, dbus_name, value)

    def same(self, dbus_name: str, want: Any, have: Any, machine: Machine) -> bool:
        return self.kind.same(self, dbus_name, want, have, machine)

    def expect(self, value: Any, machine: Machine) -> list[tuple[str, str]]:
        return self.kind.expect(self, value, machine)

    def matches(self, file: str, expected: str, actual: str, value: Any,
                machine: Machine) -> bool:
        return self.kind.matches(self, file, expected, actual, value, machine)

    @property
    def files(self) -> tuple[str, ...]:
        return ((self.cgroup_file,) if self.cgroup_file else ()) + self.extra_files


_WEIGHT, _QUOTA, _MEMORY, _CPUS, _TASKS, _PLAIN = (Weight(), Quota(), Memory(), Cpus(), Tasks(),
                                                   Kind())

# In unit-file order: directives are written in this order.
TABLE: tuple[Property, ...] = (
    Property("cpu_weight", "CPUWeight", "CPUWeight", "t", UINT64_MAX, _WEIGHT, "cpu",
             "cpu.weight", extra_files=("cpu.idle",)),
    Property("startup_cpu_weight", "StartupCPUWeight", "StartupCPUWeight", "t", UINT64_MAX,
             _WEIGHT, "cpu"),
    Property("cpu_quota", "CPUQuota", "CPUQuotaPerSecUSec", "t", UINT64_MAX, _QUOTA, "cpu",
             "cpu.max"),
    Property("memory_min", "MemoryMin", "MemoryMin", "t", 0, _MEMORY, "memory", "memory.min",
             "MemoryMinScale"),
    Property("memory_low", "MemoryLow", "MemoryLow", "t", 0, _MEMORY, "memory", "memory.low",
             "MemoryLowScale"),
    Property("memory_high", "MemoryHigh", "MemoryHigh", "t", UINT64_MAX, _MEMORY, "memory",
             "memory.high", "MemoryHighScale"),
    Property("memory_max", "MemoryMax", "MemoryMax", "t", UINT64_MAX, _MEMORY, "memory",
             "memory.max", "MemoryMaxScale"),
    # No Scale: systemd before 253 takes no percentage for MemorySwapMax.
    Property("memory_swap_max", "MemorySwapMax", "MemorySwapMax", "t", UINT64_MAX, _MEMORY,
             "memory", "memory.swap.max"),
    Property("allowed_cpus", "AllowedCPUs", "AllowedCPUs", "ay", b"", _CPUS, "cpuset",
             "cpuset.cpus.effective"),
    Property("io_weight", "IOWeight", "IOWeight", "t", UINT64_MAX, _WEIGHT, "io", "io.weight"),
    Property("tasks_max", "TasksMax", "TasksMax", "t", UINT64_MAX, _TASKS, "pids", "pids.max"),
    Property("managed_oom_preference", "ManagedOOMPreference", "ManagedOOMPreference", "s",
             "none", _PLAIN, configurable=False),
)

BY_KEY: Mapping[str, Property] = {p.key: p for p in TABLE}
CONFIG_KEYS = tuple(p.key for p in TABLE if p.configurable)


def signatures() -> dict[str, str]:
    """D-Bus signature of every name in the table, Scale variants included."""
    out = {p.dbus: p.signature for p in TABLE}
    out.update({p.scale: "u" for p in TABLE if p.scale})
    return out


def effective_files() -> tuple[str, ...]:
    """Every cgroup file the table's properties show up in, once each."""
    return tuple(dict.fromkeys(f for p in TABLE for f in p.files))


def directives(values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(directive, text) for the set values, in table order."""
    for p in TABLE:
        value = values.get(p.key)
        if value is not None:
            yield p.directive, p.kind.directive(value)


def dbus_values(values: Mapping[str, Any], *, defaults: bool = False) -> dict[str, Any]:
    """SetUnitProperties/StartTransientUnit values for ``values`` (keys of the
    table). With defaults, every managed property is sent, unset ones as
    systemd's default, so that a key removed from the config really resets."""
    unknown = set(values) - set(BY_KEY)
    if unknown:
        raise KeyError(f"not in the property table: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for p in TABLE:
        value = values.get(p.key)
        if value is not None or defaults:
            name, v = p.to_dbus(value)
            out[name] = v
    return out


def property_for(dbus_name: str) -> Property:
    """The row a D-Bus name belongs to (a Scale name included)."""
    for p in TABLE:
        if dbus_name in (p.dbus, p.scale):
            return p
    raise KeyError(dbus_name)
