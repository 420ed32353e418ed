"""The units worker asks systemd about the units the last sweep found
inside the tiers, and keeps the last answer through a bus outage."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from taucg.faces import units_worker
from taucg.model.health import ServiceState, ServiceStates
from tests.unit.test_metrics import state


def test_units_worker_publishes_and_keeps_the_last_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [ServiceStates((ServiceState("web.service", "loaded", "active", 2),
                              ServiceState("run-u7.scope", None, None, error="gone"))),
               ServiceStates(unavailable="no bus")]
    asked: list[list[str]] = []

    async def fake(units: Any) -> ServiceStates:
        asked.append(list(units))
        return answers[min(len(asked), len(answers)) - 1]

    monkeypatch.setattr(units_worker, "read_service_states", fake)
    current = [replace(state(), units={})]
    published: list[dict[str, Any]] = []

    def publish(**changes: Any) -> None:
        published.append(changes)
        current[0] = replace(current[0], **changes)

    async def run() -> None:
        task = asyncio.create_task(units_worker.watch_units(lambda: current[0], publish, 0.01))
        while len(asked) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert asked[0] == ["batch.service", "run-u7.scope", "web.service"]
    # One publication: the failed unit is left out, and the outage changed nothing.
    assert [set(p["units"]) for p in published] == [{"web.service"}]
    assert current[0].units["web.service"].restarts == 2
