"""The socket API's subscriptions against real systemd: a subscriber hears
the recovery of a real crash (taucg.recovery) and the governor capping
the tiers for a real sensor's heat (taucg.governor), as they happen.

Each test runs its own `taucg daemon` (a child it ends) on a private
config; the crashing unit, the lm75 sensor and the governor rig are the
ones the recovery and governor VM tests use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taucg.faces.socket_client import subscribe
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.configs import daemon_config

from .helpers import wait_for
from .test_governor_vm import Daemon, Rig, baseline, differences, lm75, rig  # noqa: F401
from .test_recovery_vm import CRASHY, OK_MARK, crashy  # noqa: F401


class Listener:
    """One subscription on a thread, keeping every notification it hears."""

    def __init__(self, sock: Path, topics: list[str]) -> None:
        self.heard: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(sock, topics), daemon=True)
        self._thread.start()

    def _run(self, sock: Path, topics: list[str]) -> None:
        try:
            for n in subscribe(sock, topics):
                self.heard.append(n)
        except Exception as exc:  # shown by the waits below
            self.error = exc

    def of(self, method: str, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        assert self.error is None, f"the subscription failed: {self.error!r}"
        return [n["params"] for n in list(self.heard) if n["method"] == method and match(
            n["params"])]


def subscribed(d: Daemon, topics: list[str]) -> Listener:
    listener = Listener(d.socket, topics)
    wait_for(lambda: d.ask("ping")["subscribers"] == 1, 120, "the daemon to count the subscriber")
    return listener


def test_a_subscriber_hears_the_recovery_of_a_real_crash(systemd: BlockingSystemd,
                                                         crashy: str, tmp_path: Path) -> None:  # noqa: F811
    cfg = daemon_config(tmp_path,
                        crash_recovery={"critical_processes": ["tau-crashy"],
                                        "recovery_timeout_seconds": 60},
                        recovery={"services": {CRASHY: {"strategy": "restart"}}},
                        governor={"enabled": False}, health_checking={"enabled": False})
    d = Daemon(cfg, tmp_path)
    d.start()
    d.wait_ready()
    try:
        wait_for(lambda: any("ready: following" in r["message"] for r in
                             d.ask("logs.recent", count=500, level="warning")), 240,
                 "the daemon's recovery watcher to follow the units")
        listener = subscribed(d, ["recovery"])
        systemd.start(crashy)
        first = wait_for(lambda: listener.of("taucg.recovery",
                                             lambda p: p.get("event") == "action"),
                         240, "a taucg.recovery notification of the crash's recovery")[0]
        OK_MARK.touch()  # from now on a restarted process stays up
        assert first["unit"] == CRASHY and first["strategy"] == "restart", first
        assert first["attempt"] == 1 and first["result"] in ("signal", "core-dump"), first
        assert first["outcome"].startswith("restarted"), first
        assert first["time"] > 0
        # What the subscriber heard is what the API's recovery view holds.
        outcomes = d.ask("recovery.state")["outcomes"]
        assert {"unit": CRASHY, "strategy": "restart", "attempt": 1,
                "result": first["result"], "outcome": first["outcome"]} in outcomes
    finally:
        d.stop()
    print(f"--- daemon log (tail) ---\n{d.tail(60)}")


def test_a_subscriber_hears_the_governor_cap_the_tiers_for_heat(
        rig: Rig, lm75: Callable[[int], None]) -> None:  # noqa: F811
    d = rig.configure(resource_monitoring={"temperature_monitoring": True},
                      thermal={"throttle_celsius": 85.0, "critical_celsius": 95.0})
    d.start()
    d.wait_ready()
    listener = subscribed(d, ["governor"])
    lm75(90)
    capped = wait_for(lambda: listener.of("taucg.governor", lambda p: p["tier"] == "low"
                                          and "temperature 90.0" in p["reason"]), 180,
                      "a taucg.governor notification capping tau-low.slice at 90 C")[0]
    assert set(capped) == {"time", "kind", "tier", "key", "before", "after", "reason"}, capped
    assert capped["kind"] == "thermal" and capped["key"] == "cpu_quota", capped
    lm75(40)
    wait_for(lambda: not differences(rig.baseline), 180, "every governed file back as applied")
    # The give-back is heard too: the cap on low lifted.
    released = wait_for(lambda: listener.of("taucg.governor", lambda p: p["tier"] == "low"
                                            and p["key"] == "cpu_quota"
                                            and p["time"] > capped["time"]), 60,
                        "a taucg.governor notification lifting low's cap")
    assert released[-1]["kind"] == "thermal", released
