"""Config + observed state -> Plan -> execute -> verify.

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
import fcntl
import gzip
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taucg.actors.systemd_dbus import SLICE, Systemd, SystemdError, mask_to_cpus
from taucg.config.schema import TIER_NAMES, Config
from taucg.config.values import format_bytes, format_cpus
from taucg.model.tiers import (
    DROPIN_NAME,
    MANAGED_DEFAULTS,
    UINT64_MAX,
    SliceSpec,
    service_dropin,
    service_tiers,
    slice_name,
    slice_specs,
)
from taucg.readers import cgroupfs

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
    name: str  # as admins know it (MemoryMax)
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


# ------------------------------------------------------------- machine ---


@dataclass(frozen=True, slots=True)
class Machine:
    """What the checks and the mapping need to know about this machine."""

    total_memory: int
    online_cpus: frozenset[int]
    controllers: frozenset[str]
    cgroup_root: Path = cgroupfs.ROOT

    @classmethod
    def probe(cls, cgroup_root: Path = cgroupfs.ROOT) -> Machine:
        total = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
        ctrl: set[str] = set()
        if (cgroup_root / "cgroup.controllers").exists():
            ctrl = cgroupfs.controllers(cgroup_root)
        return cls(total, cgroupfs.online_cpus().cpus, frozenset(ctrl), cgroup_root)


_CONTROLLER_FOR = {
    "cpu_weight": "cpu", "cpu_quota": "cpu", "memory_min": "memory", "memory_low": "memory",
    "memory_high": "memory", "memory_max": "memory", "allowed_cpus": "cpuset",
    "io_weight": "io", "tasks_max": "pids",
}


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
        for key, ctrl in _CONTROLLER_FOR.items():
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
    specs = slice_specs(config, machine.total_memory)
    protected = specs[0].expected.memory_min + specs[0].expected.memory_low
    if specs[0].expected.memory_low > machine.total_memory:
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


def _show(name: str, value: Any) -> str:
    if name == "AllowedCPUs":
        # Desired values are CPU lists; systemd reports a bitmask.
        cpus = frozenset(value) if isinstance(value, list) else mask_to_cpus(bytes(value))
        return format_cpus(set(cpus)) or "all"
    if name == "CPUQuotaPerSecUSec":
        return "none" if value == UINT64_MAX else f"{value / 10_000:g}%"
    if name in ("CPUWeight", "IOWeight"):
        return "default" if value == UINT64_MAX else str(value)
    if name.startswith("Memory") or name == "TasksMax":
        if value == UINT64_MAX:
            return "infinity"
        return format_bytes(int(value)) if name.startswith("Memory") else str(value)
    return str(value)


def _same(name: str, want: Any, have: Any, expected_bytes: int | None, total: int) -> bool:
    if name.endswith("Scale"):
        # systemd computed the bytes from the percentage; allow its rounding.
        return expected_bytes is not None and abs(int(have) - expected_bytes) <= max(
            2 * 4096, total // 200)
    if name == "AllowedCPUs":
        want_set = frozenset(want) if isinstance(want, list) else mask_to_cpus(bytes(want))
        return want_set == mask_to_cpus(bytes(have))
    return bool(want == have)


async def observe_and_plan(config: Config, machine: Machine, unit_dir: Path,
                           client: Systemd | None) -> Plan:
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
        await _plan_slice(plan, spec, client, machine.total_memory)
    await _plan_moves(plan, config, client)
    return plan


async def _plan_slice(plan: Plan, spec: SliceSpec, client: Systemd, total: int) -> None:
    unit = await client.properties(spec.unit)
    live = await client.properties(spec.unit, SLICE) if unit.get("LoadState") == "loaded" \
        else {}
    exp = spec.expected
    expected_bytes = {"MemoryMinScale": exp.memory_min, "MemoryLowScale": exp.memory_low,
                      "MemoryHighScale": exp.memory_high, "MemoryMaxScale": exp.memory_max}
    for dbus_name, value in spec.properties.items():
        name = dbus_name.removesuffix("Scale")
        have = live.get(name, MANAGED_DEFAULTS.get(name))
        if have is None:
            continue
        if _same(dbus_name, value, have, expected_bytes.get(dbus_name), total):
            continue
        after = _show(name, value) if not dbus_name.endswith("Scale") else \
            f"{value / (1 << 32) * 100:.4g}% of RAM"
        plan.properties.append(PropertyChange(spec.unit, name, dbus_name, value,
                                              _show(name, have), after))
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


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """temp file in the same directory, fsync, rename, fsync the directory:
    a reader (or a crash) sees the old file or the new one, never half.
    The temp file is created 0600 and gets ``mode`` before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.taucg-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # a drop-in directory we emptied


def clean_leftovers(unit_dir: Path) -> list[Path]:
    """Temp files from an apply that was killed between write and rename."""
    found = list(unit_dir.glob(".*.taucg-*")) + list(unit_dir.glob("*.d/.*.taucg-*"))
    for p in found:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return found


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


# --------------------------------------------------------------- verify ---


@dataclass(frozen=True, slots=True)
class Drift:
    unit: str
    file: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.unit}: {self.file} is {self.actual}, expected {self.expected}"


def _fmt_max(v: int | None) -> str:
    return "max" if v is None else str(v)


def _expectations(spec: SliceSpec, machine: Machine) -> list[tuple[str, str]]:
    """(file, expected text) for one slice, in the kernel's own notation."""
    exp = spec.expected
    out = [("memory.min", str(exp.memory_min)), ("memory.low", str(exp.memory_low))]
    if spec.tier is None:
        return out
    out += [
        ("memory.high", _fmt_max(exp.memory_high)),
        ("memory.max", _fmt_max(exp.memory_max)),
        ("cpu.weight", str(exp.cpu_weight)),
        ("cpu.max", f"{_fmt_max(exp.cpu_max_quota_usec)} 100000"),
        ("io.weight", f"default {exp.io_weight}"),
        ("pids.max", _fmt_max(exp.pids_max)),
    ]
    if exp.allowed_cpus is not None:
        out.append(("cpuset.cpus.effective",
                    format_cpus(set(exp.allowed_cpus.cpus & machine.online_cpus))))
    return out


def _matches(name: str, expected: str, text: str, spec: SliceSpec, machine: Machine) -> bool:
    if name.startswith("memory."):
        want, have = cgroupfs.parse_max(expected), cgroupfs.parse_max(text)
        if want is None or have is None:
            return want == have
        key = "memory_" + name.removeprefix("memory.")
        # The kernel rounds to pages; systemd rounds percentages of RAM its own way.
        slack = (max(2 * 4096, machine.total_memory // 200)
                 if key in spec.expected.memory_percent_keys else 4095)
        return abs(have - want) <= slack
    if name == "cpu.max":
        return (cgroupfs.parse_cpu_max(text).quota_usec
                == cgroupfs.parse_cpu_max(expected).quota_usec)
    if name == "io.weight":
        return cgroupfs.parse_io_weight(text) == cgroupfs.parse_io_weight(expected)
    if name == "cpuset.cpus.effective":
        return cgroupfs.parse_cpus_text(text) == cgroupfs.parse_cpus_text(expected)
    return text.strip() == expected


def verify(config: Config, machine: Machine) -> list[Drift]:
    """Reads the slices' cgroup files back and lists every difference."""
    drift: list[Drift] = []
    for spec in slice_specs(config, machine.total_memory):
        cg = cgroupfs.unit_cgroup(spec.unit, machine.cgroup_root)
        if not cg.is_dir():
            drift.append(Drift(spec.unit, "cgroup", str(cg), "missing (slice not started)"))
            continue
        for name, expected in _expectations(spec, machine):
            text = cgroupfs.read(cg, name)
            if text is None:
                drift.append(Drift(spec.unit, name, expected, "absent (controller not enabled)"))
            elif not _matches(name, expected, text, spec, machine):
                drift.append(Drift(spec.unit, name, expected, text.strip() or "(empty)"))
    return drift


# ----------------------------------------------------------------- lock ---


@contextlib.contextmanager
def apply_lock(path: Path = LOCK_PATH) -> Iterator[None]:
    """One apply at a time, machine-wide."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ApplyError(f"another taucg apply is running (pid {holder} holds {path}); "
                             "wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------- the whole flow ---


class ExecuteError(ApplyError):
    """Executing the plan failed; the files were rolled back and the
    message says what live state was left."""


@dataclass(slots=True)
class Applied:
    plan: Plan
    result: Result | None  # None when nothing needed doing
    restart_needed: list[str]
    drift: list[Drift]

    @property
    def summary(self) -> str:
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
                "restart_needed": self.restart_needed, "drift": [str(d) for d in self.drift]}


async def apply_now(config: Config, machine: Machine, unit_dir: Path, client: Systemd,
                    restart_moved: bool = False,
                    on_plan: Callable[[Plan], None] = lambda _p: None) -> Applied:
    """Lock, plan, execute when something differs, verify. Raises
    ApplyError (after rolling back files) when a step fails."""
    from taucg.actors.records import perf

    started = time.monotonic()
    with apply_lock():
        clean_leftovers(unit_dir)
        plan = await observe_and_plan(config, machine, unit_dir, client)
        on_plan(plan)
        result = None
        if plan.changed or (restart_moved and any(m.active for m in plan.moves)):
            try:
                result = await execute(plan, client, restart_moved)
            except ApplyError as exc:
                raise ExecuteError(str(exc)) from exc
        waiting = [m.unit for m in plan.moves if m.active and not restart_moved]
        done = Applied(plan, result, waiting, verify(config, machine))
    perf(config.logging, "apply", time.monotonic() - started, changed=result is not None,
         drift=len(done.drift))
    return done
