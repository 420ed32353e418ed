"""Issue 13's benchmark, in one VM boot: a Critical workload under a real
stress-ng hog, with no tiers, with the static tiers, with the static tiers
and systemd-oomd, and with the governor.

Critical is a fixed unit of work repeated by one process per CPU: touch a
16 MiB working set page by page, map, touch and unmap 4 MiB of fresh memory,
hash 256 KiB. Each process writes how many units it has done, with the
monotonic time, every half second.

Each scenario: Critical starts and is frozen (FreezeUnit); the hog starts
(stress-ng `--cpu 4`, or `--vm 2 --vm-keep` sized to all but 24 MiB of what
the machine has left with Critical resident, and waited for until it holds it: under
emulation a memory hog is CPU-bound, and CPUWeight alone would keep it from
ever filling the machine while Critical runs); the hog runs alone for a
window (Critical idle); Critical is thawed and both run for the load window.
Over that window: Critical's units per second against its idle rate, its
unit's cpu.pressure and memory.pressure "some" seconds, OOM kills (the
kernel's, memory.events, systemd-oomd's journal), and the hog's throughput
as the user CPU seconds per second of its cgroup (cpu.stat).

Nothing here asserts a time or a goal: the machine is shared and emulated.
The test asserts that each run happened and produced numbers, and prints
one table, with the issue's goals marked met or not met."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.systemd_dbus import SERVICE, SystemdError
from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import merged, private_paths, write_config

from .helpers import CGROUP_ROOT, Units, cgroup_dir, stop_process, unit_state, wait_for

STRESS = shutil.which("stress-ng") or "/usr/bin/stress-ng"
OOMD_BIN = Path("/lib/systemd/systemd-oomd")
OOMD_DROPIN = Path("/etc/systemd/oomd.conf.d/50-taucg-bench.conf")
TAU = CGROUP_ROOT / "tau.slice"
WORKERS = max(2, os.cpu_count() or 2)  # Critical wants every CPU
IDLE_S = 15.0  # Critical alone
ALONE_S = 10.0  # the hog alone (Critical frozen)
LOAD_S = 20.0  # Critical under the hog
FILL_S = 120.0  # at most this long for the memory hog to take what it asked for
# The memory hog leaves this much of MemAvailable (measured with Critical
# resident): the VM has no swap, so the squeeze is on the page cache. Seen
# on 2026-12-01: the hog held 3.5 of 3.9 GiB and Critical still stalled 0.0 s
# on memory (its working set is resident; the page cache it needs fits).
MEM_HEADROOM = 24 << 20
# The governor's targets: the defaults are 10 and 5; a little lower, so a
# static-tiers stall near the default line is still acted on.
CPU_TARGET, MEM_TARGET = 8.0, 4.0
GOVERNED_FILES = ("cpu.weight", "cpu.max", "cpuset.cpus.effective", "memory.high", "io.weight")
GOAL_RATE, GOAL_STALL, GOAL_HOG = 0.9, 0.2, 0.5

CRITICAL = """
import hashlib, mmap, os, sys, time
out, workers = sys.argv[1], int(sys.argv[2])
PAGE = 4096
WS, FRESH = 16 << 20, 4 << 20
me = 0
for i in range(1, workers):
    if os.fork() == 0:
        me = i
        break
ws = bytearray(WS)
block = os.urandom(256 << 10)
marks = [bytes([v]) * (WS // PAGE) for v in (1, 2)]
fresh = b"\\x03" * (FRESH // PAGE)
log = open(f"{out}.{me}", "w", buffering=1)
done, last = 0, 0.0
while True:
    ws[done % PAGE::PAGE] = marks[done & 1]
    m = mmap.mmap(-1, FRESH)
    m[::PAGE] = fresh
    m.close()
    hashlib.sha256(block).digest()
    done += 1
    now = time.monotonic()
    if now - last >= 0.5:
        log.write(f"{now:.3f} {done}\\n")
        last = now
"""


# ------------------------------------------------------------ readings ---


def some_total(path: Path) -> float:
    """The "some" stall total of a PSI file, seconds."""
    for line in path.read_text().splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1]) / 1e6
    raise AssertionError(f"no 'some' line in {path}")


def some_seconds(cg: Path, resource: str) -> float:
    """The cgroup's cpu.pressure or memory.pressure "some" total, seconds."""
    return some_total(cg / f"{resource}.pressure")


def system_some(resource: str) -> float | None:
    """The machine's /proc/pressure/<resource> "some" total, seconds."""
    try:
        return some_total(Path("/proc/pressure") / resource)
    except (OSError, AssertionError):
        return None


def event_count(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except OSError:
        pass
    return 0


def kernel_oom_kills() -> int:
    return event_count(Path("/proc/vmstat"), "oom_kill")


def user_seconds(cg: Path) -> float | None:
    """The cgroup's user CPU seconds (cpu.stat), None once it is gone."""
    n = event_count(cg / "cpu.stat", "user_usec")
    return n / 1e6 if (cg / "cpu.stat").exists() else None


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_summary() -> str:
    keys = ("MemTotal", "MemAvailable", "MemFree", "Cached", "Shmem", "AnonPages",
            "AnonHugePages", "Slab")
    return ", ".join(f"{k} {meminfo(k) >> 20}" for k in keys) + " (MiB)"


def read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "-"


def normal_files() -> dict[str, str]:
    return {f: read_text(TAU / "tau-normal.slice" / f) for f in GOVERNED_FILES}


def samples_of(path: Path) -> list[tuple[float, int]]:
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            t, n = line.split()
            out.append((float(t), int(n)))
    return out


def progress_at(samples: list[tuple[float, int]], t: float) -> float:
    """Units done at time t, from one worker's (time, units) samples."""
    if not samples or t <= samples[0][0]:
        return float(samples[0][1]) if samples else 0.0
    for (ta, ua), (tb, ub) in itertools.pairwise(samples):
        if ta <= t <= tb:
            return ua + (ub - ua) * (t - ta) / max(tb - ta, 1e-9)
    return float(samples[-1][1])  # stalled past its last sample: a lower bound


def oomd_kill_lines() -> int:
    r = subprocess.run(["journalctl", "-b", "-u", "systemd-oomd.service", "-o", "cat",
                        "--no-pager"], capture_output=True, text=True, check=False)
    return sum(1 for line in r.stdout.splitlines() if line.startswith("Killed "))


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def fmt(value: float | None, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


# --------------------------------------------------------------- runs ---


@dataclass
class Run:
    hog: str  # cpu, memory, or "" for an idle run
    mode: str  # idle, none, static, oomd, governor
    rate: float | None = None  # Critical's units/s over the window
    cpu_stall: float | None = None
    mem_stall: float | None = None
    kernel_oom: int = 0
    crit_oom: int = 0
    oomd_kills: int = 0
    hog_alone: float | None = None  # the hog's user CPU s/s, Critical frozen
    hog_load: float | None = None  # the same, beside Critical
    hog_end: str = "-"  # "ran" through both windows, else how it ended
    notes: list[str] = field(default_factory=list)

    @property
    def killed(self) -> int:
        """Kills seen: the kernel's (any cgroup) and systemd-oomd's; a hog that
        ended early without either counts as one."""
        n = self.kernel_oom + self.oomd_kills
        return n if n or self.hog_end in ("-", "ran") else 1


class Daemon:
    """`taucg daemon` as the test's child, in a scope under tau-critical.slice
    (where units/taucg.service runs it); its log in a file."""

    def __init__(self, root: Path, units: Units) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.socket = root / "taucg.sock"
        self.log = root / "daemon.stderr"
        self.scope = units.name("governor", "scope")
        self.cfg = write_config(root / "taucg.toml", **merged(private_paths(root), {
            "process_management": {"resource_pooling": False},
            # Less emulated CPU spent by the daemon on what this is not about.
            "health_checking": {"enabled": False},
            "crash_recovery": {"auto_recovery": False},
            "daemon": {"socket_group": "root"},
            "governor": {"enabled": True, "cpu_pressure_percent": CPU_TARGET,
                         "memory_pressure_percent": MEM_TARGET},
        }))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["systemd-run", "--quiet", "--scope", f"--unit={self.scope}",
                "--slice=tau-critical.slice", *taucg_argv("daemon", config=self.cfg)]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def view(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the daemon exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            v = call(self.socket, "governor", {"count": 200}, timeout=60)
        except (DaemonNotRunning, DaemonError, OSError):
            return None
        return v if isinstance(v, dict) and v.get("running") else None

    def actions(self) -> dict[str, int]:
        return dict((self.view() or {}).get("actions_total", {}))

    def wait_ready(self) -> None:
        wait_for(self.view, 300, "the daemon's governor to run")

    def reload(self) -> None:
        """SIGHUP: the workers stop (the governor gives everything back) and
        start again on a fresh governor."""
        assert self.proc is not None
        before = call(self.socket, "ping", timeout=60)["generation"]
        os.kill(self.proc.pid, signal.SIGHUP)  # the daemon this test started
        wait_for(lambda: call(self.socket, "ping", timeout=60)["generation"] != before, 120,
                 "the daemon to reload")
        self.wait_ready()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self.proc)


class Bench:
    def __init__(self, systemd: BlockingSystemd, units: Units, root: Path) -> None:
        self.systemd = systemd
        self.units = units
        self.root = root
        self.runs: list[Run] = []
        self.notes: list[str] = []
        self.daemon: Daemon | None = None
        self.oomd_state = "not tried"
        self.oomd_active = False

    # --- units ---

    def _service(self, label: str, slice_name: str, argv: list[str]) -> str:
        name = self.units.name(label)
        self.systemd.start_transient(name, {
            "Description": f"taucg governor bench: {label}",
            "Slice": slice_name,
            "WorkingDirectory": str(self.root),
            "ExecStart": [(argv[0], argv, False)],
            "KillSignal": signal.SIGKILL.value,  # ends at once, frozen or not
        })
        return name

    def _end(self, name: str) -> None:
        for action in (self.systemd.thaw, self.systemd.stop, self.systemd.reset_failed):
            with contextlib.suppress(SystemdError):
                action(name)

    def _alive(self, unit: str) -> bool:
        try:
            return unit_state(self.systemd, unit) == "active"
        except SystemdError:
            return False

    def critical(self, slice_name: str) -> tuple[str, Path, Path]:
        out = self.root / f"crit-{len(self.runs)}"
        unit = self._service("critical", slice_name,
                             [sys.executable, "-S", "-c", CRITICAL, str(out), str(WORKERS)])
        self.progress_after(out, 0.0)
        return unit, out, cgroup_dir(self.systemd, unit)

    @staticmethod
    def progress_after(out: Path, t: float, count: int = 2) -> None:
        """Waits until every worker has reported progress `count` times after t."""
        files = [Path(f"{out}.{i}") for i in range(WORKERS)]
        wait_for(lambda: all(f.exists() and sum(1 for s, _ in samples_of(f) if s > t) >= count
                             for f in files), 180, "every Critical worker to report progress")

    @staticmethod
    def units_done(out: Path, t0: float, t1: float) -> float:
        return sum(progress_at(s, t1) - progress_at(s, t0)
                   for s in (samples_of(Path(f"{out}.{i}")) for i in range(WORKERS)))

    def hog(self, kind: str, slice_name: str) -> tuple[str, Path, int]:
        if kind == "cpu":
            load, want = ["--cpu", "4"], 0
        else:
            # stress-ng 0.15 shares --vm-bytes among the --vm workers.
            want = max(128 << 20, meminfo("MemAvailable") - MEM_HEADROOM)
            load = ["--vm", "2", "--vm-bytes", f"{want >> 20}M", "--vm-keep"]
        unit = self._service(f"hog-{kind}", slice_name, [STRESS, *load, "--timeout", "900s"])
        return unit, cgroup_dir(self.systemd, unit), want

    def fill(self, unit: str, cg: Path, want: int, run: Run) -> None:
        """Until the memory hog holds what it asked for (or stops growing)."""
        t0 = time.monotonic()
        seen: list[tuple[float, int]] = []
        while self._alive(unit) and time.monotonic() - t0 < FILL_S:
            now = time.monotonic()
            seen.append((now, event_count(cg / "memory.stat", "anon")))
            if seen[-1][1] >= 0.99 * want:
                break
            old = [b for t, b in seen if now - t >= 8]
            if old and seen[-1][1] - old[-1] < 0.002 * want:
                break  # no longer growing
            time.sleep(0.5)
        held = seen[-1][1] if seen else 0
        run.notes.append(f"hog holds {held >> 20} of {want >> 20} MiB after "
                         f"{time.monotonic() - t0:.0f} s")

    # --- the windows ---

    def idle(self, slice_name: str) -> Run:
        run = Run("", "idle")
        unit, out, cg = self.critical(slice_name)
        p0 = (some_seconds(cg, "cpu"), some_seconds(cg, "memory"))
        t0 = time.monotonic()
        time.sleep(IDLE_S)
        t1 = time.monotonic()
        run.cpu_stall = some_seconds(cg, "cpu") - p0[0]
        run.mem_stall = some_seconds(cg, "memory") - p0[1]
        time.sleep(1.5)
        self._end(unit)
        run.rate = self.units_done(out, t0, t1) / (t1 - t0)
        run.notes.append(slice_name)
        self.runs.append(run)
        return run

    def scenario(self, kind: str, mode: str) -> Run:
        run = Run(kind, mode)
        tiers = mode != "none"
        hog_slice = TAU / "tau-normal.slice" if tiers else CGROUP_ROOT / "system.slice"
        unit, out, cg = self.critical("tau-critical.slice" if tiers else "system.slice")
        self.systemd.freeze(unit)
        k0, s0 = kernel_oom_kills(), event_count(hog_slice / "memory.events", "oom_kill")
        o0 = oomd_kill_lines() if mode == "oomd" else 0
        hog, hog_cg, want = self.hog(kind, hog_slice.name)
        try:
            if kind == "memory":
                self.fill(hog, hog_cg, want, run)
            else:
                time.sleep(2)
            # The hog alone: Critical is frozen, so its tier is idle.
            acts = self.daemon.actions() if self.daemon else {}
            a0, ta0 = user_seconds(hog_cg), time.monotonic()
            time.sleep(ALONE_S)
            a1, ta1 = user_seconds(hog_cg), time.monotonic()
            if a0 is not None and a1 is not None and self._alive(hog):
                run.hog_alone = (a1 - a0) / (ta1 - ta0)
            if self.daemon and self.daemon.actions() != acts:
                run.notes.append(f"governor actions while Critical was idle: {acts} -> "
                                 f"{self.daemon.actions()}")
            # Critical arrives.
            thawed = time.monotonic()
            self.systemd.thaw(unit)
            self.progress_after(out, thawed, count=1)
            p0 = (some_seconds(cg, "cpu"), some_seconds(cg, "memory"))
            d0 = self.daemon.cpu_seconds() if self.daemon else None
            h0 = some_seconds(hog_cg, "memory")
            m0, u0, t0 = system_some("memory"), user_seconds(hog_cg), time.monotonic()
            while time.monotonic() < t0 + LOAD_S:
                time.sleep(min(1.0, max(0.0, t0 + LOAD_S - time.monotonic())))
            t1 = time.monotonic()
            run.cpu_stall = some_seconds(cg, "cpu") - p0[0]
            run.mem_stall = some_seconds(cg, "memory") - p0[1]
            run.crit_oom = event_count(cg / "memory.events", "oom_kill")
            m1, u1 = system_some("memory"), user_seconds(hog_cg)
            with contextlib.suppress(OSError):
                run.notes.append(f"hog mem stall {some_seconds(hog_cg, 'memory') - h0:.1f} s")
            alive = self._alive(hog)
            if u0 is not None and u1 is not None and alive:
                run.hog_load = (u1 - u0) / (t1 - t0)
            if not alive:
                try:
                    run.hog_end = str(self.systemd.get_property(hog, "Result", SERVICE))
                except SystemdError:
                    run.hog_end = "gone"
            else:
                run.hog_end = "ran"
            if m0 is not None and m1 is not None:
                run.notes.append(f"machine memory stall {100 * (m1 - m0) / (t1 - t0):.0f}%")
            if d0 is not None and self.daemon is not None:
                view = self.daemon.view() or {}
                held = {t: v["governed"] for t, v in view.get("tiers", {}).items()
                        if v["governed"]}
                run.notes.append(f"daemon CPU {self.daemon.cpu_seconds() - d0:.1f} s; governor "
                                 f"actions {view.get('actions_total', {})}, holding "
                                 f"{held or 'nothing'} at the end")
            time.sleep(1.5)  # one more progress line past t1
        finally:
            self._end(unit)
            self._end(hog)
        run.rate = self.units_done(out, t0, t1) / (t1 - t0)
        run.kernel_oom = kernel_oom_kills() - k0
        if (in_slice := event_count(hog_slice / "memory.events", "oom_kill") - s0) > 0:
            run.notes.append(f"oom_kill {in_slice} in {hog_slice.name}")
        if mode == "oomd":
            run.oomd_kills = oomd_kill_lines() - o0
        self.runs.append(run)
        return run

    # --- systemd-oomd, the anchor ---

    def oomd_on(self) -> bool:
        if not OOMD_BIN.exists():
            self.oomd_state = "not installed in the guest (scripts/setup --vm installs it)"
            return False
        OOMD_DROPIN.parent.mkdir(parents=True, exist_ok=True)
        # Debian's 20 s would not fit the load window; the limit stays 60%.
        OOMD_DROPIN.write_text("[OOM]\nDefaultMemoryPressureDurationSec=5s\n")
        r = subprocess.run(["systemctl", "start", "systemd-oomd.service"],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            journal = subprocess.run(["journalctl", "-b", "-u", "systemd-oomd", "-n", "8",
                                      "-o", "cat", "--no-pager"], capture_output=True,
                                     text=True, check=False).stdout
            self.oomd_state = f"did not start: {r.stderr.strip()} {journal.strip()}"
            return False
        self.oomd_active = True
        subprocess.run(["systemctl", "set-property", "--runtime", "tau-normal.slice",
                        "ManagedOOMMemoryPressure=kill"], check=True)

        def monitored() -> bool:
            dump = subprocess.run(["oomctl", "dump"], capture_output=True, text=True,
                                  check=False).stdout
            return "tau-normal.slice" in dump

        deadline = time.monotonic() + 30
        while not monitored() and time.monotonic() < deadline:
            time.sleep(1)
        self.oomd_state = ("running, ManagedOOMMemoryPressure=kill on tau-normal.slice "
                           f"({'listed' if monitored() else 'NOT listed'} by oomctl dump), "
                           "limit 60%, duration 5 s")
        return True

    def oomd_off(self) -> None:
        if not self.oomd_active:
            return
        self.oomd_active = False
        subprocess.run(["systemctl", "set-property", "--runtime", "tau-normal.slice",
                        "ManagedOOMMemoryPressure=auto"], check=False)
        subprocess.run(["systemctl", "stop", "systemd-oomd.service"], check=False)
        OOMD_DROPIN.unlink(missing_ok=True)
        control = Path("/run/systemd/system.control/tau-normal.slice.d/"
                       "50-ManagedOOMMemoryPressure.conf")
        if control.exists():
            control.unlink()
            self.systemd.reload()


# ------------------------------------------------------------- report ---


LABEL = {"none": "(a) no tiers", "static": "(b) static tiers",
         "oomd": "(b') static + systemd-oomd", "governor": "(c) governor"}


def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def table(b: Bench) -> str:
    idles = [r.rate for r in b.runs if r.mode == "idle" and r.rate]
    idle = max(idles) if idles else None
    static = {r.hog: r for r in b.runs if r.mode == "static"}
    lines = [
        "",
        f"BENCH governor (issue 13): VM, {WORKERS} emulated vCPUs, "
        f"{meminfo('MemTotal') >> 20} MiB, swap {meminfo('SwapTotal') >> 20} MiB; "
        f"Critical alone {IDLE_S:g} s, hog alone {ALONE_S:g} s, load window {LOAD_S:g} s; "
        "hog throughput = user CPU s/s of its cgroup",
        f"{'hog':<7}{'run':<28}{'crit/idle':>10}{'cpu stall s':>12}{'mem stall s':>12}"
        f"{'killed':>7}{'hog alone/st':>13}{'hog load/st':>12}{'hog end':>10}",
    ]
    for r in b.runs:
        if r.mode == "idle":
            continue
        ref = static.get(r.hog)
        killed = f"{r.killed}" + (f" c{r.crit_oom}" if r.crit_oom else "")
        lines.append(
            f"{r.hog:<7}{LABEL[r.mode]:<28}{fmt(ratio(r.rate, idle)):>10}"
            f"{fmt(r.cpu_stall, '.1f'):>12}{fmt(r.mem_stall, '.1f'):>12}{killed:>7}"
            f"{fmt(ratio(r.hog_alone, ref.hog_alone if ref else None)):>13}"
            f"{fmt(ratio(r.hog_load, ref.hog_load if ref else None)):>12}{r.hog_end:>10}")
    lines.append("goals (issue 13), the governor run against each:")
    for kind, stall_of in (("cpu", "cpu_stall"), ("memory", "mem_stall")):
        gov = next((r for r in b.runs if r.hog == kind and r.mode == "governor"), None)
        st = static.get(kind)
        if gov is None:
            lines.append(f"  {kind} hog: no governor run")
            continue
        rate = ratio(gov.rate, idle)
        g_stall = getattr(gov, stall_of)
        s_stall = getattr(st, stall_of) if st else None
        stall_rel = ratio(g_stall, s_stall) if s_stall and s_stall > 0.05 else None
        hog_rel = ratio(gov.hog_alone, st.hog_alone if st else None)
        if hog_rel is None and st and st.hog_alone:
            hog_rel = 0.0  # killed or stopped under the governor
        lines += [
            f"  {kind} hog: Critical >= {GOAL_RATE:g} of its idle rate: {fmt(rate)} "
            f"{mark(None if rate is None else rate >= GOAL_RATE)}",
            f"  {kind} hog: {stall_of.replace('_', ' ')} <= 1/5 of static: "
            f"{fmt(g_stall, '.1f')} s vs {fmt(s_stall, '.1f')} s = {fmt(stall_rel)} "
            f"{mark(None if stall_rel is None else stall_rel <= GOAL_STALL)}"
            + ("" if stall_rel is not None else " (the static run had no such stall)"),
            f"  {kind} hog: nothing killed: {gov.killed} {mark(gov.killed == 0)}",
            f"  {kind} hog: the hog alone >= {GOAL_HOG:g} of static: {fmt(hog_rel)} "
            f"{mark(None if hog_rel is None else hog_rel >= GOAL_HOG)}",
        ]
    refs = ["idle rates " + ", ".join(f"{fmt(r.rate, '.1f')} units/s ({r.notes[0]})"
                                      for r in b.runs if r.mode == "idle")]
    for kind, r in static.items():
        refs.append(f"static {kind} hog {fmt(r.hog_alone)} CPU s/s alone, "
                    f"{fmt(r.hog_load)} beside Critical")
    lines.append("reference: " + "; ".join(refs))
    lines.append(f"systemd-oomd: {b.oomd_state}")
    for r in b.runs:
        if r.notes and r.mode != "idle":
            lines.append(f"note {r.hog} {r.mode}: " + "; ".join(r.notes))
    lines += [f"note: {n}" for n in b.notes]
    return "\n".join(lines)


# --------------------------------------------------------------- test ---


@pytest.fixture
def bench(systemd: BlockingSystemd, units: Units, tmp_path: Path,
          report: Callable[[str], None]) -> Iterator[Bench]:
    if not Path(STRESS).exists():
        pytest.skip(f"needs stress-ng ({STRESS}); scripts/setup --vm installs it")
    b = Bench(systemd, units, tmp_path)
    try:
        yield b
    finally:
        try:
            if b.daemon is not None:
                b.daemon.stop()
                print(f"--- daemon log (tail) ---\n{b.daemon.tail()}")
            b.oomd_off()
            report(table(b))
        finally:
            taucg("apply")


def test_bench_governor_against_static_tiers_and_oomd(bench: Bench) -> None:
    b = bench
    b.notes.append("system.slice cgroup.subtree_control: "
                   + read_text(CGROUP_ROOT / "system.slice" / "cgroup.subtree_control"))
    b.notes.append("THP " + read_text(Path("/sys/kernel/mm/transparent_hugepage/enabled")))
    b.notes.append("memory at the start: " + memory_summary())

    first = b.idle("system.slice")
    assert first.rate and first.rate > 0, "Critical did no work alone"

    # (a) no tiers: both in plain services under system.slice.
    for kind in ("cpu", "memory"):
        b.scenario(kind, "none")

    # (b) the built-in tiers, no daemon.
    taucg("apply")
    applied = normal_files()
    for kind in ("cpu", "memory"):
        b.scenario(kind, "static")

    # (b') the static tiers with systemd-oomd killing on the hog's slice.
    if b.oomd_on():
        b.scenario("memory", "oomd")
        b.oomd_off()
    b.notes.append("no oomd run under the CPU hog: systemd-oomd acts on memory pressure "
                   "and swap only")

    # (c) the governor: the daemon running, pooling off.
    b.daemon = Daemon(b.root / "daemon", b.units)
    b.daemon.start()
    b.daemon.wait_ready()
    for kind in ("cpu", "memory"):
        if kind != "cpu":
            b.daemon.reload()  # gives back whatever it holds, starts afresh
            if normal_files() != applied:
                b.notes.append(f"after a reload tau-normal.slice is {normal_files()}, "
                               f"applied {applied}")
        b.scenario(kind, "governor")
    b.daemon.stop()
    if normal_files() != applied:
        b.notes.append(f"after the daemon stopped tau-normal.slice is {normal_files()}")

    b.idle("tau-critical.slice")  # warm caches: the first idle run may be the slower

    for r in b.runs:
        assert r.rate is not None and r.rate > 0, f"Critical did no work in {r.hog} {r.mode}"
        assert r.cpu_stall is not None and r.mem_stall is not None
    assert any(r.hog_alone for r in b.runs if r.hog == "cpu"), "the CPU hog did no work"
