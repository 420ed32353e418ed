"""The audit log: JSON lines, rotation into valid gzip files."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

from taucg.actors import records
from taucg.config.loading import builtin


def settings(tmp_path: Path, **changes: object):  # type: ignore[no-untyped-def]
    return dataclasses.replace(builtin().logging, audit_log_path=str(tmp_path / "audit.log"),
                               **changes)


def test_audit_records_who_what_before_after(tmp_path: Path) -> None:
    s = settings(tmp_path)
    records.audit(s, "apply", "tau-low.slice", before={"CPUWeight": 30},
               after={"CPUWeight": 25}, result="ok", who="alice (uid 1000)")
    record = json.loads((tmp_path / "audit.log").read_text().splitlines()[0])
    assert record["action"] == "apply"
    assert record["target"] == "tau-low.slice"
    assert record["before"] == {"CPUWeight": 30} and record["after"] == {"CPUWeight": 25}
    assert record["who"] == "alice (uid 1000)"
    assert record["level"] == "INFO" and record["logger"] == "taucg.audit"
    assert record["time"] and record["message"] == "apply tau-low.slice: ok"


def test_default_who_is_the_invoking_user(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SUDO_USER", "bob")
    monkeypatch.setenv("SUDO_UID", "1001")
    s = settings(tmp_path)
    records.audit(s, "run", "taucg-run-low-x-1.scope")
    record = json.loads((tmp_path / "audit.log").read_text().splitlines()[0])
    assert record["who"] == "bob (uid 1001, via sudo)"


def test_rotation_compresses_and_keeps_every_record(tmp_path: Path) -> None:
    s = settings(tmp_path, max_log_size_mb=1)
    n = 20_000
    for i in range(n):
        records.audit(s, "place", f"pid {i}", before=None, after="tau-low.slice", seq=i,
                   padding="x" * 40)
    current = (tmp_path / "audit.log").read_text().splitlines()
    rotated = sorted(tmp_path.glob("audit.log.*.gz"))
    assert rotated, "nothing rotated"
    lines = list(current)
    for gz in rotated:
        with gzip.open(gz, "rt") as f:  # raises if a file is not valid gzip
            lines.extend(f.read().splitlines())
    assert sorted(json.loads(line)["seq"] for line in lines) == list(range(n))


def test_audit_off_writes_nothing(tmp_path: Path) -> None:
    s = settings(tmp_path, audit_logging=False)
    records.audit(s, "apply", "x")
    assert not (tmp_path / "audit.log").exists()


def test_unwritable_audit_log_warns_and_continues(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    s = dataclasses.replace(builtin().logging, audit_log_path=str(blocker / "audit.log"))
    records.audit(s, "apply", "x")
    assert "cannot write the audit log" in capsys.readouterr().err
