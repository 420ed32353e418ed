"""Process management: placing processes into tiers (through systemd
transient scopes), per-tier priorities, and admission against the tier's
limits.

taucg never writes cgroup.procs itself: a placed process moves because
systemd creates a scope for it (StartTransientUnit with PIDs=).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taucg.config.schema import TIER_NAMES, Config
from taucg.config.values import Size
from taucg.model import properties
from taucg.model.tiers import slice_name, tier_of
from taucg.readers import cgroupfs
from taucg.readers.procfs import ProcessFacts

if TYPE_CHECKING:
    from taucg.actors.systemd_dbus import Systemd
    from taucg.config.ananicy import Settings
    from taucg.model.ananicy import AnanicyIndex, AnanicyMatch

# ------------------------------------------------------------- priorities ---

IOPRIO_CLASS_BE = 2
IOPRIO_CLASS_IDLE = 3


@dataclass(frozen=True, slots=True)
class Priority:
    nice: int
    io_class: int  # 2 best-effort, 3 idle
    io_level: int  # 0 (highest) .. 7, best-effort only
    oom_score_adj: int


# One row per tier, Critical first. With process_priority_levels = N < 5,
# tiers share the nearest of N evenly spaced rows; 0 turns priorities off.
PRIORITY_ROWS = (
    Priority(-10, IOPRIO_CLASS_BE, 0, -900),
    Priority(-5, IOPRIO_CLASS_BE, 2, -500),
    Priority(0, IOPRIO_CLASS_BE, 4, 0),
    Priority(10, IOPRIO_CLASS_BE, 6, 300),
    Priority(19, IOPRIO_CLASS_IDLE, 7, 800),
)


def tier_priority(tier: str, levels: int) -> Priority | None:
    if levels <= 0:
        return None
    i = TIER_NAMES.index(tier)
    if levels == 1:
        return PRIORITY_ROWS[2]
    step = round(i * (levels - 1) / 4)
    return PRIORITY_ROWS[round(step * 4 / (levels - 1))]


def apply_priority(pid: int, prio: Priority) -> list[str]:
    """Sets nice, IO priority and oom_score_adj; returns what failed (the
    process may have exited, or lower nice values need root)."""
    # Imported here so that importing placement (for tier_priority, scope
    # names) does not load the C extension.
    from taucg.readers import syscalls

    failed = []
    try:
        os.setpriority(os.PRIO_PROCESS, pid, prio.nice)
    except OSError as exc:
        failed.append(f"nice {prio.nice}: {exc.strerror}")
    try:
        # The idle class has no levels.
        syscalls.ioprio_set(pid, prio.io_class,
                            prio.io_level if prio.io_class == IOPRIO_CLASS_BE else 0)
    except OSError as exc:
        failed.append(f"io priority: {os.strerror(exc.errno or 0)}")
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(prio.oom_score_adj))
    except OSError as exc:
        failed.append(f"oom_score_adj {prio.oom_score_adj}: {exc.strerror}")
    return failed


def pin(pid: int, cpus: Iterable[int]) -> int:
    """sched_setaffinity on every thread of a process; returns threads pinned."""
    wanted = set(cpus)
    done = 0
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return 0
    for tid in tids:
        try:
            os.sched_setaffinity(tid, wanted)
            done += 1
        except (ProcessLookupError, PermissionError):
            continue
    return done


# ananicy's names for what apply_settings sets.
IOCLASS_NUMBERS = {"none": 0, "realtime": 1, "best-effort": IOPRIO_CLASS_BE,
                   "idle": IOPRIO_CLASS_IDLE}
SCHED_POLICIES = {"other": os.SCHED_OTHER, "normal": os.SCHED_OTHER,
                  "batch": os.SCHED_BATCH, "idle": os.SCHED_IDLE,
                  "fifo": os.SCHED_FIFO, "rr": os.SCHED_RR}


def apply_settings(pid: int, base: Priority | None, s: Settings) -> list[str]:
    """An ananicy rule's own nice, IO class and level, scheduling policy and
    oom_score_adj, inside its tier: what the rule gives wins, the tier's
    row (base) fills the rest. Returns what failed, as apply_priority."""
    from taucg.readers import syscalls

    failed = []
    if s.sched is not None:
        policy = SCHED_POLICIES.get(s.sched)
        if policy is None:
            failed.append(f"sched {s.sched}: not a policy Linux offers (mainline has no "
                          "SCHED_ISO; SCHED_DEADLINE needs runtime parameters)")
        else:
            rt = (s.rtprio or 1) if policy in (os.SCHED_FIFO, os.SCHED_RR) else 0
            try:
                os.sched_setscheduler(pid, policy, os.sched_param(rt))
            except OSError as exc:
                failed.append(f"sched {s.sched}: {exc.strerror}")
    nice = s.nice if s.nice is not None else base.nice if base else None
    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        except OSError as exc:
            failed.append(f"nice {nice}: {exc.strerror}")
    if s.ioclass is not None or s.ionice is not None or base is not None:
        io_class = (IOCLASS_NUMBERS[s.ioclass] if s.ioclass is not None
                    else base.io_class if base else IOPRIO_CLASS_BE)
        if s.ioclass is None and s.ionice is not None and io_class == IOPRIO_CLASS_IDLE:
            io_class = IOPRIO_CLASS_BE  # a level asked for needs a class that has levels
        level = s.ionice if s.ionice is not None else base.io_level if base else 4
        try:
            syscalls.ioprio_set(pid, io_class, level if io_class in (1, IOPRIO_CLASS_BE) else 0)
        except OSError as exc:
            failed.append(f"io priority: {os.strerror(exc.errno or 0)}")
    oom = s.oom_score_adj if s.oom_score_adj is not None else \
        base.oom_score_adj if base else None
    if oom is not None:
        try:
            Path(f"/proc/{pid}/oom_score_adj").write_text(str(oom))
        except OSError as exc:
            failed.append(f"oom_score_adj {oom}: {exc.strerror}")
    return failed


def ananicy_cpu_quota(match: AnanicyMatch, cpus: int | None = None) -> float | None:
    """The scope's CPUQuota (percent of one CPU, systemd's unit) for an
    ananicy cgroup's CPUQuota (percent of all CPUs, ananicy's)."""
    quota = match.rule.cpu_quota
    if quota is None:
        return None
    return round(quota * (cpus or os.cpu_count() or 1), 2)


# --------------------------------------------------------------- tiers ---


def scope_name(tier: str, comm: str, pid: int, prefix: str = "taucg") -> str:
    """A name an admin can read: taucg-low-make-1234.scope."""
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "_", comm)[:40] or "proc"
    return f"{prefix}-{tier}-{safe}-{pid}.scope"


def is_candidate(f: ProcessFacts, own_pid: int | None = None) -> tuple[bool, str]:
    """Whether placement may move this process, and why not."""
    if f.pid == 1 or f.is_kernel_thread:
        return False, "PID 1 and kernel threads are never moved"
    if own_pid is not None and f.pid == own_pid:
        return False, "taucg itself"
    if tier_of(f.cgroup) is not None:
        return False, f"already in the {tier_of(f.cgroup)} tier"
    unit = f.unit
    if unit is None:
        return False, "not in a systemd unit"
    if unit == "init.scope":
        return False, "part of PID 1's init.scope"
    if not unit.endswith(".scope"):
        return False, (f"runs in {unit}: a service stays in its unit; place services with "
                       "tiers.<tier>.units")
    return True, ""


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    reason: str
    processes: int
    limit: int


def tier_processes(tier: str, root: Path = cgroupfs.ROOT) -> int:
    cg = cgroupfs.unit_cgroup(slice_name(tier), root)
    total = 0
    for dirpath, _dirs, files in os.walk(cg):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                total += len(Path(dirpath, "cgroup.procs").read_text().split())
    return total


def admit(cfg: Config, tier: str, root: Path = cgroupfs.ROOT) -> Admission:
    """max_concurrent_processes per tier, and the slice's own TasksMax.

    max_concurrent_processes counts processes, so it is checked here rather
    than mapped to TasksMax, which counts threads."""
    limit = cfg.process_management.max_concurrent_processes
    cg = cgroupfs.unit_cgroup(slice_name(tier), root)
    if not cg.is_dir():
        return Admission(True, "tier not started yet", 0, limit)
    count = tier_processes(tier, root)
    if count >= limit:
        return Admission(False, f"tier {tier} is full: {count} processes of "
                         f"max_concurrent_processes={limit}; wait for some to finish or raise "
                         "[process_management] max_concurrent_processes", count, limit)
    current, maximum = cgroupfs.read(cg, "pids.current"), cgroup_max(cg)
    if current is not None and maximum is not None and int(current) >= maximum:
        return Admission(False, f"tier {tier} is full: {current} tasks of TasksMax={maximum}; "
                         f"wait or raise tiers.{tier}.tasks_max", count, limit)
    return Admission(True, "", count, limit)


def cgroup_max(cg: Path) -> int | None:
    text = cgroupfs.read(cg, "pids.max")
    return None if text is None else cgroupfs.parse_max(text)


# ------------------------------------------------------------ placement ---


@dataclass(frozen=True, slots=True)
class Placement:
    pid: int
    comm: str
    tier: str
    scope: str
    rule: str
    priority_failures: tuple[str, ...] = ()


def scope_limits(cfg: Config) -> dict[str, Any]:
    """Per-process limits from [process_management] for a placed scope, as
    property-table values (``properties.dbus_values`` makes them D-Bus)."""
    pm = cfg.process_management
    return {"memory_max": Size(bytes=pm.memory_limit_mb << 20),
            "cpu_quota": pm.cpu_limit_percent}


async def place(client: Systemd, f: ProcessFacts, tier: str, cfg: Config, rule: str,
                ananicy: AnanicyMatch | None = None) -> Placement:
    """Moves a process into its tier through a new transient scope. An
    ananicy match brings its own priorities and its cgroup's CPUQuota,
    which replaces [process_management] cpu_limit_percent on the scope."""
    scope = scope_name(tier, f.comm, f.pid)
    limits = scope_limits(cfg)
    quota = ananicy_cpu_quota(ananicy) if ananicy is not None else None
    if quota is not None:
        limits["cpu_quota"] = quota
    props: dict[str, object] = {
        "Description": f"taucg: {f.comm} ({f.pid}) placed in {tier} by {rule}",
        "Slice": slice_name(tier),
        "PIDs": [f.pid],
        "CollectMode": "inactive-or-failed",
        **properties.dbus_values(limits),
    }
    await client.start_transient(scope, props, mode="fail")
    prio = tier_priority(tier, cfg.process_management.process_priority_levels)
    if ananicy is not None:
        failures = tuple(apply_settings(f.pid, prio, ananicy.rule.settings))
    else:
        failures = tuple(apply_priority(f.pid, prio)) if prio else ()
    return Placement(f.pid, f.comm, tier, scope, rule, failures)


async def place_by_rules(cfg: Config, client: Systemd | None, pid: int, *,
                         dry_run: bool = False, since: float | None = None,
                         ananicy: AnanicyIndex | None = None) -> dict[str, Any] | None:
    """Classifies one process and, unless dry_run, places (or pins) it.
    Returns what happened, or None when no rule concerns it. ``since`` is
    the proc-connector event's CLOCK_MONOTONIC time, for the latency;
    ``ananicy`` the index of [rule_sources] ananicy, below [[rules]]."""
    from taucg.actors.records import audit
    from taucg.model.rules import classify
    from taucg.readers.procfs import ProcessGone, facts

    try:
        f = facts(pid)
    except ProcessGone:
        return None
    ok, _ = is_candidate(f, os.getpid())
    verdict = classify(cfg.rules, f, ananicy)
    rule = verdict.label()
    if verdict.tier is None or rule is None:
        return None
    entry: dict[str, Any] = {"pid": pid, "comm": f.comm, "tier": verdict.tier, "rule": rule,
                             "placed": False}
    if verdict.ananicy is not None:
        entry["source"] = str(verdict.ananicy.rule.source)
    if not ok:
        # A service's process stays in its unit; a rule may still pin it.
        cpus = verdict.rule.rule.allowed_cpus if verdict.rule is not None else None
        if cpus is None or not (f.unit or "").endswith(".service"):
            return None
        entry["pinned"] = str(cpus)
        if not dry_run:
            entry["threads_pinned"] = pin(pid, cpus.cpus)
            audit(cfg.logging, "pin", f"{pid} ({f.comm})", after=f"CPUs {cpus}", rule=rule,
                  unit=f.unit)
        return entry
    if dry_run:
        return entry
    if client is None:
        raise ValueError("placing a process needs a systemd client")
    adm = admit(cfg, verdict.tier)
    if not adm.allowed:
        entry["refused"] = adm.reason
        return entry
    try:
        placed = await place(client, f, verdict.tier, cfg, rule, verdict.ananicy)
    except Exception as exc:
        entry["error"] = str(exc)
        return entry
    entry.update(placed=True, scope=placed.scope)
    audit(cfg.logging, "place", f"{pid} ({f.comm})", before=f.cgroup,
          after=f"{placed.scope} in {verdict.tier}", rule=rule)
    if since is not None:
        entry["latency_seconds"] = round(time.monotonic() - since, 4)
    if placed.priority_failures:
        entry["priority_failures"] = list(placed.priority_failures)
    return entry
