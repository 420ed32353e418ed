"""Placement, per-process limits, admission and `taucg run` on real systemd."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import merged, write_config

from .helpers import CGROUP_ROOT, Units, wait_for

# Per-process limits for what the rule places, and a tier admission cap high
# enough for the burst test.
PROCS_CONFIG: dict[str, Any] = {
    "process_management": {"memory_limit_mb": 64, "cpu_limit_percent": 50.0,
                           "max_concurrent_processes": 300},
    "rules": [{"name": "prey", "comm": "taucg-prey*", "tier": "low"}],
}


def cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = write_config(tmp_path_factory.mktemp("procs") / "taucg.toml", **PROCS_CONFIG)
    taucg("apply", config=path)
    yield str(path)
    taucg("apply")


@pytest.fixture(scope="module")
def prey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of sleep whose comm the rule matches."""
    d = tmp_path_factory.mktemp("bin")
    exe = d / "taucg-prey"
    shutil.copy2("/bin/sleep", exe)
    return exe


@pytest.fixture
def follower(cfg: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    err = tmp_path / "classify.err"
    with err.open("w") as sink:
        p = subprocess.Popen(taucg_argv("classify", "--follow", "--format", "json", config=cfg),
                             stdout=subprocess.PIPE, stderr=sink, text=True)

    def following() -> bool:
        assert p.poll() is None, f"classify --follow exited: {err.read_text()}"
        return "following new processes" in err.read_text()

    try:
        wait_for(following, 180, "classify --follow to finish its first pass")
        yield p
    finally:
        p.terminate()
        p.wait(timeout=60)
        print(f"--- classify --follow stderr ---\n{err.read_text()}")


def in_scope(units: Units, argv: list[str]) -> subprocess.Popen[bytes]:
    """Starts argv in a transient scope of its own, as a login session would."""
    return subprocess.Popen(["systemd-run", "--quiet", "--scope", "--unit",
                             units.name("user", "scope"), *argv])


def test_rule_places_a_process_into_its_tier_scope(follower: subprocess.Popen[str],
                                                   units: Units, prey: Path,
                                                   report: Callable[[str], None]) -> None:
    p = in_scope(units, [str(prey), "300"])
    t0 = time.monotonic()
    try:
        wait_for(lambda: "/tau-low.slice/taucg-low-taucg-prey-" in cgroup_of(p.pid), 120,
                 "the prey to be placed")
        report(f"\nplacement seen by the test {time.monotonic() - t0:.2f} s after spawn (VM)")
        scope = CGROUP_ROOT / cgroup_of(p.pid).lstrip("/")
        assert scope.name == f"taucg-low-taucg-prey-{p.pid}.scope"
        assert (scope / "memory.max").read_text().strip() == str(64 << 20)
        assert (scope / "cpu.max").read_text().strip() == "50000 100000"

        def audited() -> list[dict[str, str]]:
            log = Path("/var/log/tau/audit.log")
            records = [json.loads(line) for line in log.read_text().splitlines()] \
                if log.exists() else []
            return [r for r in records if r["action"] == "place"
                    and r["target"] == f"{p.pid} (taucg-prey)"]

        # The process moves as systemd's start job runs; its priorities are set
        # after the job returns, and the audit record follows them.
        placed = wait_for(audited, 60, "the placement's audit record")
        assert placed[0]["after"] == f"{scope.name} in low"
        assert placed[0]["rule"] == "rule 1 (prey)"
        assert int(Path(f"/proc/{p.pid}/oom_score_adj").read_text()) == 300
        assert os.getpriority(os.PRIO_PROCESS, p.pid) == 10
    finally:
        p.kill()
        p.wait()


def test_per_process_memory_max_kills_a_hog(follower: subprocess.Popen[str], units: Units,
                                            tmp_path: Path) -> None:
    hog = tmp_path / "taucg-prey-hog"
    shutil.copy2(os.path.realpath(sys.executable), hog)
    # It allocates only once it is placed (its scope has MemoryMax=64M),
    # then holds the memory until the kernel or this test ends it.
    code = ("import signal, time\n"
            "while '/tau-low.slice/' not in open('/proc/self/cgroup').read():\n"
            "    time.sleep(0.1)\n"
            "x = b'x' * (200 << 20)\n"
            "while True:\n    signal.pause()\n")
    p = in_scope(units, [str(hog), "-S", "-c", code])
    try:
        wait_for(lambda: "/tau-low.slice/" in cgroup_of(p.pid), 180, "the hog to be placed")
        assert p.wait(timeout=240) != 0
        assert p.returncode in (-9, 137, 1), p.returncode
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_passes_exit_status_limits_and_namespaces(cfg: str) -> None:
    assert taucg("run", "--tier", "normal", "--", "/bin/sh", "-c", "exit 3",
                 config=cfg, check=False).returncode == 3
    r = taucg("run", "--tier", "low", "--isolate", "net,pid",
              "--memory", "256M", "--cpu", "25%", "--", "/bin/sh", "-c",
              "echo pid=$$; ls /sys/class/net; "
              "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max; "
              "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cpu.max", config=cfg)
    lines = r.stdout.split()
    assert len(lines) == 5, r.stdout
    assert lines[0] == "pid=1"
    assert lines[1] == "lo"
    assert lines[2] == str(256 << 20)  # memory.max of the run's scope
    assert lines[3:] == ["25000", "100000"]  # cpu.max: 25% of one CPU


def test_run_refuses_a_full_tier(cfg: str, systemd: BlockingSystemd, units: Units,
                                 tmp_path: Path) -> None:
    # cfg is requested for its apply: tau-low.slice must exist for the fillers.
    small = write_config(tmp_path / "small.toml", **merged(
        PROCS_CONFIG, {"process_management": {"max_concurrent_processes": 2}}))
    for _ in range(2):
        systemd.start_transient(units.name("filler"), {
            "Description": "taucg test: fills the low tier",
            "Slice": "tau-low.slice",
            "ExecStart": [("/bin/sleep", ["/bin/sleep", "600"], False)],
        })
    r = taucg("run", "--tier", "low", "--", "true", config=small, check=False)
    assert r.returncode == 1
    assert "tier low is full: 2 processes of max_concurrent_processes=2" in r.stderr


def test_burst_of_execs_is_placed(follower: subprocess.Popen[str], units: Units, prey: Path,
                                  report: Callable[[str], None]) -> None:
    n = 200
    t0 = time.monotonic()
    shell = in_scope(units, ["/bin/sh", "-c",
                             f"for i in $(seq {n}); do {prey} 3600 & done; wait"])

    def children() -> list[int]:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                if "(taucg-prey)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == shell.pid:
                    out.append(int(d.name))
        return out

    pids: list[int] = []
    try:
        def started() -> list[int] | None:
            found = children()
            return found if len(found) >= n else None

        # They live until this test ends them (3600 s), however slow the machine.
        pids = wait_for(started, 300, f"{n} processes to start")
        spawn_s = time.monotonic() - t0
        wait_for(lambda: all("/tau-low.slice/" in cgroup_of(pid) for pid in pids), 600,
                 f"all {n} processes to be placed")
        assert follower.poll() is None
    finally:
        # The test's own processes, by PID, before their shell: once it is gone
        # they are init's children and children() would no longer find them.
        for pid in pids or children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shell.kill()
        shell.wait()
    follower.terminate()
    out, _ = follower.communicate(timeout=60)
    latencies = [e["latency_seconds"] * 1000 for e in map(json.loads, out.splitlines())
                 if e.get("placed") and "latency_seconds" in e]
    assert len(latencies) >= n
    q = statistics.quantiles(latencies, n=100)
    report(f"\nBENCH {n} execs spawned in {spawn_s:.2f} s ({n / spawn_s:.0f}/s); "
           f"exec -> placed latency p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms (VM, emulated)")


def test_rule_pins_a_service_process_that_stays_in_its_unit(
        systemd: BlockingSystemd, units: Units, tmp_path: Path) -> None:
    exe = tmp_path / "taucg-pin"
    shutil.copy2("/bin/sleep", exe)
    conf = tmp_path / "pin.toml"
    conf.write_text('[[rules]]\ncomm = "taucg-pin"\ntier = "high"\nallowed_cpus = "1"\n')
    svc = units.name("pinned")
    systemd.start_transient(svc, {"Description": "taucg test: pinned service",
                                  "ExecStart": [(str(exe), [str(exe), "600"], False)]})
    pid = systemd.get_property(svc, "MainPID", "org.freedesktop.systemd1.Service")
    r = taucg("classify", config=conf)
    assert f"pinned (stays in its service) {pid} (taucg-pin) in high" in r.stdout
    assert sorted(os.sched_getaffinity(pid)) == [1]
    assert cgroup_of(pid).endswith(f"/{svc}")  # not moved out of its service
    why = taucg("processes", "--why", str(pid), config=conf).stdout
    assert "rule 1 matched" in why
    assert "a service stays in its unit" in why
