"""Test tiers follow the directory: tests/unit, tests/host and tests/vm get
the unit, host and vm markers, so `pytest -m host` runs one tier alone."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if tier in ("unit", "host", "vm"):
            item.add_marker(getattr(pytest.mark, tier))
