"""Readers for what the C sampler does not cover because it is not on the
hot path: temperatures (thermal zones and hwmon), filesystem usage, and
network links (through pyroute2). Each returns plain records; an absent
source is an empty result, never zeros."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys")

# Filesystems that hold no user data; their "usage" means nothing to an admin.
_PSEUDO_FS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
    "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs",
    "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "ramfs", "selinuxfs", "squashfs",
    "iso9660", "fuse.lxcfs",
}


@dataclass(frozen=True, slots=True)
class Temperature:
    source: str  # "thermal_zone0" or "hwmon1/temp2"
    label: str  # zone type or sensor label
    celsius: float


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def temperatures(sysfs: Path = SYSFS) -> list[Temperature]:
    out: list[Temperature] = []
    for zone in sorted((sysfs / "class" / "thermal").glob("thermal_zone*")):
        raw = _read(zone / "temp")
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        out.append(Temperature(zone.name, _read(zone / "type") or zone.name, int(raw) / 1000))
    for hw in sorted((sysfs / "class" / "hwmon").glob("hwmon*")):
        name = _read(hw / "name") or hw.name
        for sensor in sorted(hw.glob("temp*_input")):
            raw = _read(sensor)
            if raw is None or not raw.lstrip("-").isdigit():
                continue
            stem = sensor.name.removesuffix("_input")
            label = _read(hw / f"{stem}_label") or f"{name} {stem}"
            out.append(Temperature(f"{hw.name}/{stem}", label, int(raw) / 1000))
    return out


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    mountpoint: str
    device: str
    fstype: str
    total: int
    used: int
    available: int  # to unprivileged users

    @property
    def percent(self) -> float:
        # As df(1): used against what non-root users can get.
        usable = self.used + self.available
        return 100.0 * self.used / usable if usable else 0.0


def _unescape_mount(field: str) -> str:
    # /proc/self/mounts writes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def filesystems(mounts: Path = Path("/proc/self/mounts")) -> list[FilesystemUsage]:
    out: list[FilesystemUsage] = []
    seen: set[str] = set()
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mountpoint = _unescape_mount(fields[0]), _unescape_mount(fields[1])
        fstype = fields[2]
        if fstype in _PSEUDO_FS or mountpoint in seen:
            continue
        if mountpoint.startswith(("/proc/", "/sys/")) or mountpoint in ("/proc", "/sys"):
            continue  # kernel interfaces, whatever their fstype
        try:
            st = os.statvfs(mountpoint)
        except OSError:
            continue  # gone, or not ours to look at
        if st.f_blocks == 0:
            continue
        seen.add(mountpoint)
        total = st.f_blocks * st.f_frsize
        free = st.f_bfree * st.f_frsize
        out.append(FilesystemUsage(mountpoint, device, fstype, total, total - free,
                                   st.f_bavail * st.f_frsize))
    return out


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    state: str  # operstate: UP, DOWN, UNKNOWN (loopback), ...
    mtu: int
    addresses: tuple[str, ...]


def links() -> list[Link]:
    """Network links and their addresses, over rtnetlink (pyroute2)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr():
            addrs.setdefault(a["index"], []).append(
                f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        out = []
        for link in ipr.get_links():
            out.append(Link(
                index=link["index"],
                name=str(link.get_attr("IFLA_IFNAME")),
                state=str(link.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
                mtu=int(link.get_attr("IFLA_MTU") or 0),
                addresses=tuple(addrs.get(link["index"], [])),
            ))
    return out


def link_states(sysfs: Path = SYSFS) -> dict[str, str]:
    """Interface -> operstate ("up", "down", "unknown"), from sysfs: what the
    health check needs, without rtnetlink (pyroute2 alone costs the daemon
    about 11 MiB of RSS)."""
    out = {}
    for dev in sorted((sysfs / "class" / "net").glob("*")):
        state = _read(dev / "operstate")
        if state is not None:
            out[dev.name] = state
    return out


RTF_REJECT = 0x0200  # an unreachable or prohibit route is no way out


def default_route_present(proc: Path = Path("/proc")) -> bool:
    """A usable IPv4 or IPv6 default route, from /proc/net/route and
    /proc/net/ipv6_route (this process's network namespace)."""
    v4 = _read(proc / "net" / "route") or ""
    for line in v4.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000" \
                and not int(f[3], 16) & RTF_REJECT:
            return True
    v6 = _read(proc / "net" / "ipv6_route") or ""
    for line in v6.splitlines():
        f = line.split()
        if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo" \
                and not int(f[8], 16) & RTF_REJECT:
            return True
    return False
