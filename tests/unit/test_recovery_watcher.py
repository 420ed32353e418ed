"""The recovery watcher's state machine on the in-memory systemd: what it
does about a failure (RestartUnit, delays, safe mode, notify, defer), what
the crash history records, and how attempts escalate and reset. Sleeps are
instant and recorded; the wall clock is the test's; no real systemd."""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taucg.actors import recovery_watcher
from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.recovery_watcher import RecoveryView, RecoveryWatcher
from taucg.actors.systemd_dbus import SERVICE, JobFailed, SystemdUnavailable
from taucg.actors.systemd_dbus import UNIT as UNIT_INTERFACE
from taucg.config.loading import loads
from tests.support.fake_systemd import Call, FakeSystemd

UNIT = "svc-a.service"
T0 = 1_700_000_000.0
LOW, BACKGROUND = "tau-low.slice", "tau-background.slice"


class Clock:
    """Stands in for the watcher's ``time`` module: wall time is the test's,
    monotonic time stays real (restart() only uses it for its deadline)."""

    def __init__(self) -> None:
        self.now = T0

    def time(self) -> float:
        return self.now

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


class Rig:
    """A watcher over svc-a on a fake systemd, with its recorded sleeps and views."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recovery: str = "",
                 *, restart: str = "no", state: str = "failed") -> None:
        cfg = loads(f"""
[crash_recovery]
critical_processes = ["svc-a"]
max_recovery_attempts = 3
save_session_state = false
state_directory = "{tmp_path / 'state'}"
session_state_path = "{tmp_path / 'session'}"
[health_checking]
auto_restart_failed_services = false
[logging]
log_file_path = "{tmp_path / 'log' / 'monitor.log'}"
audit_log_path = "{tmp_path / 'log' / 'audit.log'}"
performance_log_path = "{tmp_path / 'log' / 'performance.log'}"
journald = false
[recovery]
window_seconds = 600.0
stable_seconds = 60.0
{recovery}
""")
        self.clock = Clock()
        monkeypatch.setattr(recovery_watcher, "time", self.clock)
        self.fake = FakeSystemd()
        self.fake.add_service(UNIT, state, restart=restart, result="exit-code", exec_code=1,
                              exec_status=3)
        for s in (LOW, BACKGROUND):
            self.fake.add_unit(s, "active")
        self.history = CrashHistory(tmp_path / "state" / "history.db")
        self.delays: list[float] = []
        self.views: list[RecoveryView] = []
        self.logs: list[str] = []
        self.watcher = RecoveryWatcher(cfg, self.fake, self.history,  # type: ignore[arg-type]
                                       sleep=self.sleep, log=self.logs.append,
                                       on_change=self.views.append)
        assert self.watcher.units == [UNIT]
        # Jitter off: 0.5 puts it in the middle of its band, a factor of exactly 1.
        self.watcher.trackers[UNIT].rand = lambda: 0.5

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def fail(self) -> None:
        """A failed signal for svc-a, and every recovery it sets off."""
        await self.watcher.on_state(UNIT, "failed")
        await until(lambda: not self.watcher._busy)

    def rows(self) -> list[tuple[Any, ...]]:
        return [(e.attempt, e.action, e.outcome, e.delay) for e in self.history.events(UNIT)]


async def until(cond: Callable[[], bool], rounds: int = 1000) -> None:
    """Lets the loop run until cond holds; every fake call completes at once,
    so a few rounds suffice and a stuck one fails instead of hanging."""
    for _ in range(rounds):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_first_failure_restarts_and_records_it(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    asyncio.run(rig.fail())

    assert rig.fake.mutations() == [Call("restart", (UNIT, "replace"))]
    assert rig.history.events(UNIT) == [CrashEvent(T0, UNIT, "exit-code", 3, None, 1,
                                                   "restart", "restarted", 0.0, id=1)]
    assert rig.delays == []
    (unit, out), = rig.watcher.view().outcomes
    assert (unit, out.decision.strategy, out.decision.attempt, out.result, out.outcome) == (
        UNIT, "restart", 1, "exit-code", "restarted")
    assert rig.views[-1].actions == {(UNIT, "restart"): 1}
    assert rig.views[-1].attempts == {UNIT: (T0,)}


def test_killed_by_signal_is_recorded_as_the_signal(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    # ExecMainCode 2 is CLD_KILLED: ExecMainStatus is then a signal, not an exit code.
    rig.fake.units[UNIT].props[SERVICE].update(Result="signal", ExecMainCode=2,
                                               ExecMainStatus=9)
    out = asyncio.run(rig.watcher.on_failure(UNIT))
    assert out is not None and out.result == "signal"
    event, = rig.history.events(UNIT)
    assert (event.result, event.exit_code, event.signal) == ("signal", None, 9)


def test_backoff_delays_grow_by_the_multiplier_up_to_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, """
default_strategy = "restart_with_backoff"
[recovery.services."svc-a.service"]
max_attempts = 10
delay_seconds = 2.0
backoff_multiplier = 3.0
max_delay_seconds = 30.0
""")
    # Each restart fails again until the fifth: one signal, five attempts.
    rig.fake.script_restarts(UNIT, "failed", "failed", "failed", "failed", "active")
    asyncio.run(rig.fail())

    assert rig.delays == [2.0, 6.0, 18.0, 30.0, 30.0]
    assert rig.fake.calls_of("restart") == [(UNIT, "replace")] * 5
    assert rig.rows() == [
        (1, "restart_with_backoff", "restarted, failed again", 2.0),
        (2, "restart_with_backoff", "restarted, failed again", 6.0),
        (3, "restart_with_backoff", "restarted, failed again", 18.0),
        (4, "restart_with_backoff", "restarted, failed again", 30.0),
        (5, "restart_with_backoff", "restarted", 30.0)]


def test_escalates_along_the_chain_to_safe_mode(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, """
default_strategy = "restart"
chain = ["restart", "fallback_to_safe_mode", "notify_admin"]
[recovery.services."svc-a.service"]
max_attempts = 2
""")
    rig.fake.script_restarts(UNIT, "failed", "failed", "active")
    asyncio.run(rig.fail())

    # Two restarts use up max_attempts; the third failure freezes the low tiers
    # and restarts once more.
    assert rig.fake.mutations() == [
        Call("restart", (UNIT, "replace")), Call("restart", (UNIT, "replace")),
        Call("freeze", (LOW,)), Call("freeze", (BACKGROUND,)),
        Call("restart", (UNIT, "replace"))]
    assert rig.rows() == [
        (1, "restart", "restarted, failed again", 0.0),
        (2, "restart", "restarted, failed again", 0.0),
        (1, "fallback_to_safe_mode",
         f"safe mode (froze {LOW}, {BACKGROUND}); restarted", 0.0)]
    assert rig.watcher.safe_mode and rig.watcher.view().safe_mode
    assert rig.views[-1].safe_mode
    assert rig.watcher.view().outcomes[-1][1].decision.escalated_from == "restart"
    assert rig.fake.units[LOW].props[UNIT_INTERFACE]["FreezerState"] == "frozen"

    async def stays_up() -> None:
        await rig.watcher.on_state(UNIT, "active")
        rig.clock.now += 59.0
        await rig.watcher.on_state(UNIT, "active")
        assert rig.watcher.safe_mode and rig.fake.calls_of("thaw") == []
        rig.clock.now += 1.0  # stable_seconds of uptime: the tiers may run again
        await rig.watcher.on_state(UNIT, "active")

    asyncio.run(stays_up())
    assert rig.fake.calls_of("thaw") == [(LOW,), (BACKGROUND,)]
    assert not rig.watcher.safe_mode and not rig.views[-1].safe_mode
    assert rig.watcher.trackers[UNIT].strategy == "restart"


class Journal(types.ModuleType):
    """systemd.journal, recording what would have gone to journald."""

    LOG_CRIT = 2

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__("systemd.journal")
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def send(self, message: str, **fields: Any) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((message, fields))


def fake_journal(monkeypatch: pytest.MonkeyPatch, error: Exception | None = None) -> Journal:
    journal = Journal(error)
    package = types.ModuleType("systemd")
    package.journal = journal  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.journal", journal)
    return journal


def test_notify_admin_tells_the_journal_and_restarts_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = fake_journal(monkeypatch)
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "notify_admin"')
    asyncio.run(rig.fail())

    # The unit is still failed, yet notifying is not retried in a loop.
    assert rig.fake.mutations() == []
    assert rig.rows() == [(1, "notify_admin", "notified: journal", 0.0)]
    (message, fields), = journal.sent
    assert message == (f"taucg: {UNIT} keeps failing (exit-code); recovery gave up "
                       "restarting it")
    assert fields == {"PRIORITY": 2, "SYSLOG_IDENTIFIER": "taucg", "TAUCG_UNIT": UNIT,
                      "TAUCG_RESULT": "exit-code", "TAUCG_ATTEMPT": "1"}


def test_notify_admin_without_journald_falls_back_to_stdout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_journal(monkeypatch, OSError("no journald"))
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "notify_admin"')
    asyncio.run(rig.fail())

    assert rig.fake.mutations() == []
    assert rig.rows() == [(1, "notify_admin",
                           "notified: journal unavailable (no journald), stdout", 0.0)]
    assert f"taucg: CRITICAL: taucg: {UNIT} keeps failing" in capsys.readouterr().out


def test_unit_with_its_own_restart_is_deferred_to_systemd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="always")
    asyncio.run(rig.fail())  # exit-code: Restart=always restarts it

    assert rig.fake.mutations() == []
    assert rig.history.events(UNIT) == [CrashEvent(T0, UNIT, "exit-code", 3, None, 0,
                                                   "deferred-to-systemd", "Restart=always",
                                                   0.0, id=1)]
    # Not an attempt of ours: nothing to escalate later, nothing reported as done.
    assert rig.watcher.trackers[UNIT].failures == []
    assert rig.watcher.view().outcomes == ()


def test_a_unit_whose_own_restart_gave_up_is_recovered_by_taucg(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Still failed when asked: systemd stopped restarting it (start-limit-hit).
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="on-failure")
    rig.fake.units[UNIT].props[SERVICE]["Result"] = "start-limit-hit"
    asyncio.run(rig.fail())

    assert rig.fake.mutations() == [Call("reset_failed", (UNIT,)),
                                    Call("restart", (UNIT, "replace"))]
    assert rig.rows() == [(1, "restart", "restarted", 0.0)]
    assert any("systemd's Restart=on-failure gave up (start-limit-hit)" in m
               for m in rig.logs), rig.logs


def test_a_failure_its_own_restart_does_not_cover_is_recovered_by_taucg(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Restart=on-abort restarts after unclean signals only; this one exited 3.
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="on-abort")
    asyncio.run(rig.fail())
    assert Call("restart", (UNIT, "replace")) in rig.fake.mutations()
    assert rig.rows() == [(1, "restart", "restarted", 0.0)]


def test_a_unit_systemd_restarted_before_the_read_is_left_to_systemd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in the VM with RestartSec=0: by the time the watcher reads, systemd
    # has restarted the unit; its Result is the new run's "success".
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="on-failure")
    rig.fake.units[UNIT].props[SERVICE]["Result"] = "success"
    rig.fake.set_state(UNIT, "activating", emit=False)
    asyncio.run(rig.fail())
    assert rig.fake.mutations() == []
    assert [e.action for e in rig.history.events(UNIT)] == ["deferred-to-systemd"]


def test_a_deferred_unit_still_failed_after_the_restart_delay_is_recovered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The crash and the start limit in one step: one "failed" signal with a
    # covered Result, then nothing. Still failed and never restarted once
    # systemd's delay has passed: taucg takes it.
    monkeypatch.setattr(RecoveryWatcher, "DEFER_RECHECK_SECONDS", 0.0)
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="on-failure")

    async def scenario() -> None:
        await rig.fail()
        await until(lambda: rig.fake.calls_of("restart") != [] and not rig.watcher._busy)

    asyncio.run(scenario())
    assert [e.action for e in rig.history.events(UNIT)] == ["deferred-to-systemd", "restart"]
    assert rig.fake.mutations() == [Call("reset_failed", (UNIT,)),
                                    Call("restart", (UNIT, "replace"))]


def test_a_deferred_unit_systemd_restarts_again_is_not_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RecoveryWatcher, "DEFER_RECHECK_SECONDS", 0.0)
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', restart="on-failure")

    async def scenario() -> None:
        await rig.fail()
        rig.fake.units[UNIT].props[SERVICE]["NRestarts"] = 1  # systemd restarted it
        for _ in range(50):
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert rig.fake.mutations() == []


def test_take_over_turns_off_systemds_restart_and_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery_watcher, "TAKE_OVER_DIR", tmp_path / "run")
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"\n'
              'systemd_restart = "take_over"', restart="on-failure")
    asyncio.run(rig.fail())

    assert rig.fake.mutations() == [Call("reload", ()), Call("restart", (UNIT, "replace"))]
    dropin = tmp_path / "run" / f"{UNIT}.d" / "50-taucg-take-over.conf"
    assert "[Service]\nRestart=no\n" in dropin.read_text()
    assert rig.rows() == [(1, "restart", "restarted", 0.0)]


def test_failure_during_a_recovery_is_the_next_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart_with_delay"')
    # Both restart jobs fail; afterwards the unit shows "activating", neither
    # failed nor active, so only the failure seen mid-attempt makes a second one.
    rig.fake.errors[("restart", UNIT)] = JobFailed(
        "RestartUnit", UNIT, "job.failed", "job ended with result 'failed'")
    gate = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        rig.delays.append(seconds)
        if len(rig.delays) == 1:
            await gate.wait()

    rig.watcher.sleep = held_sleep

    async def scenario() -> None:
        await rig.watcher.on_state(UNIT, "failed")
        await until(lambda: rig.delays == [5.0])  # first attempt waits its delay
        rig.fake.set_state(UNIT, "activating", emit=False)
        await rig.watcher.on_state(UNIT, "failed")
        for _ in range(20):
            await asyncio.sleep(0)
        # Noted for later: no second recovery runs beside the held first one.
        assert rig.watcher._failed_again == {UNIT}
        assert rig.delays == [5.0] and rig.fake.calls_of("restart") == []
        assert len(rig.history.events(UNIT)) == 1
        gate.set()
        await until(lambda: not rig.watcher._busy)

    asyncio.run(scenario())
    assert rig.fake.calls_of("restart") == [(UNIT, "replace")] * 2
    failed = "restart failed: job ended with result 'failed'"
    assert rig.rows() == [(1, "restart_with_delay", failed, 5.0),
                          (2, "restart_with_delay", failed, 5.0)]
    assert rig.watcher._failed_again == set()


def test_failure_without_one_during_the_attempt_is_one_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control for the test above: same unit state, no failure mid-attempt.
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart_with_delay"')
    rig.fake.errors[("restart", UNIT)] = JobFailed(
        "RestartUnit", UNIT, "job.failed", "job ended with result 'failed'")
    rig.fake.set_state(UNIT, "activating", emit=False)
    asyncio.run(rig.fail())
    assert rig.fake.calls_of("restart") == [(UNIT, "replace")]


def test_stable_uptime_resets_the_attempts(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    tracker = rig.watcher.trackers[UNIT]

    async def scenario() -> None:
        await rig.fail()
        rig.clock.now += 10
        await rig.fail()
        assert tracker.failures == [T0, T0 + 10]
        await rig.watcher.on_state(UNIT, "active")  # up since T0 + 10
        rig.clock.now += 59.0
        await rig.watcher.on_state(UNIT, "active")
        assert tracker.failures == [T0, T0 + 10]  # a second short of stable
        rig.clock.now += 1.0
        await rig.watcher.on_state(UNIT, "active")
        assert tracker.failures == []
        rig.clock.now += 5
        await rig.fail()

    asyncio.run(scenario())
    # Without the reset the third failure would have been attempt 3.
    assert [e.attempt for e in rig.history.events(UNIT)] == [1, 2, 1]


def test_signals_drive_recovery_of_watched_units_only(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    rig.fake.add_service("other.service", "failed")

    async def scenario() -> None:
        stream = await rig.fake.signals()
        follow = asyncio.get_running_loop().create_task(rig.watcher._follow(stream))
        await until(lambda: rig.fake.subscribed)
        rig.fake.emit_active_state("other.service", "failed")  # not watched
        rig.fake.emit_active_state(UNIT, "failed", interface=SERVICE)  # not Unit's
        for _ in range(20):
            await asyncio.sleep(0)
        assert rig.fake.mutations() == []
        rig.fake.emit_active_state(UNIT, "failed")
        await until(lambda: len(rig.history.events(UNIT)) == 1 and not rig.watcher._busy)
        follow.cancel()

    asyncio.run(scenario())
    assert rig.fake.mutations() == [Call("restart", (UNIT, "replace"))]
    assert rig.rows() == [(1, "restart", "restarted", 0.0)]


def test_run_rescans_then_stops_when_the_bus_goes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # svc-a failed while nobody watched: the rescan at start recovers it.
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(rig.watcher.run())
        await until(lambda: rig.fake.calls_of("restart") != [] and not rig.watcher._busy)
        rig.fake.bus.disconnect()
        with pytest.raises(SystemdUnavailable, match="closed the connection"):
            await task

    asyncio.run(scenario())
    assert rig.fake.calls_of("subscribe") != []
    assert rig.fake.mutations() == [Call("restart", (UNIT, "replace"))]
    assert rig.rows() == [(1, "restart", "restarted", 0.0)]


def test_a_unit_failing_while_the_rescan_reads_it_is_still_recovered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rescan sees svc-a active; it fails just after. Its signal arrives
    # before the follower reads its first one, and must not be lost.
    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"', state="active")
    read = rig.fake.properties

    async def read_then_fail(name: str, interface: str = UNIT_INTERFACE) -> dict[str, Any]:
        props = await read(name, interface)
        if name == UNIT and interface == UNIT_INTERFACE and not rig.fake.calls_of("restart"):
            rig.fake.set_state(UNIT, "failed")
        return props

    monkeypatch.setattr(rig.fake, "properties", read_then_fail)

    async def scenario() -> None:
        task = asyncio.get_running_loop().create_task(rig.watcher.run())
        await until(lambda: rig.fake.calls_of("restart") != [] and not rig.watcher._busy)
        task.cancel()

    asyncio.run(scenario())
    assert rig.fake.mutations() == [Call("restart", (UNIT, "replace"))]
    assert "ready: following the units' state changes" in rig.logs


def test_escalation_and_safe_mode_survive_a_watcher_restart(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A daemon restart used to reset every unit's attempts and forget safe
    mode, leaving the low tiers frozen with nobody to thaw them."""
    chain = """
default_strategy = "restart"
chain = ["restart", "fallback_to_safe_mode", "notify_admin"]
[recovery.services."svc-a.service"]
max_attempts = 2
"""
    first = Rig(tmp_path, monkeypatch, chain)
    first.fake.script_restarts(UNIT, "active")
    asyncio.run(first.fail())
    asyncio.run(first.fail())  # two attempts of "restart" within the window
    assert first.watcher.trackers[UNIT].strategy == "restart"
    first.history.close()
    # A new watcher (a restarted daemon) on the same state directory:
    second = Rig(tmp_path, monkeypatch, chain)
    second.clock.now = first.clock.now + 1
    assert len(second.watcher.trackers[UNIT].failures) == 2  # replayed from history
    second.fake.script_restarts(UNIT, "active")
    asyncio.run(second.fail())  # the third failure escalates, as it would have
    assert second.rows()[-1][1] == "fallback_to_safe_mode"
    assert second.watcher.safe_mode
    second.history.close()
    third = Rig(tmp_path, monkeypatch, chain)
    assert third.watcher.safe_mode, "safe mode was forgotten across the restart"


def test_safe_mode_ends_on_a_timer_when_no_signal_follows(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import dataclasses

    rig = Rig(tmp_path, monkeypatch, """
default_strategy = "fallback_to_safe_mode"
""")
    rig.fake.script_restarts(UNIT, "active")
    tracker = rig.watcher.trackers[UNIT]
    tracker.policy = dataclasses.replace(tracker.policy, stable_seconds=0.1)

    async def main() -> None:
        await rig.fail()
        assert rig.watcher.safe_mode
        await rig.watcher.on_state(UNIT, "active")  # the one signal there is
        rig.clock.now += 1.0  # the unit then stays up past stable_seconds
        for _ in range(200):  # the timer looks again by itself
            if not rig.watcher.safe_mode:
                break
            await asyncio.sleep(0.05)

    asyncio.run(main())
    assert not rig.watcher.safe_mode
    assert rig.fake.calls_of("thaw") == [(LOW,), (BACKGROUND,)]


# ---------------------------------------------------------- drills, flight ---


def test_a_drill_marker_for_the_killed_pid_marks_the_crash(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from taucg.actors import drills

    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    rig.fake.units[UNIT].props[SERVICE]["ExecMainPID"] = 4242
    frozen: list[str] = []
    rig.watcher.flight = lambda u: (frozen.append(u), b"flight-blob")[1]
    state = tmp_path / "state"
    drills.mark(state, drills.Drill(UNIT, 4242, 11, T0 - 1, T0 + 100, "test"))
    asyncio.run(rig.fail())
    (row,) = rig.history.events(UNIT)
    assert row.drill and row.outcome == "restarted"
    assert row.flight_bytes == len(b"flight-blob")
    assert rig.history.flight(row.id or 0) == b"flight-blob"
    assert frozen == [UNIT]
    assert drills.read(state, UNIT) is None  # taken
    assert rig.history.stats() == []  # a drill is no failure
    assert rig.history.drills(UNIT) == 1


def test_a_marker_for_another_pid_or_expired_is_no_drill(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from taucg.actors import drills

    rig = Rig(tmp_path, monkeypatch, 'default_strategy = "restart"')
    rig.fake.units[UNIT].props[SERVICE]["ExecMainPID"] = 4242
    state = tmp_path / "state"
    drills.mark(state, drills.Drill(UNIT, 999, 11, T0 - 1, T0 + 100, "test"))
    asyncio.run(rig.fail())
    assert not rig.history.events(UNIT)[-1].drill
    assert drills.read(state, UNIT) is not None  # still waiting for its own PID
    drills.mark(state, drills.Drill(UNIT, 4242, 11, T0 - 200, T0 - 100, "test"))
    rig.fake.units[UNIT].props[UNIT_INTERFACE]["ActiveState"] = "failed"
    asyncio.run(rig.fail())
    assert not rig.history.events(UNIT)[-1].drill
    assert drills.read(state, UNIT) is None  # expired: removed
    assert rig.history.stats()[0].failures == 2
