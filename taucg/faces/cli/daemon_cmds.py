"""`taucg daemon` and the commands that ask it: `logs`, `alerts`, `history`."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.config.values import human_bytes
from taucg.faces.cli.common import UserError, cli, config_option, format_option
from taucg.faces.cli.completion import complete_metric
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import emit, resolve_format

# ---------------------------------------------------------------- daemon ---

DAEMON_NOT_RUNNING = 3  # exit status of a command that needs the daemon when none runs


def _ask(cfg: Config, method: str, **params: Any) -> Any:
    """One request to the daemon; its absence or refusal is a clear error."""
    from taucg.faces.socket_client import DaemonError, DaemonNotRunning, call

    try:
        return call(cfg.daemon.socket_path, method, params)
    except DaemonNotRunning as exc:
        click.echo(f"taucg: {exc}", err=True)
        raise click.exceptions.Exit(DAEMON_NOT_RUNNING) from None
    except DaemonError as exc:
        raise UserError(f"the daemon refused {method}: {exc}") from None


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


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
    from taucg.faces.daemon import run

    raise click.exceptions.Exit(run(cfg, path, to_stderr=True))


@cli.command("logs", epilog=EPILOGS["logs"])
@click.option("--stats", is_flag=True, help="sizes, records per level and rotated files")
@click.option("--recent", is_flag=True, help="the most recent records")
@click.option("--count", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="how many records with --recent")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error", "critical"]),
              default=None, help="with --recent: only records at or above this level")
@click.option("--log", "which", type=click.Choice(["main", "audit", "performance", "refused"]),
              default="main", show_default=True, help="which log --recent reads")
@format_option
@config_option
def logs_cmd(stats: bool, recent: bool, count: int, level: str | None, which: str, fmt: str,
             config_path: str | None) -> None:
    """The daemon's logs: sizes and recent records.

    Read through the daemon's socket: --stats and --recent.
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


@cli.command("alerts", epilog=EPILOGS["alerts"])
@click.option("--count", type=click.IntRange(1, 200), default=50, show_default=True)
@format_option
@config_option
def alerts_cmd(count: int, fmt: str, config_path: str | None) -> None:
    """Alerts the daemon raised and cleared.

    Threshold alerts, recent and active (exit 3: no daemon)."""
    cfg = load_config(config_path)
    data = _ask(cfg, "alerts", count=count)
    rows = [[_when(a["time"]), a["state"], a["metric"], f"{a['value']:g}",
             f"{a['threshold']:g}"] for a in data["recent"]]
    emit(fmt, ["TIME", "STATE", "METRIC", "VALUE", "THRESHOLD"], rows, data,
         title=f"alerts; active: {', '.join(data['active']) or 'none'}")


@cli.command("history", epilog=EPILOGS["history"])
@click.option("--metric", default="", help="one metric (default: all, summarised)",
              shell_complete=complete_metric)
@format_option
@config_option
def history_cmd(metric: str, fmt: str, config_path: str | None) -> None:
    """The daemon's metric history and trends.

    The history survives daemon restarts (exit 3: no daemon)."""
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
