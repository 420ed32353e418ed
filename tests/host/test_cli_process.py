"""The installed command as an admin runs it: real process, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "bad-configs").glob("*.toml"))
TAUCG = [sys.executable, "-m", "taucg"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TAUCG, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_every_bad_config_exits_2_without_traceback() -> None:
    for path in CORPUS:
        r = run("config", "check", str(path))
        assert r.returncode == 2, (path.name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, path.name
        assert str(path) in r.stderr


def test_config_json_names_sources(tmp_path: Path) -> None:
    f = tmp_path / "admin.toml"
    f.write_text("[tiers.low]\ncpu_weight = 25\n")
    r = run("config", "--tiers", "--format", "json", "--config", str(f))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["config"]["tiers"]["low"]["cpu_weight"] == 25
    assert data["sources"]["tiers.low.cpu_weight"] == str(f)
    assert data["sources"]["tiers.high.cpu_weight"] == "built-in default"


def test_resources_json_is_live() -> None:
    r = run("resources", "--format", "json", "--interval", "0.1")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["memory"]["total"] > 0
    assert 0.0 <= data["cpu"]["percent"] <= 100.0


def test_bad_option_is_a_usage_error() -> None:
    r = run("config", "--format", "yaml")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "yaml" in r.stderr
