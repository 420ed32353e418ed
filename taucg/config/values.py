"""Value types shared by the config, the tier mapping and the cgroup readers:
memory sizes in systemd's notation and CPU lists such as "0-3,6".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INFINITY = "infinity"

# systemd.resource-control(5) reads K, M, G, T, P and E as powers of 1024.
_SIZE_UNITS = {
    "": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTPE]?)B?\s*$", re.IGNORECASE)
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_MAX_BYTES = (1 << 64) - 1

SIZE_FORMS = (
    'a byte count (e.g. 536870912), a size with K/M/G/T suffix (e.g. "512M"), '
    'a percentage of RAM (e.g. "40%") or "infinity"'
)


@dataclass(frozen=True, slots=True)
class Size:
    """A memory amount as systemd takes it: bytes, a percentage of physical
    memory, or infinity (both fields None)."""

    bytes: int | None = None
    percent: float | None = None

    @property
    def is_infinity(self) -> bool:
        return self.bytes is None and self.percent is None

    def resolve(self, total_memory: int) -> int | None:
        """Bytes on a machine with ``total_memory`` bytes of RAM; None is infinity.

        systemd rounds a percentage down to a whole page; so do we, so that
        the value read back from memory.max compares equal."""
        if self.bytes is not None:
            return self.bytes
        if self.percent is not None:
            page = 4096
            return int(total_memory * self.percent / 100) // page * page
        return None

    def __str__(self) -> str:
        if self.bytes is not None:
            return format_bytes(self.bytes)
        if self.percent is not None:
            return f"{self.percent:g}%"
        return INFINITY


def format_bytes(n: int) -> str:
    """The shortest exact form in systemd's notation: 536870912 -> "512M"."""
    for suffix in ("E", "P", "T", "G", "M", "K"):
        unit = _SIZE_UNITS[suffix]
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def human_bytes(n: float) -> str:
    """Approximate, for display only: 1536 -> "1.5K"."""
    for suffix in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or suffix == "P":
            return f"{n:.0f}{suffix}" if suffix == "" else f"{n:.1f}{suffix}"
        n /= 1024
    return f"{n:.1f}E"


def parse_size(value: object) -> Size:
    """Parses a config size. Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SIZE_FORMS}, got a boolean")
    if isinstance(value, int):
        if value < 0 or value > _MAX_BYTES:
            raise ValueError(f"a size must be between 0 and 2^64-1 bytes, got {value}")
        return Size(bytes=value)
    if not isinstance(value, str):
        raise ValueError(f"expected {SIZE_FORMS}, got {type(value).__name__}")
    text = value.strip()
    if text.lower() in (INFINITY, "max"):
        return Size()
    m = _PERCENT_RE.match(text)
    if m:
        pct = float(m.group(1))
        if not 0 < pct <= 100:
            raise ValueError(f"a percentage of RAM must be above 0 and at most 100, got {text!r}")
        return Size(percent=pct)
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {value!r} as a size; expected {SIZE_FORMS}")
    n = int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    if n > _MAX_BYTES:
        raise ValueError(f"{value!r} is larger than 2^64-1 bytes")
    return Size(bytes=n)


@dataclass(frozen=True, slots=True)
class CpuSet:
    """A set of CPU numbers, printed in the kernel's list form ("0-3,6")."""

    cpus: frozenset[int]

    def __str__(self) -> str:
        return format_cpus(self.cpus)

    def __contains__(self, cpu: object) -> bool:
        return cpu in self.cpus

    def __len__(self) -> int:
        return len(self.cpus)


# The kernel's NR_CPUS ceiling on distribution kernels is 8192.
MAX_CPU = 8191


def parse_cpus(text: object, *, allow_empty: bool = False) -> CpuSet:
    """Parses a list like "0-3,6" (the format of cpuset.cpus and AllowedCPUs)."""
    if not isinstance(text, str):
        raise ValueError(f'expected a CPU list string such as "0-3,6", got {type(text).__name__}')
    body = text.strip()
    if not body:
        if allow_empty:
            return CpuSet(frozenset())
        raise ValueError('a CPU list must name at least one CPU, e.g. "0-3,6"')
    cpus: set[int] = set()
    for part in body.replace(" ", ",").split(","):
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        if not lo_s.isdigit() or (sep and not hi_s.isdigit()):
            raise ValueError(
                f'cannot read {part!r} in CPU list {text!r}; use numbers and ranges like "0-3,6"'
            )
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if hi < lo:
            raise ValueError(f"range {part!r} in CPU list {text!r} runs backwards; write {hi}-{lo}")
        if hi > MAX_CPU:
            raise ValueError(f"CPU {hi} in {text!r} is beyond the kernel's limit of {MAX_CPU}")
        cpus.update(range(lo, hi + 1))
    return CpuSet(frozenset(cpus))


def format_cpus(cpus: frozenset[int] | set[int]) -> str:
    out: list[str] = []
    run_start: int | None = None
    prev = -2
    for cpu in sorted(cpus):
        if cpu != prev + 1:
            if run_start is not None:
                out.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
            run_start = cpu
        prev = cpu
    if run_start is not None:
        out.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
    return ",".join(out)


UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".slice", ".scope", ".timer",
    ".mount", ".automount", ".swap", ".path", ".device",
)
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")


def unit_name(name: str) -> str:
    """A unit name with ".service" added when it has no unit suffix, so that
    "tau-session" and "tau-session.service" mean the same unit."""
    return name if name.endswith(UNIT_SUFFIXES) else f"{name}.service"


def check_unit_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("a unit name must be a non-empty string")
    if len(name) > 255 or not _UNIT_RE.match(name):
        raise ValueError(
            f"{name!r} is not a valid systemd unit name "
            "(letters, digits and ':_.\\@-' only, at most 255 characters)"
        )
    return unit_name(name)


def parse_address(text: str) -> tuple[str, int]:
    """ "HOST:PORT" or "[V6]:PORT" -> (host, port); the host is required so
    that serving on every interface is always a visible choice ("0.0.0.0")."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected "HOST:PORT" such as "127.0.0.1:9464", got {text!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether an address's host only reaches this machine: 127.0.0.0/8, ::1
    or "localhost". Any other name may resolve anywhere, so it is not."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
