"""The main, audit and performance logs: JSON lines, rotation into valid
gzip files, retention by count and age, reading back (recent, stats)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors import records as audit_records
from taucg.actors import shared_log
from taucg.config.loading import builtin
from taucg.config.schema import Logging
from taucg.faces import logs


def settings(tmp_path: Path, **changes: Any) -> Logging:
    return dataclasses.replace(builtin().logging, log_file_path=str(tmp_path / "monitor.log"),
                               audit_log_path=str(tmp_path / "audit.log"),
                               performance_log_path=str(tmp_path / "perf.log"),
                               journald=False, **changes)


@pytest.fixture
def main_log() -> Iterator[None]:
    yield
    logger = logging.getLogger(audit_records.LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def all_lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    for gz in shared_log.rotated_files(path):
        with gzip.open(gz, "rt") as f:  # raises if a file is not valid gzip
            lines.extend(f.read().splitlines())
    return lines


def test_100k_records_across_rotations_all_recovered(tmp_path: Path, main_log: None) -> None:
    s = settings(tmp_path, max_log_size_mb=1, rotated_files_kept=1000)
    log = logs.setup(s)
    n = 100_000
    for i in range(n):
        log.info("sweep done", extra={"seq": i, "processes": 123})
    for h in log.handlers:
        h.flush()
    path = tmp_path / "monitor.log"
    rotated = shared_log.rotated_files(path)
    assert len(rotated) >= 5, "expected several rotations at 1 MiB"
    assert all(p.suffix == ".gz" for p in rotated)
    records = [json.loads(line) for line in all_lines(path)]
    assert len(records) == n
    assert sorted(r["seq"] for r in records) == list(range(n))
    first = records[0]
    assert {"time", "level", "logger", "message"} <= set(first)
    assert first["level"] == "INFO" and first["logger"] == "taucg"


def test_retention_by_count(tmp_path: Path, main_log: None) -> None:
    s = settings(tmp_path, max_log_size_mb=1, rotated_files_kept=3)
    log = logs.setup(s)
    for i in range(40_000):
        log.info("x" * 60, extra={"seq": i})
    rotated = shared_log.rotated_files(tmp_path / "monitor.log")
    assert [p.name for p in rotated] == [f"monitor.log.{i}.gz" for i in (1, 2, 3)]


def test_retention_by_age(tmp_path: Path) -> None:
    path = tmp_path / "monitor.log"
    path.write_text("")
    old = time.time() - 10 * 86400
    for i in (1, 2, 3):
        p = tmp_path / f"monitor.log.{i}.gz"
        with gzip.open(p, "wt") as f:
            f.write("{}\n")
        if i > 1:
            os.utime(p, (old, old))
    removed = shared_log.prune(path, retention_days=7)
    assert sorted(p.name for p in removed) == ["monitor.log.2.gz", "monitor.log.3.gz"]
    assert [p.name for p in shared_log.rotated_files(path)] == ["monitor.log.1.gz"]


def test_level_from_config(tmp_path: Path, main_log: None) -> None:
    log = logs.setup(settings(tmp_path, log_level="warning"))
    log.info("hidden")
    log.warning("shown")
    levels = [json.loads(line)["level"] for line in all_lines(tmp_path / "monitor.log")]
    assert levels == ["WARNING"]


def test_plain_text_when_not_structured(tmp_path: Path, main_log: None) -> None:
    log = logs.setup(settings(tmp_path, structured_logging=False))
    log.error("disk %s is full", "/var")
    line = (tmp_path / "monitor.log").read_text().strip()
    assert not line.startswith("{") and " ERROR taucg: disk /var is full" in line
    assert logs.parse_line(line)["level"] == "ERROR"  # type: ignore[index]


def test_recent_filters_by_level_and_reaches_into_rotated_files(tmp_path: Path,
                                                                main_log: None) -> None:
    s = settings(tmp_path, max_log_size_mb=1, rotated_files_kept=100)
    log = logs.setup(s)
    for i in range(30_000):
        if i % 1000 == 0:
            log.error("problem %d", i, extra={"seq": i})
        else:
            log.info("fine", extra={"seq": i, "pad": "y" * 40})
    path = tmp_path / "monitor.log"
    assert shared_log.rotated_files(path)
    last = logs.recent(path, 5)
    assert [r["seq"] for r in last] == list(range(29_995, 30_000))
    errors = logs.recent(path, 30, "error")
    assert [r["seq"] for r in errors] == list(range(0, 30_000, 1000))


def test_stats_counts_levels_and_rotations(tmp_path: Path, main_log: None) -> None:
    s = settings(tmp_path)
    log = logs.setup(s)
    log.info("a")
    log.info("b")
    log.warning("c")
    for h in log.handlers:
        h.flush()
    st = logs.stats("main", tmp_path / "monitor.log")
    assert st.exists and st.records == 3 and st.levels == {"INFO": 2, "WARNING": 1}
    assert st.rotated == 0 and st.oldest_rotated is None
    absent = logs.stats("audit", tmp_path / "audit.log")
    assert not absent.exists and absent.records == 0


def test_performance_log(tmp_path: Path) -> None:
    s = settings(tmp_path)
    audit_records.perf(s, "sweep", 0.0042, processes=321)
    record = json.loads((tmp_path / "perf.log").read_text())
    assert record["operation"] == "sweep" and record["seconds"] == 0.0042
    assert record["processes"] == 321
    off = settings(tmp_path / "off", performance_logging=False)
    audit_records.perf(off, "sweep", 1.0)
    assert not (tmp_path / "off" / "perf.log").exists()


def test_journald_fields_are_upper_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    """What reaches journald's send(): our fields upper-cased (journald drops
    lower-case names), values as text, the LogRecord's own attributes not
    repeated. The real journal is checked in tests/vm."""
    from systemd import journal

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(journal, "send", lambda text, **kw: sent.append((text, kw)))
    logger = logging.Logger("taucg.test")
    logger.addHandler(logs.journal_handler())
    logger.warning("disk %s full", "/var", extra={"mount": "/var", "usage": {"pct": 97}})
    text, fields = sent[0]
    assert text == "disk /var full"
    assert fields["MOUNT"] == "/var" and fields["USAGE"] == '{"pct": 97}'
    assert fields["SYSLOG_IDENTIFIER"] == "taucg" and fields["PRIORITY"] == "4"
    assert not any(k.islower() for k in fields)
