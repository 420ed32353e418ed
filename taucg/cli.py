"""The `taucg` command line (also installed as `tau-monitor-cli`).

Each command parses, calls the layers below and renders; nothing here holds
logic another face would need. Heavy modules are imported inside the
commands that use them, so `taucg --help` and `taucg config` stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from taucg import __version__
from taucg.config import (
    BUILTIN,
    TIER_NAMES,
    Config,
    ConfigError,
    flatten,
    source_of,
    to_dict,
)
from taucg.config import (
    load as load_config,
)
from taucg.render import FORMATS, emit, resolve_format
from taucg.values import human_bytes


def audit(settings: Any, action: str, target: str, **fields: Any) -> None:
    """logs.audit, imported on first use: most commands never write one, and
    the JSON formatter and rotating handlers cost every start-up."""
    from taucg.logs import audit as write

    write(settings, action, target, **fields)


class UserError(click.ClickException):
    """A problem the user can fix; printed without a traceback, exit 1."""


class TaucgGroup(click.Group):
    """Turns expected failures into one clear message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"taucg: {problem}", err=True)
            ctx.exit(2)
        except PermissionError as exc:
            name = exc.filename or "a system file"
            click.echo(f"taucg: permission denied on {name}; run as root (sudo taucg ...)",
                       err=True)
            ctx.exit(1)


format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
    help="table on a terminal, tab-separated when piped, or json",
)
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="config file (default: $TAUCG_CONFIG, then /etc/taucg/taucg.toml, then built-in)",
)


@click.group(cls=TaucgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taucg")
def cli() -> None:
    """taucg: cgroup v2 resource tiers on systemd."""


# ---------------------------------------------------------------- config ---

SECTION_FLAGS: dict[str, tuple[str, ...]] = {
    "monitoring": ("resource_monitoring", "health_checking", "logging", "sampler", "daemon"),
    "resources": ("process_management", "rules"),
    "recovery": ("crash_recovery", "recovery"),
    "tiers": ("tiers",),
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return str(value)


@cli.group("config", invoke_without_command=True)
@click.option("--monitoring", is_flag=True, help="resource monitoring, health checks, logging")
@click.option("--resources", is_flag=True, help="process management and placement rules")
@click.option("--recovery", is_flag=True, help="crash recovery")
@click.option("--tiers", is_flag=True, help="the five tiers")
@format_option
@config_option
@click.pass_context
def config_cmd(ctx: click.Context, monitoring: bool, resources: bool, recovery: bool,
               tiers: bool, fmt: str, config_path: str | None) -> None:
    """Show the effective config and where each value came from."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = load_config(config_path)
    chosen = [name for name, on in (("monitoring", monitoring), ("resources", resources),
                                    ("recovery", recovery), ("tiers", tiers)) if on]
    sections = [s for name in (chosen or SECTION_FLAGS) for s in SECTION_FLAGS[name]]
    data = to_dict(cfg)
    shown = {s: data[s] for s in sections if s in data}
    rows = [[key, _show(value), source_of(cfg, key)] for key, value in flatten(shown)]
    emit(fmt, ["KEY", "VALUE", "SOURCE"], rows,
         {"file": cfg.file, "config": shown,
          "sources": {k: source_of(cfg, k) for k, _ in flatten(shown)}},
         title=f"config: {cfg.file or BUILTIN}")


@config_cmd.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE; exit 2 with one line per problem."""
    cfg: Config = load_config(file)
    overridden = sum(1 for src in cfg.sources.values() if src == file)
    click.echo(f"{file}: OK ({overridden} keys set over the built-in default)")


# ------------------------------------------------------------- resources ---


@cli.command("resources")
@click.option("--cpu", "want", flag_value="cpu", multiple=True, help="CPU use, load, switches")
@click.option("--memory", "want", flag_value="memory", multiple=True, help="memory and swap")
@click.option("--disk", "want", flag_value="disk", multiple=True,
              help="filesystem usage and disk IO rates")
@click.option("--network", "want", flag_value="network", multiple=True,
              help="links, addresses and traffic")
@click.option("--temperature", "want", flag_value="temperature", multiple=True,
              help="thermal zones and hwmon sensors")
@click.option("--pressure", "want", flag_value="pressure", multiple=True,
              help="pressure stall information")
@click.option("--watch", type=click.FloatRange(0.1, 86400), default=None, metavar="SECONDS",
              help="refresh every SECONDS until interrupted (JSON: one object per line)")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@format_option
@config_option
def resources_cmd(want: tuple[str, ...], watch: float | None, interval: float, fmt: str,
                  config_path: str | None) -> None:
    """Live CPU, memory, disk, network, temperature and pressure.

    Read directly from the kernel: no daemon needed, works unprivileged.
    With no section flag, every section is shown."""
    from taucg.resources import SECTIONS, build, sample_pair
    from taucg.sampler import Sampler

    cfg = load_config(config_path)
    sections = [s for s in SECTIONS if s in want] or list(SECTIONS)
    kind = resolve_format(fmt)
    headers = ["AREA", "ITEM", "VALUE", "NOTE"]
    with Sampler() as sampler:
        prev, cur = sample_pair(sampler, interval if watch is None else min(interval, watch))
        while True:
            rep = build(prev, cur, sections, cfg.resource_monitoring)
            if watch is not None and kind == "json":
                click.echo(json.dumps(rep.data, default=str))
            else:
                if watch is not None and kind == "table":
                    click.echo(f"--- {time.strftime('%H:%M:%S')} ---")
                emit(kind, headers, rep.rows, rep.data, title="resources")
            if watch is None:
                return
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                return
            prev, cur = cur, sampler.system()


# ----------------------------------------------------------------- apply ---

DRY_RUN_CHANGES = 10  # --dry-run exit status when something would change


def _run_async(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


async def _connect(required: bool) -> Any:
    from taucg.systemd import Systemd, SystemdUnavailable

    try:
        return await Systemd().connect()
    except SystemdUnavailable as exc:
        if required:
            raise UserError(str(exc)) from None
        return None


def _file_diff(change: Any) -> list[str]:
    import difflib

    before = (change.before or "").splitlines()
    after = (change.after or "").splitlines()
    return [line for line in difflib.unified_diff(before, after, "before", "after", lineterm="",
                                                  n=0) if not line.startswith(("---", "+++"))]


def _print_plan(plan: Any, fmt: str) -> None:
    kind = resolve_format(fmt)
    if kind == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2))
        return
    for f in plan.files:
        click.echo(f"{f.action:<7} {f.path}")
        for line in _file_diff(f):
            if not line.startswith("@@"):
                click.echo(f"        {line}")
    for p in plan.properties:
        click.echo(f"set     {p.unit} {p.name}: {p.before} -> {p.after}")
    for unit in plan.start:
        click.echo(f"start   {unit}")
    for m in plan.moves:
        state = "running: restart needed" if m.active else "not running"
        click.echo(f"move    {m.unit}: {m.before} -> {m.after} ({state})")
    for note in plan.notes:
        click.echo(f"note    {note}")


@cli.command("apply")
@click.option("--dry-run", is_flag=True,
              help=f"print the plan and exit: 0 if nothing would change, {DRY_RUN_CHANGES} if "
                   "something would")
@click.option("--restart-moved", is_flag=True,
              help="restart running services whose tier changed (otherwise they are listed)")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/etc/systemd/system"), show_default=True, envvar="TAUCG_UNIT_DIR",
              help="where slice units and drop-ins are written")
@format_option
@config_option
def apply_cmd(dry_run: bool, restart_moved: bool, unit_dir: Path, fmt: str,
              config_path: str | None) -> None:
    """Make the five tier slices match the config, then verify them.

    Plans first (files, live properties, slices to start, services that
    change tier); applying again with nothing changed writes nothing."""
    from taucg import apply as ap

    cfg = load_config(config_path)
    machine = ap.Machine.probe()
    problems = ap.preflight(cfg, machine)
    if problems and not dry_run:
        for p in problems:
            click.echo(f"taucg: {p}", err=True)
        raise click.exceptions.Exit(2)
    if not dry_run and os.geteuid() != 0:
        raise UserError("taucg apply needs root to write units and change systemd; run it "
                        "with sudo, or use --dry-run to see the plan")

    async def run() -> int:
        client = await _connect(required=not dry_run)
        try:
            if dry_run:
                plan = await ap.observe_and_plan(cfg, machine, unit_dir, client)
                _print_plan(plan, fmt)
                if not plan.changed and resolve_format(fmt) != "json":
                    click.echo("nothing would change")
                for p in problems:  # shown with the plan; a real apply would stop here
                    click.echo(f"taucg: {p}", err=True)
                if problems:
                    return 2
                return DRY_RUN_CHANGES if plan.changed else 0
            show = (lambda plan: _print_plan(plan, fmt)) if resolve_format(fmt) != "json" \
                else (lambda _plan: None)
            try:
                done = await ap.apply_now(cfg, machine, unit_dir, client, restart_moved, show)
            except ap.ExecuteError as exc:
                audit(cfg.logging, "apply", str(unit_dir), result=f"failed: {exc}",
                      config=cfg.file)
                raise
            for record in done.audit_records(cfg.file):
                audit(cfg.logging, **record)
            if resolve_format(fmt) == "json":
                click.echo(json.dumps(done.to_dict(), indent=2))
            else:
                click.echo(done.summary)
                if done.restart_needed:
                    click.echo(f"restart needed to change tier: {', '.join(done.restart_needed)} "
                               "(run again with --restart-moved)")
                for d in done.drift:
                    click.echo(f"drift   {d}")
                if not done.drift:
                    click.echo("verified: every tier's cgroup files match the config")
            return 1 if done.drift else 0
        except ap.ApplyError as exc:
            raise UserError(str(exc)) from None
        finally:
            if client is not None:
                await client.close()

    raise click.exceptions.Exit(_run_async(run()))


# ---------------------------------------------------------------- status ---


@cli.command("status")
@click.option("--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True,
              help="seconds between the two samples that rates come from")
@format_option
@config_option
def status_cmd(interval: float, fmt: str, config_path: str | None) -> None:
    """Each tier live: members, CPU, memory, IO, pids, pressure, limits and drift.

    Reads cgroupfs directly; no daemon needed."""
    from taucg.status import collect

    cfg = load_config(config_path)
    report = collect(cfg, interval)
    emit(fmt, ["TIER", "STATE", "UNITS", "TASKS", "CPU", "MEMORY", "IO R/W", "PSI C/M/I",
               "ZOMBIES", "LIMITS"], report.rows, report.data, title="tiers")


# ------------------------------------------------------------- processes ---


def _proc_rows(cfg: Any, tier: str | None, critical: bool) -> list[dict[str, Any]]:
    from taucg import cgroupfs
    from taucg.procs import tier_of
    from taucg.rules import _user_name
    from taucg.sampler import Sampler

    wanted_units = set(cfg.crash_recovery.critical_units) if critical else None
    rows = []
    with Sampler() as sampler:
        for r in sampler.processes():
            cg = cgroupfs.pid_cgroup(r.pid)
            unit = None
            if cg:
                parts = [p for p in cg.strip("/").split("/") if "." in p]
                unit = parts[-1] if parts else None
            t = tier_of(cg)
            if tier is not None and t != tier:
                continue
            if wanted_units is not None and unit not in wanted_units:
                continue
            try:
                uid = os.stat(f"/proc/{r.pid}").st_uid
            except OSError:
                continue
            rows.append({"pid": r.pid, "ppid": r.ppid, "user": _user_name(uid),
                         "state": r.state, "threads": r.threads, "rss": r.rss,
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


@cli.command("processes")
@click.option("--critical", is_flag=True, help="only the critical units' processes")
@click.option("--tree", is_flag=True, help="show parent/child structure")
@click.option("--tier", type=click.Choice(TIER_NAMES), default=None,
              help="only processes in this tier")
@click.option("--why", type=int, default=None, metavar="PID",
              help="explain which rule matches PID, or why none does")
@format_option
@config_option
def processes_cmd(critical: bool, tree: bool, tier: str | None, why: int | None, fmt: str,
                  config_path: str | None) -> None:
    """Processes with their tier and unit; --why explains the rules."""
    from taucg.procs import is_candidate, tier_of
    from taucg.rules import ProcessGone, classify, facts

    cfg = load_config(config_path)
    if why is not None:
        try:
            f = facts(why)
        except ProcessGone:
            raise UserError(f"no process {why}") from None
        verdict = classify(cfg.rules, f)
        ok, reason = is_candidate(f)
        lines = verdict.explain()
        lines.append(f"currently in tier: {tier_of(f.cgroup) or 'none'} ({f.cgroup})")
        if verdict.tier and not ok:
            lines.append(f"placement would not move it: {reason}")
        if resolve_format(fmt) == "json":
            click.echo(json.dumps({"pid": why, "tier": verdict.tier,
                                   "rule": verdict.rule.index if verdict.rule else None,
                                   "movable": ok, "reason": reason, "explanation": lines},
                                  indent=2))
        else:
            click.echo("\n".join(lines))
        return
    rows = _proc_rows(cfg, tier, critical)
    if not rows and resolve_format(fmt) != "json":
        where = (f" of the critical units ({', '.join(cfg.crash_recovery.critical_units)})"
                 if critical else f" in the {tier} tier" if tier else "")
        click.echo(f"no processes{where} are running")
        return
    ordered = _tree(rows) if tree else [(0, r) for r in rows]
    table = [[str(r["pid"]), str(r["ppid"]), r["user"], r["state"], human_bytes(r["rss"]),
              f'{r["cpu_seconds"]:.2f}', r["tier"] or "-", r["unit"] or "-",
              "  " * depth + r["comm"]] for depth, r in ordered]
    emit(fmt, ["PID", "PPID", "USER", "S", "RSS", "CPU s", "TIER", "UNIT", "COMMAND"], table,
         [r for _, r in ordered], title="processes")


@cli.command("classify")
@click.option("--dry-run", is_flag=True, help="show what would move, move nothing")
@click.option("--follow", is_flag=True,
              help="keep running: place each new process as it execs (proc connector)")
@format_option
@config_option
def classify_cmd(dry_run: bool, follow: bool, fmt: str, config_path: str | None) -> None:
    """Place processes that match [[rules]] into their tiers (one pass)."""
    from taucg.procs import place_by_rules
    from taucg.sampler import EventsUnavailable, Sampler

    cfg = load_config(config_path)
    if not cfg.rules:
        raise UserError("no [[rules]] in the config: nothing to classify")
    if not dry_run and os.geteuid() != 0:
        raise UserError("placing processes needs root; use --dry-run to see what would move")

    def show(entry: dict[str, Any]) -> None:
        if resolve_format(fmt) == "json":
            click.echo(json.dumps(entry))
            return
        what = ("would place" if dry_run else "placed" if entry["placed"] else "not placed")
        if "pinned" in entry:
            what = "would pin" if dry_run else "pinned (stays in its service)"
        extra = (entry.get("scope") or entry.get("refused") or entry.get("error")
                 or (f"to CPUs {entry['pinned']}" if "pinned" in entry else ""))
        click.echo(f"{what} {entry['pid']} ({entry['comm']}) in {entry['tier']} "
                   f"by {entry['rule']} {extra}".rstrip())

    async def run() -> None:
        client = None if dry_run else await _connect(required=True)
        try:
            events = None
            if follow:
                try:
                    events = Sampler().events()
                except EventsUnavailable as exc:
                    raise UserError(str(exc)) from None
            with Sampler() as sampler:
                for r in sampler.processes():
                    entry = await place_by_rules(cfg, client, r.pid, dry_run=dry_run)
                    if entry:
                        show(entry)
            if events is None:
                return
            async for ev in events.arrivals():
                if ev.kind == "exec":
                    entry = await place_by_rules(cfg, client, ev.pid, dry_run=dry_run,
                                                 since=ev.timestamp)
                    if entry:
                        show(entry)
        finally:
            if client is not None:
                await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        _run_async(run())


@cli.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--tier", type=click.Choice(TIER_NAMES), required=True)
@click.option("--isolate", default=None, metavar="NS[,NS...]",
              help="namespaces: net, pid, mount, ipc, uts (or 'none'); default for low and "
                   "background when process_isolation = true: pid,mount,ipc,uts")
@click.option("--netns", default=None, metavar="NAME",
              help="join the named network namespace (ip netns) instead of loopback only")
@click.option("--memory", default=None, metavar="SIZE", help="MemoryMax, e.g. 512M")
@click.option("--cpu", default=None, metavar="PERCENT", help="CPUQuota, e.g. 50%")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(tier: str, isolate: str | None, netns: str | None, memory: str | None,
            cpu: str | None, config_path: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND in a tier, through a systemd scope, and return its exit status."""
    import subprocess

    from taucg.isolation import NAMESPACES
    from taucg.procs import admit, apply_priority, scope_limits, scope_name, tier_priority
    from taucg.tiers import slice_name
    from taucg.values import parse_size

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
        limits["MemoryMax"] = (1 << 64) - 1 if size.bytes is None else size.bytes
    if cpu is not None:
        try:
            pct = float(cpu.rstrip("%"))
        except ValueError:
            raise click.BadParameter(f"{cpu!r} is not a percentage like 50%",
                                     param_hint="--cpu") from None
        if pct <= 0:
            raise click.BadParameter("must be above 0%", param_hint="--cpu")
        limits["CPUQuotaPerSecUSec"] = round(pct * 10_000)
    adm = admit(cfg, tier)
    if not adm.allowed:
        raise UserError(adm.reason)
    if os.geteuid() != 0:
        raise UserError("taucg run needs root to create a scope in a system slice")
    if netns is not None:
        from taucg.isolation import IsolationError, ensure_netns

        try:
            if ensure_netns(netns):
                click.echo(f"taucg run: created network namespace {netns} with a veth pair "
                           f"(host side tau-{netns}); it stays for later runs", err=True)
        except IsolationError as exc:
            raise UserError(str(exc)) from None
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-m", "taucg.isolation", *(f"--{n}" for n in sorted(names)),
            *(["--netns", netns] if netns else []), "--gate-fd", str(read_fd), "--",
            *command]
    child = subprocess.Popen(argv, pass_fds=[read_fd])
    os.close(read_fd)

    run_scope = scope_name(tier, os.path.basename(command[0]), child.pid, "taucg-run")

    async def scope() -> None:
        client = await _connect(required=True)
        try:
            await client.start_transient(
                run_scope,
                {"Description": f"taucg run: {' '.join(command)[:200]}",
                 "Slice": slice_name(tier), "PIDs": [child.pid], **limits}, mode="fail")
        finally:
            await client.close()

    try:
        _run_async(scope())
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
                                                "namespaces": sorted(names), **limits})
    while True:
        try:
            rc = child.wait()
            break
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT; wait for it
    raise click.exceptions.Exit(rc if rc >= 0 else 128 - rc)


# ---------------------------------------------------------------- health ---


def _show_health(health: Any, detailed: bool, fmt: str) -> None:
    kind = resolve_format(fmt)
    if kind == "json":
        click.echo(json.dumps(health.to_dict(), indent=2))
        return
    verdict = "healthy" if health.healthy else f"ALERT: below the threshold {health.threshold:g}"
    rows = []
    for c in health.checks:
        score = "n/a" if c.score is None else f"{c.score:.2f}"
        row = [c.name, score, f"{health.weights.get(c.name, 0):g}", c.value]
        if detailed:
            row.append(c.detail)
        rows.append(row)
    headers = ["CHECK", "SCORE", "WEIGHT", "VALUE"] + (["DETAIL"] if detailed else [])
    emit(kind, headers, rows, health.to_dict(),
         title=f"health {health.score:.2f} ({verdict})")
    if kind != "table":
        click.echo(f"score\t{health.score:.3f}\t{verdict}")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")


@cli.command("health")
@click.option("--detailed", is_flag=True, help="show what each check looked at")
@format_option
@config_option
def health_cmd(detailed: bool, fmt: str, config_path: str | None) -> None:
    """A 0.0-1.0 health score from weighted checks, with recommendations.

    Exit 0 when the score is at or above health_score_threshold, 1 below."""
    from taucg.health import evaluate

    health = evaluate(load_config(config_path))
    _show_health(health, detailed, fmt)
    raise click.exceptions.Exit(0 if health.healthy else 1)


# -------------------------------------------------------------- recovery ---


@cli.group("recovery", invoke_without_command=True)
@click.option("--history", "show_history", is_flag=True,
              help="crash history: counts per unit, MTBF, last failure")
@click.option("--unit", default=None, help="only this unit (with --history)")
@click.option("--session", "show_session", is_flag=True,
              help="the last session snapshot (units, states, state blobs)")
@click.option("--watch", is_flag=True,
              help="run the recovery watcher in the foreground until interrupted")
@format_option
@config_option
@click.pass_context
def recovery_cmd(ctx: click.Context, show_history: bool, unit: str | None,
                 show_session: bool, watch: bool, fmt: str, config_path: str | None) -> None:
    """Critical units, their recovery policy and whether systemd or taucg restarts them."""
    if ctx.invoked_subcommand is not None:
        return
    from taucg import recovery as rec
    from taucg.store import History, StoreError
    from taucg.values import unit_name

    cfg = load_config(config_path)
    if show_session:
        from taucg.session import load_snapshot, state_dir

        snap = load_snapshot(cfg)
        if snap is None:
            click.echo(f"no session snapshot yet ({state_dir(cfg) / 'session.json'}); the "
                       "recovery watcher takes one every 30 s")
            return
        rows = [[u, s["active_state"], s["sub_state"]] for u, s in snap["units"].items()]
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap["time"]))
        blobs = ", ".join(snap["blobs"]) or "none"
        emit(fmt, ["UNIT", "STATE", "SUB"], rows, snap,
             title=f"session snapshot {taken}; state blobs: {blobs}")
        return
    if show_history:
        path = rec.history_path(cfg)
        if not path.exists():
            click.echo(f"no crash history yet ({path})")
            return
        try:
            history = History(path)
        except StoreError as exc:
            raise UserError(str(exc)) from None
        wanted = unit_name(unit) if unit else None
        stats = history.stats(wanted)
        events = history.events(wanted, limit=50)
        data = {"units": [{
            "unit": s.unit, "failures": s.failures, "first": s.first, "last": s.last,
            "last_result": s.last_result, "mtbf_seconds": s.mtbf_seconds} for s in stats],
            "events": [{"time": e.time, "unit": e.unit, "result": e.result,
                        "exit_code": e.exit_code, "signal": e.signal, "attempt": e.attempt,
                        "action": e.action, "delay": e.delay, "outcome": e.outcome}
                       for e in events]}
        rows = [[s.unit, str(s.failures),
                 "-" if s.mtbf_seconds is None else f"{s.mtbf_seconds:.0f}s",
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.last)), s.last_result]
                for s in stats]
        emit(fmt, ["UNIT", "FAILURES", "MTBF", "LAST FAILURE", "LAST RESULT"], rows, data,
             title="crash history")
        return
    if watch:
        if os.geteuid() != 0:
            raise UserError("the recovery watcher restarts units; run it as root")

        async def watch_forever() -> None:
            from taucg.store import History

            client = await _connect(required=True)
            history = History(rec.history_path(cfg))
            watcher = rec.Recovery(cfg, client, history,
                                   log=lambda m: click.echo(f"recovery: {m}", err=True))
            click.echo(f"recovery: watching {', '.join(watcher.units)}", err=True)
            from taucg.systemd import Systemd

            try:
                await watcher.run_forever(lambda: Systemd().connect())
            finally:
                await watcher.client.close()

        with contextlib.suppress(KeyboardInterrupt):
            _run_async(watch_forever())
        return

    async def overview() -> list[dict[str, Any]]:
        client = await _connect(required=False)
        try:
            return await rec.unit_overview(cfg, client)
        finally:
            if client is not None:
                await client.close()

    units = _run_async(overview())
    rows = [[u["unit"], str(u.get("state", "?")), u["strategy"], str(u["max_attempts"]),
             str(u.get("systemd_restart", "-")), str(u.get("handled_by", "-"))] for u in units]
    emit(fmt, ["UNIT", "STATE", "STRATEGY", "ATTEMPTS", "RESTART=", "RESTARTED BY"], rows,
         {"units": units, "chain": list(cfg.recovery.chain),
          "systemd_restart": cfg.recovery.systemd_restart}, title="recovery")


@recovery_cmd.command("save-state")
@click.argument("unit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def save_state_cmd(unit: str, file: Path, config_path: str | None) -> None:
    """Keep FILE as UNIT's state blob; it is handed back after a recovery."""
    from taucg.session import HANDBACK_DIR, save_blob
    from taucg.values import check_unit_name

    cfg = load_config(config_path)
    try:
        name = check_unit_name(unit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="UNIT") from None
    dest = save_blob(cfg, name, file)
    audit(cfg.logging, "save-state", name, after=str(dest), size=file.stat().st_size)
    click.echo(f"saved {file} for {name} as {dest}; after a recovery it is handed back at "
               f"{HANDBACK_DIR / name}")


@recovery_cmd.command("leave-safe-mode")
@config_option
def leave_safe_mode_cmd(config_path: str | None) -> None:
    """Thaw the Low and Background tiers frozen by safe mode."""
    from taucg.recovery import leave_safe_mode

    async def run() -> list[str]:
        client = await _connect(required=True)
        try:
            return await leave_safe_mode(client)
        finally:
            await client.close()

    thawed = _run_async(run())
    if thawed:
        audit(load_config(config_path).logging, "leave-safe-mode", ", ".join(thawed),
              before="frozen", after="thawed")
    click.echo(f"thawed: {', '.join(thawed) or 'nothing was frozen'}")


# ---------------------------------------------------------------- daemon ---

DAEMON_NOT_RUNNING = 3  # exit status of a command that needs the daemon when none runs


def _ask(cfg: Config, method: str, **params: Any) -> Any:
    """One request to the daemon; its absence or refusal is a clear error."""
    from taucg.api import DaemonError, DaemonNotRunning, call

    try:
        return call(cfg.daemon.socket_path, method, params)
    except DaemonNotRunning as exc:
        click.echo(f"taucg: {exc}", err=True)
        raise click.exceptions.Exit(DAEMON_NOT_RUNNING) from None
    except DaemonError as exc:
        raise UserError(f"the daemon refused {method}: {exc}") from None


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@cli.command("daemon")
@click.option("--detach", is_flag=True,
              help="fork into the background and write [daemon] pidfile (under systemd, "
                   "use 'systemctl start taucg' instead)")
@config_option
def daemon_cmd(detach: bool, config_path: str | None) -> None:
    """Run the taucg daemon: sampling, placement, recovery, health, the
    socket API and metrics. Stops on SIGTERM; SIGHUP reloads the config."""
    cfg = load_config(config_path)
    # Reloads look the config up again the same way, so a file created
    # after start is found on SIGHUP.
    path = config_path
    if detach:
        from taucg.detach import DetachError, detach_and_run

        try:
            rc = detach_and_run(cfg, path)
        except DetachError as exc:
            raise UserError(str(exc)) from None
        raise click.exceptions.Exit(rc)
    from taucg.daemon import run

    raise click.exceptions.Exit(run(cfg, path, to_stderr=True))


@cli.command("logs")
@click.option("--stats", is_flag=True, help="sizes, records per level and rotated files")
@click.option("--recent", is_flag=True, help="the most recent records")
@click.option("--count", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="how many records with --recent")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error", "critical"]),
              default=None, help="with --recent: only records at or above this level")
@click.option("--log", "which", type=click.Choice(["main", "audit", "performance"]),
              default="main", show_default=True, help="which log --recent reads")
@format_option
@config_option
def logs_cmd(stats: bool, recent: bool, count: int, level: str | None, which: str, fmt: str,
             config_path: str | None) -> None:
    """The daemon's logs (through its socket): --stats and --recent.

    With neither flag, --stats. Exit 3 when the daemon is not running."""
    cfg = load_config(config_path)
    kind = resolve_format(fmt)
    out: dict[str, Any] = {}
    if stats or not recent:
        out["stats"] = _ask(cfg, "logs.stats")
    if recent:
        out["recent"] = _ask(cfg, "logs.recent", count=count, level=level or "debug",
                             log=which)
    if kind == "json":
        click.echo(json.dumps(out, indent=2))
        return
    if "stats" in out:
        rows = [[s["log"], s["path"], human_bytes(s["size"]) if s["exists"] else "absent",
                 str(s["records"]),
                 " ".join(f"{k}={v}" for k, v in sorted(s["levels"].items())) or "-",
                 f"{s['rotated']} ({human_bytes(s['rotated_bytes'])})",
                 _when(s["oldest_rotated"])] for s in out["stats"]]
        emit(fmt, ["LOG", "PATH", "SIZE", "RECORDS", "LEVELS", "ROTATED", "OLDEST ROTATED"],
             rows, out["stats"], title="logs (records and levels: current file)")
    for rec in out.get("recent", []):
        fields = {k: v for k, v in rec.items() if k not in ("time", "level", "logger", "message")}
        extra = f"  {json.dumps(fields, default=str)}" if fields else ""
        click.echo(f"{rec.get('time', '?')} {rec.get('level', '?'):<8} "
                   f"{rec.get('message', '')}{extra}")


@cli.command("alerts")
@click.option("--count", type=click.IntRange(1, 200), default=50, show_default=True)
@format_option
@config_option
def alerts_cmd(count: int, fmt: str, config_path: str | None) -> None:
    """Threshold alerts the daemon raised and cleared (exit 3: no daemon)."""
    cfg = load_config(config_path)
    data = _ask(cfg, "alerts", count=count)
    rows = [[_when(a["time"]), a["state"], a["metric"], f"{a['value']:g}",
             f"{a['threshold']:g}"] for a in data["recent"]]
    emit(fmt, ["TIME", "STATE", "METRIC", "VALUE", "THRESHOLD"], rows, data,
         title=f"alerts; active: {', '.join(data['active']) or 'none'}")


@cli.command("history")
@click.option("--metric", default="", help="one metric (default: all, summarised)")
@format_option
@config_option
def history_cmd(metric: str, fmt: str, config_path: str | None) -> None:
    """The daemon's metric history and trends; it survives daemon restarts
    (exit 3: no daemon)."""
    cfg = load_config(config_path)
    data = _ask(cfg, "history", metric=metric)
    if metric and resolve_format(fmt) != "json":
        points = data["metrics"][metric]["points"]
        emit(fmt, ["TIME", metric.upper()], [[_when(t), f"{v:.2f}"] for t, v in points], data)
        return
    rows = []
    for name, m in data["metrics"].items():
        pts = m["points"]
        trend = m["trend_per_second"]
        rows.append([name, str(len(pts)), _when(pts[0][0]) if pts else "-",
                     f"{pts[-1][1]:.2f}" if pts else "-",
                     "-" if trend is None else f"{trend * 60:+.3f}/min"])
    emit(fmt, ["METRIC", "POINTS", "SINCE", "LAST", "TREND"], rows, data,
         title=f"history (trend over {data['window_seconds']} s)")


# ------------------------------------------------------------ entry points ---


def main() -> None:
    name = "tau-monitor-cli" if sys.argv[0].endswith("tau-monitor-cli") else "taucg"
    try:
        cli(prog_name=name)
    except BrokenPipeError:
        # Output piped into head(1) and the like: stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tau-monitor")
@click.option("--foreground", is_flag=True,
              help="run the daemon in the foreground (as 'taucg daemon')")
@click.option("--daemon", "detach", is_flag=True,
              help="fork into the background and write [daemon] pidfile; under systemd use "
                   "'systemctl start taucg' instead")
@click.option("--check", is_flag=True,
              help="run one health check; exit 0 if healthy, 1 below the threshold")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def tau_monitor(ctx: click.Context, foreground: bool, detach: bool, check: bool,
                config_path: str | None) -> None:
    """tau-monitor: the taucg daemon under its older name."""
    if foreground + detach + check != 1:
        raise click.UsageError("choose one of --foreground, --daemon or --check")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"tau-monitor: {problem}", err=True)
        raise click.exceptions.Exit(2) from None
    if not check:
        ctx.invoke(daemon_cmd, detach=detach, config_path=config_path)
        return
    from taucg.health import evaluate

    health = evaluate(cfg)
    verdict = "healthy" if health.healthy else "unhealthy"
    click.echo(f"health {health.score:.2f} ({verdict}, threshold {health.threshold:g})")
    for rec in health.recommendations():
        click.echo(f"recommendation: {rec}")
    raise click.exceptions.Exit(0 if health.healthy else 1)


def tau_monitor_main() -> None:
    tau_monitor(prog_name="tau-monitor")


if __name__ == "__main__":
    main()
