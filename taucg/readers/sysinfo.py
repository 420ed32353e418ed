"""Readers for what the C sampler does not cover because it is not on the
hot path: temperatures, filesystem usage and interface states (psutil),
network links with addresses (pyroute2) and the default route. Each
returns plain records; an absent source is an empty result, never zeros."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def temperatures() -> list[Temperature]:
    """psutil's sensors: every hwmon temperature input (thermal zones when
    there is no hwmon at all, as psutil reads them)."""
    import psutil

    out: list[Temperature] = []
    for chip, sensors in sorted(psutil.sensors_temperatures().items()):
        for i, s in enumerate(sensors, start=1):
            out.append(Temperature(f"{chip}/{i}", s.label or chip, float(s.current)))
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


def filesystems() -> list[FilesystemUsage]:
    """Every mounted filesystem that holds data (psutil's partitions with
    all=True, so tmpfs and overlay count, less the kernel's pseudo ones),
    once per mount point, with psutil's statvfs usage."""
    import psutil

    out: list[FilesystemUsage] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=True):
        mountpoint = part.mountpoint
        if part.fstype in _PSEUDO_FS or mountpoint in seen:
            continue
        if mountpoint.startswith(("/proc/", "/sys/")) or mountpoint in ("/proc", "/sys"):
            continue  # kernel interfaces, whatever their fstype
        try:
            usage = psutil.disk_usage(mountpoint)
        except OSError:
            continue  # gone, or not ours to look at
        if usage.total == 0:
            continue
        seen.add(mountpoint)
        out.append(FilesystemUsage(mountpoint, part.device, part.fstype, usage.total,
                                   usage.used, usage.free))
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


def link_states() -> dict[str, str]:
    """Interface -> "up" or "down" (psutil's net_if_stats: IFF_RUNNING, the
    carrier), what the health check needs, without rtnetlink (pyroute2
    alone costs the daemon about 11 MiB of RSS)."""
    import psutil

    return {name: "up" if st.isup else "down"
            for name, st in sorted(psutil.net_if_stats().items())}


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
