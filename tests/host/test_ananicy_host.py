"""ananicy trees on this machine's kernel: a rule's own priorities set on a
real process, `processes --why` naming the file and line, `config check`
listing the skipped lines, and the daemon reading the tree at start and
again on SIGHUP, logging what it skipped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.placement import PRIORITY_ROWS, apply_settings
from taucg.config.ananicy import Settings
from tests.support.ananicy_corpus import Expect, add_rule, write_corpus
from tests.support.cli import taucg
from tests.support.configs import write_config
from tests.support.json_contract import one_document
from tests.support.waiting import wait_for


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Expect]:
    root = tmp_path / "ananicy.d"
    return root, write_corpus(root, rules=200)


@pytest.fixture
def named(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts copies of sleep under a given comm; ends them by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(comm: str) -> subprocess.Popen[bytes]:
        exe = tmp_path / "bin" / comm
        exe.parent.mkdir(exist_ok=True)
        shutil.copy2("/bin/sleep", exe)
        p = subprocess.Popen([str(exe), "600"])
        started.append(p)
        wait_for(lambda: Path(f"/proc/{p.pid}/comm").read_text().strip() == comm[:15], 30,
                 f"{comm} to exec")
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def ionice_of(pid: int) -> str:
    return subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_rules_own_settings_win_and_the_tier_fills_the_rest(
        named: Callable[[str], subprocess.Popen[bytes]]) -> None:
    p = named("taucg-anaprio")
    low = PRIORITY_ROWS[3]  # the low tier's row: nice 10, best-effort 6, oom 300
    failed = apply_settings(p.pid, low, Settings(nice=12, ioclass="idle", sched="batch"))
    assert failed == []
    assert os.getpriority(os.PRIO_PROCESS, p.pid) == 12
    assert ionice_of(p.pid) == "idle"
    assert os.sched_getscheduler(p.pid) == os.SCHED_BATCH
    # Not given by the rule: the tier's oom_score_adj.
    assert int(Path(f"/proc/{p.pid}/oom_score_adj").read_text()) == low.oom_score_adj
    failed = apply_settings(p.pid, None, Settings(ionice=2, oom_score_adj=555, sched="iso"))
    assert len(failed) == 1 and "SCHED_ISO" in failed[0]
    assert ionice_of(p.pid) == "best-effort: prio 2"
    assert int(Path(f"/proc/{p.pid}/oom_score_adj").read_text()) == 555


def config_for(tmp_path: Path, root: Path, **extra: Any) -> Path:
    return write_config(tmp_path / "taucg.toml", rule_sources={"ananicy": [root]}, **extra)


def test_why_names_the_ananicy_file_and_line(
        tmp_path: Path, tree: tuple[Path, Expect],
        named: Callable[[str], subprocess.Popen[bytes]]) -> None:
    root, ex = tree
    cfg = config_for(tmp_path, root)
    p = named("taucg-anagame")
    file, line = ex.lines["taucg-anagame"]
    r = taucg("processes", "--why", str(p.pid), config=cfg)
    assert f"ananicy {file}:{line} (taucg-anagame) matched" in r.stdout
    assert "type Game -> high by [rule_sources.ananicy_tiers]" in r.stdout
    doc = one_document(taucg("processes", "--why", str(p.pid), "-o", "json", config=cfg),
                       "processes-why")
    assert doc["tier"] == "high" and doc["source"] == f"{file}:{line}" and doc["rule"] is None
    # A [[rules]] entry for the same comm comes first.
    cfg = config_for(tmp_path, root, rules=[{"comm": "taucg-anagame", "tier": "low"}])
    doc = one_document(taucg("processes", "--why", str(p.pid), "-o", "json", config=cfg),
                       "processes-why")
    assert doc["tier"] == "low" and doc["rule"] == 1 and doc["source"] == "rule 1"


def test_config_check_lists_every_skipped_line(tmp_path: Path,
                                               tree: tuple[Path, Expect]) -> None:
    root, ex = tree
    cfg = config_for(tmp_path, root)
    r = taucg("config", "check", str(cfg))
    assert f"{ex.rules} ananicy rules" in r.stdout
    assert f"{len(ex.bad)} lines skipped" in r.stdout
    for f, n, _ in ex.bad:
        assert f"\n{f}:{n}: " in r.stdout
    doc = one_document(taucg("config", "check", str(cfg), "-o", "json"), "config-check")
    a = doc["ananicy"]
    assert a["rules"] == ex.rules and a["skipped_lines"] == len(ex.bad)
    assert sorted((p["file"], p["line"]) for p in a["problems"] if p["skipped"]) == \
        sorted((f, n) for f, n, _ in ex.bad)


def log_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def test_the_daemon_reads_the_tree_at_start_and_on_sighup(
        start_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "ananicy.d"
    ex = write_corpus(root, rules=100)
    d = start_daemon(rule_sources={"ananicy": [str(root)]})
    log = d.log_dir / "monitor.log"

    def loaded(n: int) -> list[dict[str, Any]]:
        return [r for r in log_records(log)
                if r.get("ananicy", {}).get("rules") == n]

    first = wait_for(lambda: loaded(ex.rules), 60, "the tree's summary in the log")
    assert first[0]["ananicy"]["skipped_lines"] == len(ex.bad)
    text = log.read_text()
    for f, n, _ in ex.bad:
        assert f"{f}:{n}: " in text
    add_rule(root, "taucg-added", {"type": "Game"})
    d.proc.send_signal(signal.SIGHUP)  # our own child
    wait_for(lambda: loaded(ex.rules + 1), 60, "the re-read tree's summary after SIGHUP")
    assert d.proc.poll() is None
