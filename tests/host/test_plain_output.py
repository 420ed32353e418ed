"""Piped output: tab-separated rows under one header line, --no-legend
without it, --raw with plain numbers; logs like the rest."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.recovery_watcher import history_path
from taucg.config.loading import load
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import private_paths, write_config


def rows(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def own_row(table: list[list[str]]) -> list[str]:
    return next(r for r in table if r[0] == str(os.getpid()))


def test_processes_header_no_legend_and_raw() -> None:
    shown = rows(taucg("processes", timeout=120).stdout)
    assert shown[0] == ["PID", "PPID", "USER", "S", "RSS", "CPU", "TIER", "UNIT", "COMMAND"]
    assert own_row(shown)[4][-1] in "BKMGT"  # human: 41.2M

    bare = rows(taucg("processes", "--no-legend", timeout=120).stdout)
    assert bare[0][0].isdigit() and all(len(r) == 9 for r in bare)

    raw = rows(taucg("processes", "--raw", "--no-legend", timeout=120).stdout)
    rss, cpu = own_row(raw)[4], own_row(raw)[5]
    assert rss.isdigit() and int(rss) > 1 << 20, rss  # bytes, as an integer
    assert float(cpu) >= 0 and not cpu.endswith("s"), cpu


def test_a_table_without_legend_has_no_title_header_or_rule(tmp_path: Path) -> None:
    out = taucg("config", "--tiers", "-o", "table", "--no-legend", timeout=60).stdout
    assert "KEY" not in out and "─" not in out and not out.startswith("config:")
    assert out.splitlines()[0].split()[0].startswith("tiers.")
    with_legend = taucg("config", "--tiers", "-o", "table", timeout=60).stdout.splitlines()
    assert with_legend[0].startswith("config:") and with_legend[1].split()[:3] == [
        "KEY", "VALUE", "SOURCE"]


def test_recovery_history_raw_times_and_seconds(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "taucg.toml", **private_paths(tmp_path))
    t0 = float(int(time.time()) - 120)
    history = CrashHistory(history_path(load(str(cfg))))
    for i, t in enumerate((t0, t0 + 90)):
        history.record(CrashEvent(t, "cron.service", "signal", None, 11, i + 1, "restart",
                                  "restarted"))
    (row,) = rows(taucg("recovery", "history", "--raw", "--no-legend", config=cfg,
                        timeout=60).stdout)
    assert row[:3] == ["cron.service", "2", "90"]
    assert float(row[3]) == t0 + 90  # LAST FAILURE as epoch seconds
    human = rows(taucg("recovery", "history", config=cfg, timeout=60).stdout)
    assert human[0][:2] == ["UNIT", "FAILURES"] and human[1][2] == "90s"


def test_logs_are_tab_separated_like_the_rest(start_daemon: Any) -> None:
    d = start_daemon()
    out = taucg("logs", "--recent", "-n", "5", config=d.config, timeout=60).stdout
    shown = rows(out)
    assert shown[0] == ["TIME", "LEVEL", "LOGGER", "MESSAGE", "FIELDS"]
    assert len(shown) > 1 and all(len(r) == 5 for r in shown), out
    assert all(r[1] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") for r in shown[1:])


def test_recovery_watch_flag_is_hidden_but_the_subcommand_is_listed() -> None:
    help_text = taucg("recovery", "--help", timeout=60).stdout
    assert "--watch" not in help_text
    assert "watch" in help_text.split("Commands:")[1]
    for command in ("status", "resources"):
        assert "-w, --watch SECONDS" in taucg(command, "--help", timeout=60).stdout


def test_a_piped_watch_is_one_stream_under_one_header() -> None:
    p = subprocess.Popen(taucg_argv("resources", "--cpu", "-w", "0.2"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    seen: list[list[str]] = []
    try:
        assert p.stdout is not None
        while sum(r[:2] == ["cpu", "total"] for r in seen) < 3:
            seen.append(p.stdout.readline().rstrip("\n").split("\t"))
    finally:
        p.terminate()  # ours, by its Popen
        p.wait(timeout=60)
    assert seen[0] == ["AREA", "ITEM", "VALUE", "NOTE"]
    assert sum(r[0] == "AREA" for r in seen) == 1, seen
