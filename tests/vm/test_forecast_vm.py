"""Forecasts (issue 17, section 4) against real systemd and cgroup v2: a
unit of the test's own in tau-low.slice, whose MemoryMax the test's config
sets, grows its memory at a rate the test picks. The daemon's forecast of
the time until tau-low.slice reaches MemoryMax must be within 25% of the
true time: (MemoryMax - memory.current now) / the known rate, read at the
moment the forecast is read. The forecast shows in the socket API, `taucg
status`, the alerts (raised, and cleared once the growth stops) and the
metrics. A tmpfs of the test's own, filled at a known rate, is forecast
full within 25% the same way.

The test runs its own `taucg daemon` (a child it ends) on a private config:
samples every 2 s, a 60 s fitting window, a 5 min horizon."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import daemon_config, private_paths, write_config

from .helpers import CGROUP_ROOT, Units, stop_process, wait_for

MiB = 1 << 20
LIMIT = 480 * MiB  # the low tier's MemoryMax (its MemoryHigh, 60% of RAM, is higher)
RATE_MIB = 2  # what the grower adds each second
WINDOW = 60
METRICS = "127.0.0.1:19464"
LOW = CGROUP_ROOT / "tau.slice" / "tau-low.slice"

# Allocates and touches RATE MiB per second of its own clock, catching up
# after a stall, so its growth stays on the schedule however slow the VM.
GROWER = """
import signal, sys, time
rate = int(sys.argv[1]) << 20
chunks, t0 = [], time.monotonic()
while True:
    due = int(rate * (time.monotonic() - t0)) >> 20
    while len(chunks) < due:
        chunks.append(b"\\x01" * (1 << 20))
    time.sleep(0.05)
"""

SECTIONS: dict[str, Any] = {
    "resource_monitoring": {"interval_seconds": 2, "min_interval_seconds": 1,
                            "temperature_monitoring": False},
    "health_checking": {"enabled": False},
    "crash_recovery": {"auto_recovery": False},
    "governor": {"enabled": False},
    "forecast": {"window_seconds": WINDOW, "min_points": 10, "min_quality": 0.6,
                 "horizon_minutes": 5.0, "hysteresis_percent": 20.0},
    "tiers": {"low": {"memory_max": f"{LIMIT // MiB}M"}},
    "daemon": {"metrics_address": METRICS},
}


class Daemon:
    """`taucg daemon` as a child of the test, its stderr in a file."""

    def __init__(self, cfg: Path, root: Path) -> None:
        self.socket = root / "taucg.sock"
        self.log = root / "daemon.stderr"
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(taucg_argv("daemon", config=cfg),
                                         stdout=subprocess.DEVNULL, stderr=err)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def ask(self, method: str, **params: Any) -> Any:
        if self.proc.poll() is not None:
            pytest.fail(f"the daemon exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            return call(self.socket, method, params, timeout=60)
        except (DaemonNotRunning, DaemonError, OSError):
            return None


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Path, Daemon]]:
    """The tiers applied with the low tier's MemoryMax, and a daemon on them;
    the built-in tiers applied again after."""
    cfg = daemon_config(tmp_path, **SECTIONS)
    taucg("apply", config=cfg)
    assert int((LOW / "memory.max").read_text()) == LIMIT
    d = Daemon(cfg, tmp_path)
    try:
        wait_for(lambda: (d.ask("status") or {}).get("sweeps", 0) >= 2, 240,
                 "the daemon's first sweeps")
        yield cfg, d
    finally:
        if not stop_process(d.proc):
            print("the daemon had to be killed")
        print(f"--- daemon log (tail) ---\n{d.tail(60)}")
        taucg("apply", config=write_config(tmp_path / "builtin.toml",
                                           **private_paths(tmp_path)))


def low_forecast(d: Daemon) -> dict[str, Any] | None:
    answer = d.ask("forecasts") or {}
    for fc in answer.get("forecasts", []):
        if fc["resource"] == "memory" and fc["subject"] == "tau-low.slice":
            return dict(fc)
    return None


def metrics() -> str:
    try:
        with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=30) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def test_a_growing_tier_is_forecast_within_25_percent(
        rig: tuple[Path, Daemon], systemd: BlockingSystemd, units: Units,
        report: Callable[[str], None]) -> None:
    cfg, d = rig
    grower = units.name("grower")
    systemd.start_transient(grower, {
        "Description": "taucg forecast test: grows its memory at a known rate",
        "Slice": "tau-low.slice",
        "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", GROWER, str(RATE_MIB)],
                       False)],
        "MemorySwapMax": 0,
    })
    started = time.monotonic()
    # Once the window holds growth only, the fit sees the true rate.
    wait_for(lambda: time.monotonic() - started > WINDOW + 10 and low_forecast(d), 300,
             "a forecast for tau-low.slice over a window of growth")
    fc = low_forecast(d)
    now = time.time()
    current = int((LOW / "memory.current").read_text())
    assert fc is not None
    true_seconds = (LIMIT - current) / (RATE_MIB * MiB)
    forecast_seconds = fc["reaches_at"] - now
    report(f"forecast: {fc['message']}; fit {fc['quality']:.2f} over {fc['points']} points; "
           f"{forecast_seconds:.1f} s to MemoryMax forecast, {true_seconds:.1f} s true "
           f"(ratio {forecast_seconds / true_seconds:.3f}); rate "
           f"{fc['bytes_per_second'] / MiB:.2f} MiB/s fitted, {RATE_MIB} MiB/s known")
    assert true_seconds > 20, f"the tier is nearly full already ({current} bytes): too late"
    assert abs(forecast_seconds - true_seconds) <= 0.25 * true_seconds, (fc, true_seconds)
    assert fc["limit"] == "MemoryMax" and fc["limit_bytes"] == LIMIT and fc["tier"] == "low"
    assert re.fullmatch(r"tau-low\.slice reaches MemoryMax in ~\d+ (s|min) at "
                        r"\+\d+ MiB/min", fc["message"]), fc["message"]

    # The alert: under the 5 min horizon, so raised, with the same words.
    key = "forecast memory tau-low.slice"

    def raised() -> list[dict[str, Any]]:
        recent = (d.ask("alerts", count=200) or {}).get("recent", [])
        return [a for a in recent if a["metric"] == key and a["state"] == "raised"]

    [alert, *_] = wait_for(raised, 60, "a raised forecast alert for tau-low.slice")
    assert alert["message"].startswith("tau-low.slice reaches MemoryMax in ~"), alert
    assert alert["threshold"] == 300.0 and 0 <= alert["value"] <= 300.0, alert
    shown = json.loads(taucg("alerts", "--format", "json", config=cfg).stdout)
    assert key in shown["active"], shown["active"]

    # `taucg status` and the metrics show it while it holds.
    status = json.loads(taucg("status", "--format", "json", "--interval", "0.2",
                              config=cfg).stdout)
    items = [f for f in status["forecasts"] or [] if f["subject"] == "tau-low.slice"]
    assert items and items[0]["limit"] == "MemoryMax", status["forecasts"]
    assert items[0]["time_to_limit_seconds"] > 0
    table = taucg("status", "--format", "table", "--interval", "0.2", config=cfg).stdout
    assert "forecast: tau-low.slice reaches MemoryMax in ~" in table, table
    body = wait_for(lambda: (m := metrics()) and "taucg_forecast_seconds_to_limit{" in m and m,
                    60, "the forecast in the metrics")
    line = [ln for ln in body.splitlines() if ln.startswith("taucg_forecast_seconds_to_limit{")
            and 'subject="tau-low.slice"' in ln]
    assert line and 'resource="memory"' in line[0] and 'limit="MemoryMax"' in line[0], line
    assert 'tier="low"' in line[0], line

    # The growth stops (the unit ends): the alert clears, with hysteresis,
    # once the window no longer shows growth toward the limit.
    systemd.stop(grower)

    def cleared() -> list[dict[str, Any]]:
        recent = (d.ask("alerts", count=200) or {}).get("recent", [])
        return [a for a in recent if a["metric"] == key and a["state"] == "cleared"]

    [gone, *_] = wait_for(cleared, WINDOW * 4, "the forecast alert to clear")
    assert "no longer reaches MemoryMax" in gone["message"], gone
    assert key not in (d.ask("alerts") or {}).get("active", [key])


# Appends RATE MiB per second of its own clock to a file, catching up after a stall.
WRITER = """
import sys, time
rate, path = int(sys.argv[1]) << 20, sys.argv[2]
chunk, t0, done = b"\\x02" * (1 << 20), time.monotonic(), 0
with open(path, "ab", buffering=0) as f:
    while True:
        due = int(rate * (time.monotonic() - t0)) >> 20
        while done < due:
            f.write(chunk)
            done += 1
        time.sleep(0.05)
"""


def test_a_filling_filesystem_is_forecast_within_25_percent(
        rig: tuple[Path, Daemon], tmp_path: Path, report: Callable[[str], None]) -> None:
    _cfg, d = rig
    mount = Path("/run/taucg-forecast-test")  # a tmpfs of the test's own, in the VM
    size = 400 * MiB
    mount.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    writer = None
    try:
        writer = subprocess.Popen([sys.executable, "-S", "-c", WRITER, "2",
                                   str(mount / "fill")])
        started = time.monotonic()

        def found() -> dict[str, Any] | None:
            for fc in (d.ask("forecasts") or {}).get("forecasts", []):
                if fc["resource"] == "filesystem" and fc["subject"] == str(mount):
                    return dict(fc)
            return None

        wait_for(lambda: time.monotonic() - started > WINDOW + 10 and found(), 300,
                 f"a forecast for {mount} over a window of filling")
        fc = found()
        now = time.time()
        st = os.statvfs(mount)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        usable = used + st.f_bavail * st.f_frsize
        assert fc is not None
        true_seconds = (usable - used) / (2 * MiB)
        forecast_seconds = fc["reaches_at"] - now
        report(f"forecast: {fc['message']}; {forecast_seconds:.1f} s to full forecast, "
               f"{true_seconds:.1f} s true (ratio {forecast_seconds / true_seconds:.3f})")
        assert true_seconds > 20, f"{mount} is nearly full already: too late"
        assert abs(forecast_seconds - true_seconds) <= 0.25 * true_seconds, (fc, true_seconds)
        assert fc["limit"] == "size" and fc["limit_bytes"] == usable and fc["tier"] is None
        assert fc["message"].startswith(f"filesystem {mount} is full in ~"), fc["message"]
    finally:
        stop_process(writer)
        subprocess.run(["umount", str(mount)], check=False)
