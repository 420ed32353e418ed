"""Config + observed state -> Plan -> execute -> verify: ``apply_config``
is the one entry point, for the CLI and the daemon's API alike.

A plan lists every change before anything is touched: unit files and
drop-ins to write or remove, live properties to set, slices to start and
services that would change tier. ``--dry-run`` prints it. Executing writes
files atomically, reloads systemd once, sets the live properties with
SetUnitProperties(runtime) and starts the slices; a failure restores the
files this run wrote. Verify reads the cgroup files back.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import signal
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from taucg.actors.files import (
    LockBusy,
    clean_leftovers,
    exclusive_lock,
    remove_file,
    write_atomic,
)
from taucg.actors.records import audit, perf
from taucg.actors.systemd_dbus import SLICE, Systemd, SystemdError
from taucg.config.schema import TIER_NAMES, Config
from taucg.config.values import format_bytes, format_cpus
from taucg.model import properties
from taucg.model.tiers import (
    DROPIN_NAME,
    Drift,
    SliceSpec,
    service_dropin,
    service_tiers,
    slice_name,
    slice_specs,
    verify,
)
from taucg.readers import cgroupfs
from taucg.readers.machine import Machine

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
LOCK_PATH = Path("/run/taucg/apply.lock")
KILL_HOOK = "TAUCG_APPLY_KILL_AT"  # test hook: "file", "reload", "properties", "start"
FAIL_HOOK = "TAUCG_APPLY_FAIL_AT"  # test hook: the same steps, failing instead of dying


class ApplyError(Exception):
    """Apply cannot go ahead, or failed; the message says what state is left."""


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class PreflightError(ApplyError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class FileChange:
    path: Path
    before: str | None
    after: str | None

    @property
    def action(self) -> str:
        if self.before is None:
            return "create"
        return "remove" if self.after is None else "update"


@dataclass(frozen=True, slots=True)
class PropertyChange:
    unit: str
    name: str  # the directive, as admins know it (CPUQuota, MemoryMax)
    dbus_name: str  # as sent (MemoryMaxScale for percentages)
    value: Any
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Move:
    unit: str
    before: str
    after: str
    active: bool


@dataclass(slots=True)
class Plan:
    unit_dir: Path
    files: list[FileChange] = field(default_factory=list)
    properties: list[PropertyChange] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    systemd_reachable: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.files or self.properties or self.start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "unit_dir": str(self.unit_dir),
            "files": [{"path": str(f.path), "action": f.action, "before": f.before,
                       "after": f.after} for f in self.files],
            "properties": [{"unit": p.unit, "name": p.name, "before": p.before,
                            "after": p.after} for p in self.properties],
            "start": self.start,
            "moves": [{"unit": m.unit, "from": m.before, "to": m.after, "active": m.active}
                      for m in self.moves],
            "notes": self.notes,
            "systemd_reachable": self.systemd_reachable,
        }


# ----------------------------------------------------------- preflight ---


def _kernel_has_rt_group_sched() -> bool:
    release = os.uname().release
    for path in (Path(f"/boot/config-{release}"), Path("/proc/config.gz")):
        try:
            text = (gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz"
                    else path.read_text())
        except OSError:
            continue
        return "CONFIG_RT_GROUP_SCHED=y" in text
    return False


def _rt_tasks_outside_root() -> list[int]:
    from taucg.readers.procfs import ProcessGone, read_cgroup
    from taucg.readers.sampler import Sampler

    pids = []
    for p in Sampler().processes():
        if p.policy in (1, 2):  # SCHED_FIFO, SCHED_RR
            try:
                cg = read_cgroup(p.pid)
            except ProcessGone:
                continue
            if cg not in ("", "/"):
                pids.append(p.pid)
    return pids


def preflight(config: Config, machine: Machine) -> list[Problem]:
    """Kernel-aware checks, before any change."""
    problems: list[Problem] = []
    if not machine.controllers:
        problems.append(Problem(
            "cgroup", f"no cgroup v2 hierarchy at {machine.cgroup_root}; taucg needs the "
            "unified hierarchy: boot with systemd.unified_cgroup_hierarchy=1"))
        return problems
    for tier in TIER_NAMES:
        policy = config.tiers[tier]
        for prop in properties.TABLE:
            ctrl = prop.controller
            if not prop.configurable or ctrl is None:
                continue
            key = prop.key
            if getattr(policy, key) is not None and ctrl not in machine.controllers:
                problems.append(Problem(
                    f"tiers.{tier}.{key}",
                    f"needs the {ctrl} controller, which {machine.cgroup_root} does not offer "
                    f"(cgroup.controllers: {' '.join(sorted(machine.controllers)) or 'none'}); "
                    f"boot with cgroup_no_v1=all so {ctrl} is not held by cgroup v1, "
                    "or remove the key"))
        cpus = policy.allowed_cpus
        if cpus is not None:
            outside = cpus.cpus - machine.online_cpus
            if outside:
                problems.append(Problem(
                    f"tiers.{tier}.allowed_cpus",
                    f"CPU {format_cpus(set(outside))} is not online (online: "
                    f"{format_cpus(set(machine.online_cpus))}); use only online CPUs"))
    parent = slice_specs(config, machine.total_memory)[0].values
    low = parent["memory_low"].bytes if parent["memory_low"] else 0
    protected = low + (parent["memory_min"].bytes if parent["memory_min"] else 0)
    if low > machine.total_memory:
        problems.append(Problem(
            "tiers.*.memory_low",
            f"the tiers protect {format_bytes(protected)} in all, more than this machine's "
            f"{format_bytes(machine.total_memory)} of RAM; lower memory_low/memory_min"))
    uses_cpu = any(config.tiers[t].cpu_weight is not None or config.tiers[t].cpu_quota
                   is not None for t in TIER_NAMES)
    root_subtree = (cgroupfs.subtree_control(machine.cgroup_root)
                    if (machine.cgroup_root / "cgroup.subtree_control").exists() else set())
    if uses_cpu and "cpu" not in root_subtree and _kernel_has_rt_group_sched():
        rt = _rt_tasks_outside_root()
        if rt:
            problems.append(Problem(
                "tiers.*.cpu_weight",
                f"real-time tasks (PIDs {', '.join(map(str, rt[:10]))}) outside the root "
                "cgroup stop the kernel from enabling the cpu controller "
                "(CONFIG_RT_GROUP_SCHED); move them to the root cgroup or make them "
                "SCHED_OTHER, then apply again"))
    return problems


# ---------------------------------------------------------------- plan ---


def _read_file(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def desired_files(config: Config, unit_dir: Path, total_memory: int) -> dict[Path, str]:
    files = {unit_dir / s.unit: s.unit_file() for s in slice_specs(config, total_memory)}
    for unit, tier in service_tiers(config).items():
        files[unit_dir / f"{unit}.d" / DROPIN_NAME] = service_dropin(unit, tier)
    return files


async def observe_and_plan(config: Config, machine: Machine, unit_dir: Path,
                           client: Systemd | None,
                           held: Mapping[str, AbstractSet[str]] = MappingProxyType({})
                           ) -> Plan:
    """held: slice unit -> property keys the governor holds at runtime;
    the plan leaves those to it (see apply_config)."""
    plan = Plan(unit_dir=unit_dir)
    want = desired_files(config, unit_dir, machine.total_memory)
    for path, text in sorted(want.items()):
        before = _read_file(path)
        if before != text:
            plan.files.append(FileChange(path, before, text))
    for stale in sorted(unit_dir.glob(f"*.d/{DROPIN_NAME}")):
        if stale not in want:
            plan.files.append(FileChange(stale, _read_file(stale), None))
    if client is None:
        plan.notes.append("systemd is not reachable over D-Bus: live properties, slice "
                          "states and service moves were not compared")
        return plan
    plan.systemd_reachable = True
    for spec in slice_specs(config, machine.total_memory):
        await _plan_slice(plan, spec, client, machine, held.get(spec.unit, frozenset()))
    await _plan_moves(plan, config, client)
    return plan


async def _plan_slice(plan: Plan, spec: SliceSpec, client: Systemd, machine: Machine,
                      held: AbstractSet[str]) -> None:
    unit = await client.properties(spec.unit)
    live = await client.properties(spec.unit, SLICE) if unit.get("LoadState") == "loaded" \
        else {}
    if held:
        names = ", ".join(p.directive for p in properties.TABLE if p.key in held)
        plan.notes.append(f"{spec.unit}: {names} held by the governor at runtime; it gives "
                          "the configured value back when the pressure ends")
    for prop in properties.TABLE:
        if prop.key in held:
            continue
        dbus_name, value = prop.to_dbus(spec.values.get(prop.key))
        have = live.get(prop.dbus, prop.default)
        if have is None or prop.same(dbus_name, value, have, machine):
            continue
        plan.properties.append(PropertyChange(spec.unit, prop.directive, dbus_name, value,
                                              prop.show(prop.dbus, have),
                                              prop.show(dbus_name, value)))
    if unit.get("ActiveState") != "active":
        plan.start.append(spec.unit)


async def _plan_moves(plan: Plan, config: Config, client: Systemd) -> None:
    wanted = service_tiers(config)
    placed_before = {p.parent.name.removesuffix(".d") for p in
                     plan.unit_dir.glob(f"*.d/{DROPIN_NAME}")}
    for unit in sorted(set(wanted) | placed_before):
        if not unit.endswith(".service"):
            continue
        props = await client.properties(unit)
        if props.get("LoadState") != "loaded":
            continue
        active = props.get("ActiveState") == "active"
        service = "org.freedesktop.systemd1.Service"
        if active:
            # The Slice property follows the unit files as soon as systemd
            # reloads; where the processes really are is the control group.
            group = str(await client.get_property(unit, "ControlGroup", service))
            parts = group.rstrip("/").split("/")
            current = parts[-2] if len(parts) >= 2 and parts[-2] else "-.slice"
        else:
            current = str(await client.get_property(unit, "Slice", service))
        target = slice_name(wanted[unit]) if unit in wanted else "system.slice"
        if current != target:
            plan.moves.append(Move(unit, current, target, active))


# ------------------------------------------------------------- execute ---


def _kill_hook(step: str) -> None:
    """Documented test hooks, right after a step: TAUCG_APPLY_KILL_AT=<step>
    makes apply kill itself with SIGKILL, as an admin's kill -9 would;
    TAUCG_APPLY_FAIL_AT=<step> makes the step fail, to exercise rollback."""
    if os.environ.get(KILL_HOOK) == step:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_HOOK) == step:
        raise OSError(errno.EIO, f"failure injected after '{step}' by {FAIL_HOOK}")


@dataclass(slots=True)
class Result:
    files_written: int = 0
    properties_set: int = 0
    started: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)


async def execute(plan: Plan, client: Systemd, restart_moved: bool = False,
                  progress: Callable[[str], None] = lambda _: None) -> Result:
    result = Result()
    done: list[FileChange] = []
    step = "writing unit files"
    try:
        for change in plan.files:
            if change.after is None:
                remove_file(change.path)
            else:
                write_atomic(change.path, change.after)
            done.append(change)
            result.files_written += 1
            progress(f"{change.action} {change.path}")
            _kill_hook("file")
        if plan.files:
            step = "reloading systemd"
            await client.reload()
            progress("reloaded systemd")
            _kill_hook("reload")
        step = "setting live properties"
        for unit, props in _group(plan.properties).items():
            await client.set_properties(unit, props, runtime=True)
            result.properties_set += len(props)
            progress(f"set {', '.join(props)} on {unit}")
        _kill_hook("properties")
        step = "starting slices"
        for unit in plan.start:
            await client.start(unit)
            result.started.append(unit)
            progress(f"started {unit}")
        _kill_hook("start")
    except (SystemdError, OSError) as exc:
        restored = _rollback(done)
        if restored:
            with contextlib.suppress(SystemdError, OSError):
                await client.reload()
        left = []
        if result.properties_set:
            left.append(f"{result.properties_set} live properties were already set "
                        "(runtime only: a reboot or the next apply resets them)")
        if result.started:
            left.append(f"started: {', '.join(result.started)}")
        raise ApplyError(
            f"apply failed while {step}: {exc}. Restored {len(restored)} file(s) this run "
            f"had written. {' '.join(left) or 'No live state was changed.'}") from exc
    if restart_moved:
        for move in plan.moves:
            if move.active:
                await client.restart(move.unit)
                result.restarted.append(move.unit)
                progress(f"restarted {move.unit} into {move.after}")
    return result


def _group(changes: list[PropertyChange]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in changes:
        out.setdefault(c.unit, {})[c.dbus_name] = c.value
    return out


def _rollback(done: list[FileChange]) -> list[Path]:
    restored = []
    for change in reversed(done):
        try:
            if change.before is None:
                remove_file(change.path)
            else:
                write_atomic(change.path, change.before)
            restored.append(change.path)
        except OSError:
            continue
    return restored


# ------------------------------------------------------- the whole flow ---


def apply_lock() -> contextlib.AbstractContextManager[None]:
    """One apply at a time, machine-wide; raises LockBusy naming the holder."""
    return exclusive_lock(LOCK_PATH, "taucg apply")


class ExecuteError(ApplyError):
    """Executing the plan failed; the files were rolled back and the
    message says what live state was left."""


@dataclass(slots=True)
class Applied:
    plan: Plan
    result: Result | None  # None when nothing needed doing, or on a dry run
    restart_needed: list[str]
    drift: list[Drift]
    problems: list[Problem] = field(default_factory=list)  # preflight, on a dry run
    dry_run: bool = False

    @property
    def summary(self) -> str:
        if self.dry_run:
            return "something would change" if self.plan.changed else "nothing would change"
        r = self.result
        if r is None:
            return "nothing to change: the slices already match the config"
        return (f"applied: {r.files_written} file(s), {r.properties_set} propert(ies), started "
                f"{len(r.started)} slice(s), restarted {len(r.restarted)} service(s)")

    def audit_records(self, config_file: str | None) -> list[dict[str, Any]]:
        """One audit record per change made: files, properties, starts, restarts."""
        if self.result is None:
            return []
        out: list[dict[str, Any]] = []
        for f in self.plan.files:
            out.append({"action": f"apply {f.action}", "target": str(f.path),
                        "before": "absent" if f.before is None else "present",
                        "after": "absent" if f.after is None else "written",
                        "config": config_file})
        for p in self.plan.properties:
            out.append({"action": "apply set-property", "target": p.unit,
                        "before": {p.name: p.before}, "after": {p.name: p.after},
                        "config": config_file})
        for unit in self.result.started:
            out.append({"action": "apply start", "target": unit, "before": "inactive",
                        "after": "active"})
        for unit in self.result.restarted:
            out.append({"action": "apply restart-moved", "target": unit,
                        "after": "restarted into its tier"})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "summary": self.summary,
                "restart_needed": self.restart_needed, "drift": [str(d) for d in self.drift],
                "problems": [str(p) for p in self.problems], "dry_run": self.dry_run}


async def apply_config(config: Config, client: Systemd | None, *,
                       unit_dir: Path = DEFAULT_UNIT_DIR, dry_run: bool = False,
                       restart_moved: bool = False, machine: Machine | None = None,
                       who: str | None = None,
                       held: Mapping[str, AbstractSet[str]] = MappingProxyType({}),
                       on_plan: Callable[[Plan], None] = lambda _p: None) -> Applied:
    """The one way the tiers are applied, by the CLI and by the daemon's API:
    probe, preflight, then lock, plan, execute when something differs,
    verify, and leave an audit record per change and a performance record.

    A dry run plans without the lock and returns the preflight problems
    with the plan. Otherwise preflight problems raise PreflightError before
    anything is touched, and a failed step raises ExecuteError after the
    files were rolled back (and is audited as failed). ``who`` is the
    requester for the audit records (default: this process's user).

    ``held`` (slice unit -> property keys) names what the daemon's governor
    holds at runtime: neither planned nor verified, so apply neither fights
    the controller nor reports its work as drift."""
    machine = machine or Machine.probe()
    problems = preflight(config, machine)
    if dry_run:
        plan = await observe_and_plan(config, machine, unit_dir, client, held)
        return Applied(plan, None, [], [], problems, dry_run=True)
    if problems:
        raise PreflightError(problems)
    if os.geteuid() != 0:
        raise ApplyError("taucg apply needs root to write units and change systemd; run it "
                         "with sudo, or use --dry-run to see the plan")
    if client is None:
        raise ApplyError("applying the tiers needs systemd on the system bus")
    started = time.monotonic()
    try:
        with apply_lock():
            clean_leftovers(unit_dir)
            plan = await observe_and_plan(config, machine, unit_dir, client, held)
            on_plan(plan)
            result = None
            if plan.changed or (restart_moved and any(m.active for m in plan.moves)):
                try:
                    result = await execute(plan, client, restart_moved)
                except ApplyError as exc:
                    audit(config.logging, "apply", str(unit_dir), result=f"failed: {exc}",
                          config=config.file, who=who)
                    raise ExecuteError(str(exc)) from exc
            waiting = [m.unit for m in plan.moves if m.active and not restart_moved]
            done = Applied(plan, result, waiting, verify(config, machine, held))
    except LockBusy as exc:
        raise ApplyError(str(exc)) from None
    for record in done.audit_records(config.file):
        audit(config.logging, who=who, **record)
    perf(config.logging, "apply", time.monotonic() - started, changed=result is not None,
         drift=len(done.drift))
    return done
