"""Every file in tests/data/bad-configs must be refused with exit 2, naming
the file and carrying the fragment its first line promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from taucg.faces.cli.main import cli

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "bad-configs").glob("*.toml"))


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_config_is_refused(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' line"
    expected = first.removeprefix("# expect: ")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught error
    assert "Traceback" not in result.output
    assert expected in result.output
    for line in result.output.strip().splitlines():
        assert line.startswith(f"taucg: {path}"), line
