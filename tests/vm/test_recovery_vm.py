"""Crash recovery against real systemd: real crashes, D-Bus restarts,
backoff, safe mode through FreezeUnit, and the history rows."""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.actors.crash_history import CrashEvent, CrashHistory
from taucg.actors.systemd_dbus import SERVICE, SystemdError
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import Section, merged, write_config

from .helpers import CGROUP_ROOT, StderrLog, unit_state, wait_for

UNIT_DIR = Path("/etc/systemd/system")
CRASHY = "tau-crashy.service"
OK_MARK = Path("/run/taucg-crashy-ok")

# Crashes with SIGSEGV about a second after it starts, unless OK_MARK exists.
CRASHY_UNIT = f"""[Service]
ExecStart=/bin/sh -c 'if [ -e {OK_MARK} ]; then exec sleep infinity; fi; sleep 1; kill -SEGV $$$$'
"""


@pytest.fixture
def crashy(systemd: BlockingSystemd) -> Iterator[str]:
    (UNIT_DIR / CRASHY).write_text(CRASHY_UNIT)
    OK_MARK.unlink(missing_ok=True)
    systemd.reload()
    yield CRASHY
    OK_MARK.unlink(missing_ok=True)
    for action in (systemd.stop, systemd.reset_failed):
        with contextlib.suppress(SystemdError):
            action(CRASHY)
    (UNIT_DIR / CRASHY).unlink()
    systemd.reload()


def crashy_policy(**service: Any) -> dict[str, Any]:
    """The [recovery] table with one [recovery.services."tau-crashy.service"]."""
    return {"services": {CRASHY: service}}


def watcher(tmp_path: Path, critical: tuple[str, ...] = ("tau-crashy",), **sections: Section
            ) -> tuple[StderrLog, Path]:
    state = tmp_path / "state"
    base = {"crash_recovery": {"critical_processes": list(critical), "state_directory": state,
                               "recovery_timeout_seconds": 60,
                               "session_state_path": tmp_path / "session"}}
    cfg = write_config(tmp_path / "taucg.toml", **merged(base, sections))
    p = subprocess.Popen(taucg_argv("recovery", "watch", config=cfg),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = StderrLog(p)
    # Subscribed, rescanned and following: from here no unit change is missed.
    log.wait_for("ready: following the units' state changes", 180)
    return log, state / "history.db"


def rows(db: Path) -> list[CrashEvent]:
    if not db.exists():
        return []
    h = CrashHistory(db)
    try:
        return h.events(CRASHY)
    finally:
        h.close()


def main_cmdline(systemd: BlockingSystemd, unit: str) -> str:
    pid = int(systemd.get_property(unit, "MainPID", SERVICE))
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # between two processes
        return ""


def stop(log: StderrLog) -> str:
    """Stops the watcher; its log is printed so a failing test shows it."""
    log.proc.terminate()
    err = log.finish()
    print(f"--- recovery watcher log ---\n{err}")
    return err


def test_segv_is_restarted_through_dbus(systemd: BlockingSystemd, crashy: str,
                                        tmp_path: Path) -> None:
    p, db = watcher(tmp_path, recovery=crashy_policy(strategy="restart"))
    try:
        systemd.start(crashy)
        wait_for(lambda: rows(db), 120, "the crash to be recorded")
        OK_MARK.touch()  # from now on a restarted process stays up
        wait_for(lambda: any(r.outcome == "restarted" for r in rows(db)), 180,
                 "the crash to be recovered")
        wait_for(lambda: unit_state(systemd, crashy) == "active", 60, "the unit to be up")
        first = rows(db)[0]
        assert first.result in ("signal", "core-dump")
        assert first.signal == 11
        assert (first.action, first.attempt) == ("restart", 1)
    finally:
        err = stop(p)
    assert "tau-crashy.service failed" in err


def test_backoff_grows_and_resets_after_stable_uptime(systemd: BlockingSystemd, crashy: str,
                                                      tmp_path: Path) -> None:
    p, db = watcher(tmp_path, recovery={
        "stable_seconds": 20.0,
        **crashy_policy(strategy="restart_with_backoff", max_attempts=10, delay_seconds=1.0,
                        max_delay_seconds=6.0, backoff_multiplier=2.0)})
    try:
        systemd.start(crashy)
        wait_for(lambda: len([r for r in rows(db) if r.outcome != "pending"]) >= 4, 300,
                 "four backed-off restarts")
        OK_MARK.touch()
        delays = [r.delay for r in rows(db)[:4]]
        for got, want in zip(delays, (1.0, 2.0, 4.0, 6.0), strict=True):
            assert want * 0.9 - 0.01 <= got <= min(6.0, want * 1.1) + 0.01, delays
        # A process started before the mark still crashes (within ~1 s);
        # once the one running is the `sleep infinity` the mark leads to, and
        # every crash is recovered, the unit must stay up past stable_seconds.
        # The shell's own command line holds the word too: the exec'd sleep.
        wait_for(lambda: main_cmdline(systemd, crashy).startswith("sleep infinity"), 180,
                 "the crashy service to run past the mark")
        wait_for(lambda: all(r.outcome != "pending" for r in rows(db))
                 and unit_state(systemd, crashy) == "active", 120, "the unit to stay up")
        settled = len(rows(db))
        p.wait_for(f"{CRASHY} stayed up for 20 s: its recovery starts afresh", 180)
        assert len(rows(db)) == settled, "the unit crashed again while it should stay up"
        OK_MARK.unlink()
        before = len(rows(db))
        systemd.kill_unit(crashy, 11)
        wait_for(lambda: len(rows(db)) > before, 120, "the next crash to be recorded")
        after = rows(db)[before]
        assert after.attempt == 1, "the attempt counter did not reset after stable uptime"
        assert 0.9 <= after.delay <= 1.1
    finally:
        stop(p)


def test_safe_mode_freezes_low_and_background_then_notifies(systemd: BlockingSystemd,
                                                            crashy: str,
                                                            tmp_path: Path) -> None:
    taucg("apply")
    p, db = watcher(tmp_path, recovery={
        "chain": ["restart", "fallback_to_safe_mode", "notify_admin"],
        **crashy_policy(strategy="restart", max_attempts=2)})
    try:
        systemd.start(crashy)
        wait_for(lambda: any(r.action == "notify_admin" and r.outcome != "pending"
                             for r in rows(db)), 400, "notify_admin to fire")
        actions = [r.action for r in rows(db)]
        assert actions[:5] == ["restart", "restart", "fallback_to_safe_mode",
                               "fallback_to_safe_mode", "notify_admin"]
        for tier in ("low", "background"):
            cg = CGROUP_ROOT / "tau.slice" / f"tau-{tier}.slice"
            assert (cg / "cgroup.freeze").read_text().strip() == "1"
            assert "frozen 1" in (cg / "cgroup.events").read_text()
        assert "safe mode (froze tau-low.slice, tau-background.slice)" in next(
            r.outcome for r in rows(db) if r.action == "fallback_to_safe_mode")
        crit = CGROUP_ROOT / "tau.slice" / "tau-critical.slice"
        assert (crit / "cgroup.freeze").read_text().strip() == "0"
        journal = subprocess.run(["journalctl", "-b", "-p", "crit", "-t", "taucg", "-o", "json",
                                  "--no-pager"], capture_output=True, text=True, check=False)
        entries = [json.loads(line) for line in journal.stdout.splitlines()]
        assert any(e.get("TAUCG_UNIT") == crashy for e in entries), journal.stdout[-2000:]
    finally:
        stop(p)
        out = taucg("recovery", "leave-safe-mode").stdout
    assert "tau-low.slice" in out and "tau-background.slice" in out
    cg = CGROUP_ROOT / "tau.slice" / "tau-low.slice"
    assert (cg / "cgroup.freeze").read_text().strip() == "0"


def test_history_records_an_oom_kill(systemd: BlockingSystemd, crashy: str,
                                     tmp_path: Path) -> None:
    code = "x = b'x' * (200 << 20)"
    (UNIT_DIR / crashy).write_text(
        f"[Service]\nMemoryMax=48M\nMemorySwapMax=0\nExecStart={sys.executable} -S -c \"{code}\"\n")
    systemd.reload()
    p, db = watcher(tmp_path, recovery=crashy_policy(strategy="notify_admin"))
    try:
        systemd.start(crashy, wait=False)
        wait_for(lambda: any(r.outcome != "pending" for r in rows(db)), 240,
                 "the OOM kill to be recorded")
        first = rows(db)[0]
        assert first.result == "oom-kill"
        assert first.signal == 9
        assert first.outcome.startswith("notified")
        hist = json.loads(taucg("recovery", "--history", "--format", "json",
                                config=tmp_path / "taucg.toml").stdout)
        assert hist["units"][0]["unit"] == crashy
        assert hist["events"][0]["result"] == "oom-kill"
    finally:
        stop(p)


def test_session_state_is_saved_and_restored(systemd: BlockingSystemd, crashy: str,
                                             tmp_path: Path) -> None:
    companion = "tau-companion.service"
    (UNIT_DIR / companion).write_text(f"[Unit]\nBindsTo={crashy}\nAfter={crashy}\n"
                                      "[Service]\nExecStart=/bin/sleep infinity\n")
    systemd.reload()
    OK_MARK.touch()
    try:
        systemd.start(crashy)
        systemd.start(companion)
        p, db = watcher(tmp_path, critical=("tau-crashy", "tau-companion"),
                        recovery=crashy_policy(strategy="restart"))
        cfg = tmp_path / "taucg.toml"
        blob = tmp_path / "blob.bin"
        blob.write_bytes(b"cursor=42\n")
        taucg("recovery", "save-state", crashy, str(blob), config=cfg)
        snap_file = tmp_path / "session" / "session.json"
        wait_for(lambda: snap_file.exists() and crashy in snap_file.read_text(), 60,
                 "a session snapshot")
        def session() -> dict[str, Any]:
            out = taucg("recovery", "--session", "--format", "json", config=cfg).stdout
            return dict(json.loads(out)["snapshot"] or {"blobs": []})

        # Snapshots come every 30 s: a later one also lists the blob.
        snap = wait_for(lambda: (s := session())["blobs"] == [crashy] and s, 180,
                        "a session snapshot that lists the saved blob")
        states = {u["unit"]: u["active_state"] for u in snap["units"]}
        assert states[companion] == "active"
        assert snap["blobs"] == [crashy]
        OK_MARK.unlink()
        systemd.kill_unit(crashy, 11)
        OK_MARK.touch()  # the restarted service stays up
        wait_for(lambda: any("restored" in r.outcome for r in rows(db)), 180,
                 "the session to be restored")
        outcome = next(r.outcome for r in rows(db) if "restored" in r.outcome)
        assert f"restored {companion}" in outcome
        assert f"handed back at /run/taucg/state/{crashy}" in outcome
        assert unit_state(systemd, companion) == "active"
        assert Path(f"/run/taucg/state/{crashy}").read_bytes() == b"cursor=42\n"
        stop(p)
    finally:
        with contextlib.suppress(SystemdError):
            systemd.stop(companion)
        (UNIT_DIR / companion).unlink()
        systemd.reload()


def _reaction(systemd: BlockingSystemd, unit: str) -> float:
    """Seconds from a SIGSEGV to the unit running a new main process."""
    old = systemd.get_property(unit, "MainPID", "org.freedesktop.systemd1.Service")
    t0 = time.monotonic()
    systemd.kill_unit(unit, 11)
    while True:
        pid = systemd.get_property(unit, "MainPID", "org.freedesktop.systemd1.Service")
        if pid and pid != old and unit_state(systemd, unit) == "active":
            return time.monotonic() - t0
        if time.monotonic() - t0 > 120:
            pytest.fail(f"{unit} was not restarted within 120 s")
        time.sleep(0.05)


def test_bench_recovery_against_systemd_restart(systemd: BlockingSystemd, crashy: str,
                                                tmp_path: Path,
                                                report: Callable[[str], None]) -> None:
    own = "tau-selfheal.service"
    (UNIT_DIR / own).write_text("[Service]\nExecStart=/bin/sleep infinity\n"
                                "Restart=always\nRestartSec=0\n")
    systemd.reload()
    OK_MARK.touch()  # crashy stays up until killed
    p, _db = watcher(tmp_path, recovery=crashy_policy(strategy="restart"))
    try:
        systemd.start(crashy)
        systemd.start(own)
        ours = [_reaction(systemd, crashy) for _ in range(3)]
        theirs = [_reaction(systemd, own) for _ in range(3)]
    finally:
        stop(p)
        with contextlib.suppress(SystemdError):
            systemd.stop(own)
        (UNIT_DIR / own).unlink()
        systemd.reload()
    ratio = statistics.median(ours) / statistics.median(theirs)
    report(f"\nBENCH crash -> running again: taucg RestartUnit median "
           f"{statistics.median(ours):.2f} s, systemd Restart=always median "
           f"{statistics.median(theirs):.2f} s, ratio {ratio:.1f}x (VM, emulated)")


def test_a_crash_during_a_bus_outage_is_found_by_the_rescan(systemd: BlockingSystemd,
                                                            crashy: str,
                                                            tmp_path: Path) -> None:
    OK_MARK.touch()
    systemd.start(crashy)
    p, db = watcher(tmp_path, recovery=crashy_policy(strategy="restart"))
    try:
        # systemctl talks to PID 1 over its private socket: it works without dbus.
        subprocess.run(["systemctl", "stop", "dbus.socket", "dbus.service"], check=True)
        subprocess.run(["systemctl", "kill", "--signal=SIGSEGV", crashy], check=True)
        wait_for(lambda: subprocess.run(["systemctl", "is-failed", "--quiet", crashy],
                                        check=False).returncode == 0, 60,
                 "the crash while the bus is down")
        p.wait_for("lost the system bus", 120)  # the bus is back only after this
        subprocess.run(["systemctl", "start", "dbus.socket", "dbus.service"], check=True)
        wait_for(lambda: any(r.outcome == "restarted" for r in rows(db)), 180,
                 "the rescan after reconnecting to recover the unit")
        assert unit_state(systemd, crashy) == "active"
    finally:
        subprocess.run(["systemctl", "start", "dbus.socket", "dbus.service"], check=False)
        err = stop(p)
    assert "lost the system bus" in err
    assert "reconnected to the system bus; rescanning" in err


def with_own_restart(systemd: BlockingSystemd, crashy: str, restart_sec: int,
                     start_limit: int | None = None) -> None:
    """Rewrites the crashy unit with systemd's own Restart=on-failure (and a
    start limit systemd gives up at, if given)."""
    unit = f"[Unit]\nStartLimitBurst={start_limit}\nStartLimitIntervalSec=600\n" \
        if start_limit else ""
    (UNIT_DIR / crashy).write_text(unit + CRASHY_UNIT.replace(
        "[Service]\n", f"[Service]\nRestart=on-failure\nRestartSec={restart_sec}\n"))
    systemd.reload()


def test_a_unit_whose_own_restart_gave_up_is_recovered(systemd: BlockingSystemd, crashy: str,
                                                       tmp_path: Path) -> None:
    with_own_restart(systemd, crashy, restart_sec=0, start_limit=2)
    # The delay leaves time to let the next start stay up.
    p, db = watcher(tmp_path, recovery=crashy_policy(strategy="restart_with_delay",
                                                     delay_seconds=20.0))
    try:
        systemd.start(crashy, wait=False)
        p.wait_for(f"{CRASHY}: systemd's Restart=on-failure gave up (", 300)
        # Before that, the crashes seen were systemd's to restart: deferred.
        actions = [r.action for r in rows(db)]
        assert "deferred-to-systemd" in actions, rows(db)
        assert set(actions) <= {"deferred-to-systemd", "restart_with_delay"}, rows(db)
        OK_MARK.touch()
        wait_for(lambda: any(r.outcome == "restarted" for r in rows(db)), 180,
                 "taucg's restart after systemd gave up")
        assert unit_state(systemd, crashy) == "active"
        recovered = next(r for r in rows(db) if r.outcome == "restarted")
        # Seen in the VM (systemd 252): a unit stopped by its start limit
        # during auto-restart keeps the crash's Result (signal).
        assert recovered.action == "restart_with_delay", recovered
        assert recovered.result in ("signal", "start-limit-hit"), recovered
    finally:
        stop(p)


def test_a_unit_with_its_own_restart_is_left_to_systemd(systemd: BlockingSystemd, crashy: str,
                                                       tmp_path: Path) -> None:
    with_own_restart(systemd, crashy, restart_sec=1)
    p, db = watcher(tmp_path)  # systemd_restart = "defer", the default
    try:
        over = json.loads(taucg("recovery", "--format", "json",
                                config=tmp_path / "taucg.toml").stdout)
        row = next(u for u in over["units"] if u["unit"] == crashy)
        assert row["systemd_restart"] == "on-failure"
        assert row["handled_by"] == "systemd (taucg defers)"
        systemd.start(crashy)
        wait_for(lambda: rows(db), 120, "the crash to be recorded")
        OK_MARK.touch()
        first = rows(db)[0]
        assert (first.action, first.outcome) == ("deferred-to-systemd", "Restart=on-failure")
        wait_for(lambda: int(systemd.get_property(crashy, "NRestarts",
                                                  "org.freedesktop.systemd1.Service")) >= 1,
                 60, "systemd's own restart")
    finally:
        stop(p)


def test_take_over_turns_off_the_units_own_restart(systemd: BlockingSystemd, crashy: str,
                                                   tmp_path: Path) -> None:
    with_own_restart(systemd, crashy, restart_sec=30)
    p, db = watcher(tmp_path, recovery={"systemd_restart": "take_over",
                                        **crashy_policy(strategy="restart")})
    try:
        systemd.start(crashy)
        wait_for(lambda: rows(db), 120, "the crash to be recorded")
        OK_MARK.touch()
        wait_for(lambda: any(r.outcome == "restarted" for r in rows(db)), 120,
                 "taucg's own restart")
        assert rows(db)[0].action == "restart"
        svc = "org.freedesktop.systemd1.Service"
        assert systemd.get_property(crashy, "Restart", svc) == "no"
        assert int(systemd.get_property(crashy, "NRestarts", svc)) == 0  # not systemd's
    finally:
        err = stop(p)
        Path(f"/run/systemd/system/{crashy}.d/50-taucg-take-over.conf").unlink(missing_ok=True)
        systemd.reload()
    assert f"took over restarts of {crashy}" in err
