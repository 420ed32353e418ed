"""`taucg processes`, `taucg classify` and `taucg run`: processes and their tiers."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import TIER_NAMES
from taucg.faces.cli.common import (
    UserError,
    audit,
    cli,
    config_option,
    format_option,
    run_async,
    with_systemd,
)
from taucg.faces.cli.completion import complete_config_file, complete_pid, complete_tier
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Bytes, Output, Seconds, emit, emit_json

# ------------------------------------------------------------- processes ---


def _proc_rows(cfg: Any, tier: str | None, critical: bool) -> list[dict[str, Any]]:
    from taucg.model.tiers import tier_of
    from taucg.readers.procfs import (
        ProcessGone,
        owner_uid,
        read_cgroup,
        unit_of_cgroup,
        user_name,
    )
    from taucg.readers.sampler import Sampler

    wanted_units = set(cfg.crash_recovery.critical_units) if critical else None
    rows = []
    with Sampler() as sampler:
        for r in sampler.processes():
            try:
                cg = read_cgroup(r.pid)
                uid = owner_uid(r.pid)
            except ProcessGone:
                continue
            unit = unit_of_cgroup(cg)
            t = tier_of(cg)
            if tier is not None and t != tier:
                continue
            if wanted_units is not None and unit not in wanted_units:
                continue
            rows.append({"pid": r.pid, "ppid": r.ppid, "user": user_name(uid),
                         "state": r.state, "threads": r.threads, "rss_bytes": r.rss,
                         "cpu_seconds": round(r.cpu_seconds, 2), "tier": t, "unit": unit,
                         "comm": r.comm})
    return rows


def _tree(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    children: dict[int, list[dict[str, Any]]] = {}
    pids = {r["pid"] for r in rows}
    for r in rows:
        children.setdefault(r["ppid"] if r["ppid"] in pids else 0, []).append(r)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(ppid: int, depth: int) -> None:
        for r in sorted(children.get(ppid, []), key=lambda x: x["pid"]):
            out.append((depth, r))
            walk(r["pid"], depth + 1)

    walk(0, 0)
    return out


def _nested(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tree as JSON: each process with its ``children``; a process
    whose parent is not listed is a root."""
    nodes = {r["pid"]: {**r, "children": []} for r in rows}
    roots: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda x: x["pid"]):
        parent = nodes.get(r["ppid"]) if r["ppid"] != r["pid"] else None
        (parent["children"] if parent is not None else roots).append(nodes[r["pid"]])
    return roots


@cli.command("processes", epilog=EPILOGS["processes"])
@click.option("--critical", is_flag=True, help="only the critical units' processes")
@click.option("--tree", is_flag=True, help="show parent/child structure")
@click.option("--tier", type=click.Choice(TIER_NAMES), default=None,
              help="only processes in this tier", shell_complete=complete_tier)
@click.option("--why", type=int, default=None, metavar="PID",
              help="explain which rule matches PID, or why none does",
              shell_complete=complete_pid)
@format_option
@config_option
def processes_cmd(critical: bool, tree: bool, tier: str | None, why: int | None, fmt: Output,
                  config_path: str | None) -> None:
    """Processes with their tier and unit.

    --why PID explains which [[rules]] entry, or which ananicy rule (its
    file and line), matches a process, or why none does."""
    from taucg.actors.placement import is_candidate
    from taucg.model.ananicy import load_index
    from taucg.model.rules import classify
    from taucg.model.tiers import tier_of
    from taucg.readers.procfs import ProcessGone, facts

    cfg = load_config(config_path)
    if why is not None:
        try:
            f = facts(why)
        except ProcessGone:
            raise UserError(f"no process {why}") from None
        verdict = classify(cfg.rules, f, load_index(cfg))
        ok, reason = is_candidate(f)
        lines = verdict.explain()
        lines.append(f"currently in tier: {tier_of(f.cgroup) or 'none'} ({f.cgroup})")
        if verdict.tier and not ok:
            lines.append(f"placement would not move it: {reason}")
        if fmt.resolved == "json":
            emit_json("processes-why", {
                "pid": why, "tier": verdict.tier,
                "rule": verdict.rule.index if verdict.rule else None,
                "source": verdict.source,
                "current_tier": tier_of(f.cgroup), "cgroup": f.cgroup,
                "movable": ok, "reason": reason, "explanation": lines})
        else:
            click.echo("\n".join(lines))
        return
    rows = _proc_rows(cfg, tier, critical)
    if not rows and fmt.resolved != "json":
        where = (f" of the critical units ({', '.join(cfg.crash_recovery.critical_units)})"
                 if critical else f" in the {tier} tier" if tier else "")
        click.echo(f"no processes{where} are running")
        return
    ordered = _tree(rows) if tree else [(0, r) for r in rows]
    table = [[str(r["pid"]), str(r["ppid"]), r["user"], r["state"], Bytes(r["rss_bytes"]),
              Seconds(r["cpu_seconds"], 2), r["tier"] or "-", r["unit"] or "-",
              "  " * depth + r["comm"]] for depth, r in ordered]
    emit(fmt, ["PID", "PPID", "USER", "S", "RSS", "CPU", "TIER", "UNIT", "COMMAND"], table,
         {"tree": tree, "processes": _nested(rows) if tree else rows}, title="processes",
         schema="processes")


@cli.command("classify", epilog=EPILOGS["classify"])
@click.option("--dry-run", is_flag=True, help="show what would move, move nothing")
@click.option("--follow", is_flag=True,
              help="keep running: place each new process as it execs (proc connector)")
@format_option
@config_option
def classify_cmd(dry_run: bool, follow: bool, fmt: Output, config_path: str | None) -> None:
    """Place processes into tiers by their rules.

    One pass over the running processes; --follow then places each new one.
    -o json: one taucg.classify/1 document; with --follow, one
    taucg.classify-placement/1 document per line instead, as they happen."""
    from taucg.actors.placement import place_by_rules
    from taucg.model.ananicy import load_index
    from taucg.readers.sampler import EventsUnavailable, Sampler

    cfg = load_config(config_path)
    ananicy = load_index(cfg)
    if not cfg.rules and not ananicy:
        raise UserError("no [[rules]] and no [rule_sources] ananicy rules in the config: "
                        "nothing to classify")
    if not dry_run and os.geteuid() != 0:
        raise UserError("placing processes needs root; use --dry-run to see what would move")

    json_out = fmt.resolved == "json"
    placements: list[dict[str, Any]] = []

    def show(entry: dict[str, Any]) -> None:
        if json_out and follow:
            emit_json("classify-placement", {"dry_run": dry_run, **entry}, line=True)
            return
        if json_out:
            placements.append(entry)
            return
        what = ("would place" if dry_run else "placed" if entry["placed"] else "not placed")
        if "pinned" in entry:
            what = "would pin" if dry_run else "pinned (stays in its service)"
        extra = (entry.get("scope") or entry.get("refused") or entry.get("error")
                 or (f"to CPUs {entry['pinned']}" if "pinned" in entry else ""))
        click.echo(f"{what} {entry['pid']} ({entry['comm']}) in {entry['tier']} "
                   f"by {entry['rule']} {extra}".rstrip())

    async def run(client: Any) -> None:
        events = None
        if follow:
            try:
                events = Sampler().events()
            except EventsUnavailable as exc:
                raise UserError(str(exc)) from None
        with Sampler() as sampler:
            for r in sampler.processes():
                entry = await place_by_rules(cfg, client, r.pid, dry_run=dry_run,
                                             ananicy=ananicy)
                if entry:
                    show(entry)
        if events is None:
            return
        click.echo("classify: first pass done; following new processes (Ctrl-C stops)",
                   err=True)
        async for ev in events.arrivals():
            if ev.kind == "exec":
                entry = await place_by_rules(cfg, client, ev.pid, dry_run=dry_run,
                                             since=ev.timestamp, ananicy=ananicy)
                if entry:
                    show(entry)

    with contextlib.suppress(KeyboardInterrupt):
        if dry_run:
            run_async(run(None))
        else:
            with_systemd(run)
    if json_out and not follow:
        emit_json("classify", {"dry_run": dry_run, "placements": placements})


@cli.command("run", context_settings={"ignore_unknown_options": True},
             epilog=EPILOGS["run"])
@click.option("--tier", type=click.Choice(TIER_NAMES), required=True,
              shell_complete=complete_tier)
@click.option("--isolate", default=None, metavar="NS[,NS...]",
              help="namespaces: net, pid, mount, ipc, uts (or 'none'); default for low and "
                   "background when process_isolation = true: pid,mount,ipc,uts")
@click.option("--netns", default=None, metavar="NAME",
              help="join the named network namespace (ip netns) instead of loopback only")
@click.option("--memory", default=None, metavar="SIZE", help="MemoryMax, e.g. 512M")
@click.option("--cpu", default=None, metavar="PERCENT", help="CPUQuota, e.g. 50%")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              shell_complete=complete_config_file)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(tier: str, isolate: str | None, netns: str | None, memory: str | None,
            cpu: str | None, config_path: str | None, command: tuple[str, ...]) -> None:
    """Run a command in a tier (a systemd scope).

    COMMAND runs in a transient scope in the tier's slice; its exit status
    is taucg's."""
    import subprocess

    from taucg.actors.isolation import NAMESPACES
    from taucg.actors.placement import (
        admit,
        apply_priority,
        scope_limits,
        scope_name,
        tier_priority,
    )
    from taucg.config.values import parse_size
    from taucg.model import properties
    from taucg.model.tiers import slice_name

    cfg = load_config(config_path)
    if isolate is None:
        names = ({"pid", "mount", "ipc", "uts"} if cfg.process_management.process_isolation
                 and tier in ("low", "background") else set())
    elif isolate == "none":
        names = set()
    else:
        names = {n.strip() for n in isolate.split(",") if n.strip()}
        unknown = names - set(NAMESPACES)
        if unknown:
            raise click.BadParameter(f"unknown namespace {', '.join(sorted(unknown))}; "
                                     f"use {', '.join(NAMESPACES)} or none",
                                     param_hint="--isolate")
    limits = scope_limits(cfg)
    if memory is not None:
        try:
            size = parse_size(memory)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--memory") from None
        limits["memory_max"] = size
    if cpu is not None:
        try:
            pct = float(cpu.rstrip("%"))
        except ValueError:
            raise click.BadParameter(f"{cpu!r} is not a percentage like 50%",
                                     param_hint="--cpu") from None
        if pct <= 0:
            raise click.BadParameter("must be above 0%", param_hint="--cpu")
        limits["cpu_quota"] = pct
    adm = admit(cfg, tier)
    if not adm.allowed:
        raise UserError(adm.reason)
    if os.geteuid() != 0:
        raise UserError("taucg run needs root to create a scope in a system slice")
    if netns is not None:
        from taucg.actors.isolation import IsolationError, ensure_netns

        try:
            if ensure_netns(netns):
                click.echo(f"taucg run: created network namespace {netns} with a veth pair "
                           f"(host side tau-{netns}); it stays for later runs", err=True)
        except IsolationError as exc:
            raise UserError(str(exc)) from None
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-m", "taucg.actors.isolation", *(f"--{n}" for n in sorted(names)),
            *(["--netns", netns] if netns else []), "--gate-fd", str(read_fd), "--",
            *command]
    child = subprocess.Popen(argv, pass_fds=[read_fd])
    os.close(read_fd)

    run_scope = scope_name(tier, os.path.basename(command[0]), child.pid, "taucg-run")

    async def scope(client: Any) -> None:
        await client.start_transient(
            run_scope,
            {"Description": f"taucg run: {' '.join(command)[:200]}",
             "Slice": slice_name(tier), "PIDs": [child.pid],
             **properties.dbus_values(limits)}, mode="fail")

    try:
        with_systemd(scope)
        prio = tier_priority(tier, cfg.process_management.process_priority_levels)
        if prio:
            apply_priority(child.pid, prio)
    except BaseException:
        child.kill()
        child.wait()
        os.close(write_fd)
        raise
    os.write(write_fd, b"g")
    os.close(write_fd)
    audit(cfg.logging, "run", run_scope, after={"command": list(command), "tier": tier,
                                                "namespaces": sorted(names),
                                                **dict(properties.directives(limits))})
    while True:
        try:
            rc = child.wait()
            break
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT; wait for it
    raise click.exceptions.Exit(rc if rc >= 0 else 128 - rc)
