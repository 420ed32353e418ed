"""Health checks on this machine, through the real commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from taucg.config.loading import loads
from taucg.model.health import check_memory
from taucg.readers.sampler import Sampler
from tests.support.cli import taucg


def test_memory_check_agrees_with_psutil() -> None:
    result = check_memory(Sampler().system(), 85.0)
    ours = float(result.value.rstrip("%"))
    theirs = 100.0 * (psutil.virtual_memory().total - psutil.virtual_memory().available) \
        / psutil.virtual_memory().total
    assert abs(ours - theirs) < 2.0


def test_health_json_names_every_configured_check() -> None:
    r = taucg("health", "--format", "json", check=False, timeout=120)
    assert r.returncode in (0, 1), r.stderr
    data = json.loads(r.stdout)
    names = [c["name"] for c in data["checks"]]
    assert names == ["cpu_usage", "memory_usage", "disk_usage", "network_connectivity",
                     "services"]
    assert 0.0 <= data["score"] <= 1.0
    assert data["healthy"] == (r.returncode == 0)


def test_unhealthy_exits_1_with_a_recommendation_naming_the_metric(tmp_path: Path) -> None:
    cfg = tmp_path / "strict.toml"
    cfg.write_text("[resource_monitoring]\nmemory_threshold_percent = 0.0\n"
                   "[health_checking]\nhealth_score_threshold = 1.0\n"
                   'system_health_checks = ["memory_usage"]\nservice_health_checks = []\n')
    assert loads(cfg.read_text()).health_checking.health_score_threshold == 1.0
    r = taucg("health", config=cfg, check=False, timeout=120)
    assert r.returncode == 1
    assert "recommendation: memory_usage at" in r.stdout
    assert "is above 0%" in r.stdout
    check = subprocess.run([sys.executable, "-c",
                            "from taucg.faces.cli.main import tau_monitor_main; tau_monitor_main()",
                            "--check", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 1
    assert "unhealthy" in check.stdout


def test_link_states_and_default_route_agree_with_rtnetlink() -> None:
    """The health check reads psutil and /proc/net; pyroute2 (rtnetlink) is
    the independent witness: a link is up when it has a carrier (IFF_RUNNING)."""
    from pyroute2 import IPRoute

    from taucg.readers.sysinfo import default_route_present, link_states

    iff_running = 0x40
    with IPRoute() as ipr:
        links = {str(lk.get_attr("IFLA_IFNAME")): "up" if lk["flags"] & iff_running else "down"
                 for lk in ipr.get_links()}
        routed = any(r.get_attr("RTA_OIF") or r.get_attr("RTA_GATEWAY")
                     for family in (2, 10) for r in ipr.get_default_routes(family=family))
    assert link_states() == links
    assert default_route_present() == routed


def test_filesystems_agree_with_statvfs_and_the_mount_table() -> None:
    import os

    from taucg.readers.sysinfo import filesystems

    found = {f.mountpoint: f for f in filesystems()}
    mounts = {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()}
    assert "/" in found and set(found) <= mounts
    for fs in found.values():
        assert fs.fstype not in ("proc", "sysfs", "cgroup2", "devpts"), fs
    st = os.statvfs("/")
    root = found["/"]
    assert root.total == st.f_blocks * st.f_frsize
    # Used and available move with every write on /: compare loosely.
    assert abs(root.used - (st.f_blocks - st.f_bfree) * st.f_frsize) < 1 << 30
    assert abs(root.available - st.f_bavail * st.f_frsize) < 1 << 30


def test_temperatures_are_the_hwmon_inputs() -> None:
    from taucg.readers.sysinfo import temperatures

    hwmon = Path("/sys/class/hwmon")
    inputs = [p for p in hwmon.glob("hwmon*/temp*_input")
              if p.read_text().strip().lstrip("-").isdigit()] if hwmon.is_dir() else []
    temps = temperatures()
    if inputs:
        assert len(temps) >= len(inputs)
        read = sorted(int(p.read_text()) / 1000 for p in inputs)
        assert all(min(abs(t.celsius - r) for t in temps) < 5 for r in read)
    else:
        # No hwmon sensor here: only thermal zones can appear.
        zones = list(Path("/sys/class/thermal").glob("thermal_zone*"))
        assert len(temps) <= len(zones)
