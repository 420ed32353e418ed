"""The installed command as an admin runs it: real process, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import taucg

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "bad-configs").glob("*.toml"))


def test_every_bad_config_exits_2_without_traceback() -> None:
    for path in CORPUS:
        r = taucg("config", "check", str(path), check=False, timeout=60)
        assert r.returncode == 2, (path.name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, path.name
        assert str(path) in r.stderr


def test_config_json_names_sources(tmp_path: Path) -> None:
    f = tmp_path / "admin.toml"
    f.write_text("[tiers.low]\ncpu_weight = 25\n")
    r = taucg("config", "--tiers", "--format", "json", config=f, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["config"]["tiers"]["low"]["cpu_weight"] == 25
    assert data["sources"]["tiers.low.cpu_weight"] == str(f)
    assert data["sources"]["tiers.high.cpu_weight"] == "built-in default"


def test_resources_json_is_live() -> None:
    r = taucg("resources", "--format", "json", "--interval", "0.1", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["memory"]["total_bytes"] > 0
    assert 0.0 <= data["cpu"]["usage_percent"] <= 100.0


def test_bad_option_is_a_usage_error() -> None:
    r = taucg("config", "--format", "yaml", check=False, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "yaml" in r.stderr
