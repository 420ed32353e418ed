"""Fixtures for tests that need systemd as PID 1 and every cgroup v2
controller. On a machine without them every test here skips and says why;
scripts/vm-test runs them in a VM that has them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.blocking_systemd import BlockingSystemd

from .helpers import CGROUP_ROOT, Units


def _why_not_here() -> str | None:
    pid1 = Path("/proc/1/comm").read_text().strip()
    if pid1 != "systemd":
        return f"needs systemd as PID 1 (here PID 1 is {pid1!r}); run scripts/vm-test"
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        return "needs the unified cgroup v2 hierarchy at /sys/fs/cgroup; run scripts/vm-test"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _why_not_here()
    if reason is None:
        return
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def systemd() -> Iterator[BlockingSystemd]:
    """One connected systemd client for the whole session."""
    client = BlockingSystemd(timeout=120)
    yield client
    client.close()


@pytest.fixture
def units(systemd: BlockingSystemd) -> Iterator[Units]:
    tracker = Units(systemd)
    yield tracker
    tracker.cleanup()


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Prints past pytest's capture, for benchmark figures that must show
    in the VM run's output even when the test passes."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")

    def say(message: str) -> None:
        with capman.global_and_fixture_disabled():
            print(message, flush=True)

    return say
