"""`taucg daemon` and the commands that ask it: `logs`, `alerts`, `history`."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli.common import (
    DaemonNotRunningError,
    UserError,
    cli,
    config_option,
    format_option,
)
from taucg.faces.cli.completion import complete_metric
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Bytes, Cell, Number, Output, When, emit, emit_json, utc

# ---------------------------------------------------------------- daemon ---


def _ask(cfg: Config, method: str, **params: Any) -> Any:
    """One request to the daemon; its absence (exit 3) or refusal is a clear error."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    try:
        return call(cfg.daemon.socket_path, method, params)
    except DaemonNotRunning as exc:
        raise DaemonNotRunningError(str(exc)) from None
    except DaemonError as exc:
        raise UserError(f"the daemon refused {method}: {exc}") from None


def _check_systemd_python(cfg: Any) -> None:
    """Before anything starts: systemd-python is needed to tell systemd the
    daemon is ready (Type=notify) and to log to a running journald."""
    from taucg.actors.libsystemd import SystemdModuleMissing, module
    from taucg.faces.logs import journald_running

    try:
        if os.environ.get("NOTIFY_SOCKET"):
            module("daemon", "telling systemd the daemon is ready (sd_notify)")
        if cfg.logging.journald and journald_running():
            module("journal", "logging to journald ([logging] journald = false turns it off)")
    except SystemdModuleMissing as exc:
        raise UserError(str(exc)) from None


@cli.command("daemon", epilog=EPILOGS["daemon"])
@click.option("--detach", is_flag=True,
              help="fork into the background and write [daemon] pidfile (under systemd, "
                   "use 'systemctl start taucg' instead)")
@config_option
def daemon_cmd(detach: bool, config_path: str | None) -> None:
    """Run the taucg daemon.

    Sampling, placement, recovery, health, the socket API and metrics.
    Stops on SIGTERM; SIGHUP reloads the config."""
    cfg = load_config(config_path)
    _check_systemd_python(cfg)
    # Reloads look the config up again the same way, so a file created
    # after start is found on SIGHUP.
    path = config_path
    if detach:
        from taucg.faces.daemonize import DetachError, detach_and_run

        try:
            rc = detach_and_run(cfg, path)
        except DetachError as exc:
            raise UserError(str(exc)) from None
        raise click.exceptions.Exit(rc)
    from taucg.faces.lean_imports import without_openssl

    without_openssl()  # before taucg.faces.daemon imports asyncio
    from taucg.faces.daemon import run

    raise click.exceptions.Exit(run(cfg, path, to_stderr=True))


@cli.command("logs", epilog=EPILOGS["logs"])
@click.option("--stats", is_flag=True, help="sizes, records per level and rotated files")
@click.option("--recent", is_flag=True, help="the most recent records")
@click.option("-n", "--count", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="how many records with --recent")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error", "critical"]),
              default=None, help="with --recent: only records at or above this level")
@click.option("--log", "which", type=click.Choice(["main", "audit", "performance", "refused"]),
              default="main", show_default=True, help="which log --recent reads")
@format_option
@config_option
def logs_cmd(stats: bool, recent: bool, count: int, level: str | None, which: str,
             fmt: Output, config_path: str | None) -> None:
    """The daemon's logs: sizes and recent records.

    Read through the daemon's socket: --stats and --recent.
    With neither flag, --stats. Exit 3 when the daemon is not running."""
    from taucg.faces.logs import record_document, stats_document

    cfg = load_config(config_path)
    raw_stats = _ask(cfg, "logs.stats") if stats or not recent else None
    shown_stats = None if raw_stats is None else [stats_document(s) for s in raw_stats]
    records = [record_document(r) for r in _ask(cfg, "logs.recent", count=count,
                                                level=level or "debug", log=which)] \
        if recent else None
    if fmt.resolved == "json":
        emit_json("logs", {"stats": shown_stats, "recent": records})
        return
    if raw_stats is not None:
        rows: list[list[Cell]] = [
            [s["log"], s["path"], Bytes(s["size"]) if s["exists"] else "absent",
             str(s["records"]),
             " ".join(f"{k}={v}" for k, v in sorted(s["levels"].items())) or "-",
             (str(s["rotated"]), " (", Bytes(s["rotated_bytes"]), ")"),
             When(s["oldest_rotated"])] for s in raw_stats]
        emit(fmt, ["LOG", "PATH", "SIZE", "RECORDS", "LEVELS", "ROTATED", "OLDEST ROTATED"],
             rows, None, title="logs (records and levels: current file)")
    if records is not None:
        emit(fmt, ["TIME", "LEVEL", "LOGGER", "MESSAGE", "FIELDS"],
             [[r["logged_at"] or "-", r["level"] or "-", r["logger"] or "-",
               r["message"].replace("\t", " ").replace("\n", " "),
               json.dumps(r["fields"], default=str) if r["fields"] else "-"]
              for r in records], None, title=f"{which} log, most recent last")


@cli.command("alerts", epilog=EPILOGS["alerts"])
@click.option("-n", "--count", type=click.IntRange(1, 200), default=50, show_default=True,
              help="how many recent alerts")
@format_option
@config_option
def alerts_cmd(count: int, fmt: Output, config_path: str | None) -> None:
    """Alerts the daemon raised and cleared.

    Threshold alerts, recent and active (exit 3: no daemon)."""
    cfg = load_config(config_path)
    data = _ask(cfg, "alerts", count=count)
    rows: list[list[Cell]] = [
        [When(a["time"]), a["state"], a["metric"], Number(a["value"]),
         Number(a["threshold"])] for a in data["recent"]]
    shown = {"active": list(data["active"]), "recent": [
        {"changed_at": utc(a["time"]), "state": a["state"], "metric": a["metric"],
         "value": a["value"], "threshold": a["threshold"], "message": a.get("message", "")}
        for a in data["recent"]]}
    emit(fmt, ["TIME", "STATE", "METRIC", "VALUE", "THRESHOLD"], rows, shown,
         title=f"alerts; active: {', '.join(data['active']) or 'none'}", schema="alerts")


@cli.command("history", epilog=EPILOGS["history"])
@click.option("--metric", default="", help="one metric (default: all, summarised)",
              shell_complete=complete_metric)
@format_option
@config_option
def history_cmd(metric: str, fmt: Output, config_path: str | None) -> None:
    """The daemon's metric history and trends.

    The history survives daemon restarts (exit 3: no daemon)."""
    cfg = load_config(config_path)
    data = _ask(cfg, "history", metric=metric)
    shown = {"window_seconds": data["window_seconds"], "metrics": {
        name: {"points": [{"sampled_at": utc(t), "value": v} for t, v in m["points"]],
               "trend_per_second": m["trend_per_second"]}
        for name, m in data["metrics"].items()}}
    if metric and fmt.resolved != "json":
        points = data["metrics"][metric]["points"]
        emit(fmt, ["TIME", metric.upper()], [[When(t), Number(v)] for t, v in points], None)
        return
    rows: list[list[Cell]] = []
    for name, m in data["metrics"].items():
        pts = m["points"]
        trend = m["trend_per_second"]
        rows.append([name, str(len(pts)), When(pts[0][0]) if pts else "-",
                     Number(pts[-1][1]) if pts else "-",
                     "-" if trend is None else
                     (Number(trend * 60, 3), "/min") if fmt.raw else f"{trend * 60:+.3f}/min"])
    emit(fmt, ["METRIC", "POINTS", "SINCE", "LAST", "TREND"], rows, shown,
         title=f"history (trend over {data['window_seconds']} s)", schema="history")
