"""The tiers, live: what `taucg status` shows. Composes cgroupfs, the
cgroup sweep, the monitor's rates and apply's verify; no daemon needed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from taucg.config.schema import Config
from taucg.config.values import CpuSet, Size
from taucg.faces.render import Bytes, Cell, Percent, utc
from taucg.model.limits import limit_hits
from taucg.model.monitor import cgroup_cpu_percent
from taucg.model.properties import effective_files
from taucg.model.tiers import Drift, SliceSpec, slice_specs, verify
from taucg.readers import cgroupfs
from taucg.readers.machine import Machine
from taucg.readers.sampler import Sampler
from taucg.readers.samples import CgroupSample


@dataclass(slots=True)
class StatusReport:
    rows: list[list[Cell]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def _members(cg: Any) -> list[dict[str, Any]]:
    out = []
    for name in cgroupfs.children(cg):
        sub = cg / name
        try:
            tasks = cgroupfs.read(sub, "pids.current")
            count = int(tasks) if tasks and tasks.isdigit() else len(cgroupfs.procs(sub))
        except cgroupfs.CgroupError:
            continue  # stopped while we looked
        out.append({"unit": name, "tasks": count})
    return out


def _io_rate(a: CgroupSample | None, b: CgroupSample | None) -> tuple[float, float] | None:
    if a is None or b is None or a.io is None or b.io is None:
        return None
    dt = b.monotonic - a.monotonic
    if dt <= 0:
        return None
    return ((b.io.read_bytes - a.io.read_bytes) / dt, (b.io.write_bytes - a.io.write_bytes) / dt)


def _psi(s: CgroupSample) -> str:
    parts = []
    for p in (s.pressure_cpu, s.pressure_memory, s.pressure_io):
        parts.append("-" if p is None else f"{p.some.avg10:.1f}")
    return "/".join(parts)


def configured(values: Any) -> dict[str, Any]:
    """The tier's configured values as JSON: numbers with their unit in the
    key (``memory_max_bytes``, ``cpu_quota_percent``; a share of RAM is
    ``…_ram_percent``), null for infinity; unset keys are left out."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, Size):
            if value.percent is not None:
                out[f"{key}_ram_percent"] = value.percent
            else:
                out[f"{key}_bytes"] = value.bytes
        elif isinstance(value, CpuSet):
            out[key] = sorted(value.cpus)
        elif key == "cpu_quota":
            out["cpu_quota_percent"] = value
        elif value == "infinity":
            out[key] = None
        else:
            out[key] = value
    return out


def _governed_files(keys: Any) -> set[str]:
    from taucg.model.properties import BY_KEY

    return {f for k in keys if k in BY_KEY for f in BY_KEY[k].files}


def _tier_row(spec: SliceSpec, cg: Any, a: CgroupSample | None, b: CgroupSample,
              drift: list[Drift], governed: dict[str, str], frozen: bool
              ) -> tuple[list[Cell], dict[str, Any]]:
    members = _members(cg)
    cpu = cgroup_cpu_percent(a, b) if a is not None else None
    io = _io_rate(a, b)
    hits = limit_hits(a, b)
    effective = {name: cgroupfs.read(cg, name) for name in effective_files()}
    # What the governor holds differs from the config on purpose: not drift.
    held = _governed_files(governed)
    mine = [d for d in drift if d.unit == spec.unit and d.file not in held]
    name = spec.tier or "(all tiers)"
    limits = "as configured" if not mine else "DRIFT " + ", ".join(d.file for d in mine)
    if governed or frozen:
        limits = "governed: " + ", ".join(
            [f"{k} {v}" for k, v in governed.items()] + (["frozen"] if frozen else [])) + (
            "" if not mine else "; " + limits)
    row: list[Cell] = [
        name,
        "active",
        str(len(members)),
        "-" if b.pids_current is None else str(b.pids_current),
        Percent(cpu),
        Bytes(b.memory_current),
        "-" if io is None else (Bytes(io[0]), "/", Bytes(io[1], "/s")),
        _psi(b),
        hits.text(),
        limits,
    ]
    data = {
        "unit": spec.unit, "applied": True, "cgroup": str(cg), "members": members,
        "tasks": b.pids_current, "cpu_percent": cpu, "memory_bytes": b.memory_current,
        "io_read_bytes_per_second": None if io is None else io[0],
        "io_write_bytes_per_second": None if io is None else io[1],
        "pressure_some_avg10_percent": {
            k: (None if p is None else p.some.avg10)
            for k, p in (("cpu", b.pressure_cpu), ("memory", b.pressure_memory),
                         ("io", b.pressure_io))},
        "limit_hits": hits.to_dict(),
        "configured": configured(spec.values),
        "directives": dict(spec.directives),
        "governed": dict(governed),
        "frozen_by_governor": frozen,
        "effective_files": effective,
        "drift": [{"file": d.file, "expected": d.expected, "actual": d.actual} for d in mine],
    }
    return row, data


def zombies_by_tier(sampler: Sampler) -> dict[str, int]:
    from taucg.actors.zombies import find_zombies
    from taucg.model.tiers import tier_of
    from taucg.readers.procfs import ProcessGone, read_cgroup

    counts: dict[str, int] = {}
    for z in find_zombies(sampler.processes()):
        try:
            tier = tier_of(read_cgroup(z.pid))
        except ProcessGone:
            continue
        if tier is not None:
            counts[tier] = counts.get(tier, 0) + 1
    return counts


def collect(cfg: Config, interval: float) -> StatusReport:
    machine = Machine.probe()
    specs = slice_specs(cfg, machine.total_memory)
    paths = [cgroupfs.unit_cgroup(s.unit, machine.cgroup_root) for s in specs]
    with Sampler() as sampler:
        first = sampler.cgroups([str(p) for p in paths])
        time.sleep(interval)
        second = sampler.cgroups([str(p) for p in paths])
        zombies = zombies_by_tier(sampler)
    drift = verify(cfg, machine) if machine.controllers else []
    from taucg.actors.governor_state import load_state

    governor = load_state(cfg)
    held: dict[str, dict[str, str]] = governor.get("tiers") or {}
    frozen = set(governor.get("frozen") or [])
    from taucg.faces.forecasts import from_daemon

    report = StatusReport(data={"tiers": {}, "cgroup_v2": bool(machine.controllers),
                                "sampling": _sampling(cfg), "sampled_at": utc(time.time()),
                                "forecasts": from_daemon(cfg)})
    for spec, cg, a, b in zip(specs, paths, first, second, strict=True):
        key = spec.tier or "all"
        if b is None:
            why = ("no cgroup v2 hierarchy here" if not machine.controllers
                   else "slice not started: run 'taucg apply'")
            report.rows.append([spec.tier or "(all tiers)", "not applied", "-", "-", "-", "-",
                                "-", "-", "-", "-", why])
            report.data["tiers"][key] = {"unit": spec.unit, "applied": False,
                                         "cgroup": str(cg), "reason": why,
                                         "configured": configured(spec.values),
                                         "directives": dict(spec.directives)}
            continue
        row, data = _tier_row(spec, cg, a, b, drift, held.get(spec.tier or "", {}),
                              (spec.tier or "") in frozen)
        count = sum(zombies.values()) if spec.tier is None else zombies.get(spec.tier, 0)
        row.insert(8, str(count))
        data["zombies"] = count
        report.rows.append(row)
        report.data["tiers"][key] = data
    return report


def _sampling(cfg: Config) -> dict[str, Any]:
    """The daemon's sweep interval in use, when one answers at once."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    try:
        ping = call(cfg.daemon.socket_path, "ping", timeout=2.0)
    except (DaemonNotRunning, DaemonError, OSError, ValueError):
        return {"daemon": False, "interval_seconds": None}
    every = ping.get("interval_in_use_seconds") or ping.get("interval_seconds")
    return {"daemon": True,
            "interval_seconds": every if isinstance(every, int | float) else None}
