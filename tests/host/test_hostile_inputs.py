"""Inputs that used to hang or crash: a FIFO or huge file as the config,
NaN on the command line, a storm of SIGHUPs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import taucg


def test_a_fifo_as_config_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "taucg.toml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = taucg("config", "check", str(fifo), check=False, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "is not a regular file (a FIFO, socket or device)" in r.stderr
    assert "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 100  # it answered; before, it waited forever


def test_a_huge_config_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "taucg.toml"
    big.write_text("# padding\n" * 300_000)
    r = taucg("config", "check", str(big), check=False)
    assert r.returncode == 2
    assert f"is {big.stat().st_size} bytes; a config may have at most 1048576" in r.stderr


def test_nan_on_the_command_line_is_a_usage_error() -> None:
    for args in (["resources", "--watch", "nan"], ["status", "--interval", "nan"],
                 ["resources", "--interval", "nan"]):
        r = taucg(*args, check=False)
        assert r.returncode == 2, (args, r.stderr)
        assert "is not a finite number" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_a_sighup_storm_reloads_a_few_times_and_never_adds_a_sampler(start_daemon: Any
                                                                     ) -> None:
    d = start_daemon()  # interval_seconds = 1
    before = d.call("ping")
    for _ in range(100):
        os.kill(d.proc.pid, signal.SIGHUP)
    # Wait for the reloads to settle: the generation stops moving.
    deadline = time.monotonic() + 120
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        gen = d.call("ping")["generation"]
        if gen != last:
            last, still_since = gen, time.monotonic()
        elif time.monotonic() - still_since > 3:
            break
        time.sleep(0.2)
    assert before["generation"] < last <= before["generation"] + 3, last
    first = d.call("ping")["sweeps"]
    time.sleep(5)
    swept = d.call("ping")["sweeps"] - first
    # One sampling loop at 1 s does at most ~6 sweeps in 5 s (a slow machine
    # does fewer); a loop per reload would do a multiple of that.
    assert swept <= 7, f"{swept} sweeps in 5 s: more than one sampling loop runs"
    assert d.proc.poll() is None


def test_a_damaged_sample_history_is_moved_aside_and_the_daemon_serves(
        daemon_root: Path, start_daemon: Any) -> None:
    from taucg.actors.sample_store import SampleStore
    from tests.host.test_store import damage_a_page

    state = daemon_root / "state"
    state.mkdir(parents=True, exist_ok=True)
    store = SampleStore(state / "samples.db", keep_seconds=1e9)
    for i in range(2000):
        store.add(time.time() - 1000 + i * 0.1, {"cpu_percent": float(i), "load1": 1.0})
    store.close()
    damage_a_page(state / "samples.db", "samples")
    d = start_daemon()  # before the fix: a traceback at start, a crash loop under Restart=
    assert d.call("ping")["pid"] == d.proc.pid
    moved = list(state.glob("samples.db.damaged-*"))
    assert len(moved) == 1, list(state.iterdir())
    errors = [r["message"] for r in d.call("logs.recent", count=50, level="error")]
    assert any("sample history disabled" in m and "damaged" in m for m in errors), errors


def test_logs_and_state_are_not_world_readable(daemon_root: Path, start_daemon: Any) -> None:
    import stat

    d = start_daemon()
    d.call("reload")  # audited: the audit log exists
    deadline = time.monotonic() + 60
    wanted = [d.log_dir / n for n in ("monitor.log", "audit.log", "performance.log")]
    wanted.append(daemon_root / "state" / "samples.db")
    while not all(p.exists() for p in wanted) and time.monotonic() < deadline:
        time.sleep(0.2)
    for p in wanted:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, (p, oct(p.stat().st_mode))
    for p in (daemon_root / "state").glob("samples.db-*"):
        assert not stat.S_IMODE(p.stat().st_mode) & 0o007, (p, oct(p.stat().st_mode))


def test_a_symlink_at_a_log_or_state_path_is_refused(tmp_path: Path) -> None:
    from taucg.actors.records import audit
    from taucg.actors.sample_store import SampleStore
    from taucg.actors.sqlite_db import StoreError
    from taucg.config.loading import loads

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "audit.log").symlink_to(victim)
    (tmp_path / "samples.db").symlink_to(victim)
    cfg = loads(f'[logging]\naudit_log_path = "{tmp_path / "audit.log"}"\n'
                f'performance_log_path = "{tmp_path / "perf.log"}"\n')
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        audit(cfg.logging, "test", "nothing")
    assert "is a symbolic link" in err.getvalue(), err.getvalue()
    with pytest.raises(StoreError, match="is a symbolic link"):
        SampleStore(tmp_path / "samples.db", 60)
    assert victim.read_text() == "precious\n"


def test_a_symlinked_pidfile_is_refused(tmp_path: Path) -> None:
    from tests.support.cli import taucg
    from tests.support.configs import private_paths, write_config

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    paths = private_paths(tmp_path)
    pidfile = Path(str(paths["daemon"]["pidfile"]))
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.symlink_to(victim)
    cfg = write_config(tmp_path / "taucg.toml", **paths)
    r = taucg("daemon", "--detach", config=cfg, check=False, timeout=120)
    assert r.returncode != 0
    assert "is a symbolic link" in (r.stdout + r.stderr), (r.stdout, r.stderr)
    assert victim.read_text() == "precious\n"


def test_the_api_answers_while_logs_recent_scans_a_large_log(start_daemon: Any) -> None:
    import threading

    from taucg.faces.socket_client import call

    d = start_daemon()
    line = json.dumps({"time": "2026-01-01T00:00:00+0000", "level": "INFO",
                       "logger": "taucg", "message": "x" * 200}) + "\n"
    with (d.log_dir / "monitor.log").open("a") as f:
        f.write(line * 400_000)  # about 100 MB that a level filter must read through
    done = threading.Event()

    def scan() -> None:
        call(d.socket, "logs.recent", {"count": 5, "level": "critical"}, timeout=300)
        done.set()

    t = threading.Thread(target=scan)
    t.start()
    answered_during = 0
    while not done.is_set():
        call(d.socket, "ping", timeout=60)
        if not done.is_set():
            answered_during += 1
    t.join()
    # Before, the scan ran on the loop: no ping was answered until it ended.
    assert answered_during >= 1


def test_a_hung_statvfs_does_not_stop_the_loop(tmp_path: Path, monkeypatch: Any) -> None:
    import asyncio
    import threading

    from taucg.config.loading import load
    from taucg.faces.daemon import Daemon
    from taucg.readers import sysinfo
    from tests.support.configs import daemon_config

    release = threading.Event()
    calls = []

    def hung(*_a: Any, **_k: Any) -> list[Any]:
        calls.append(1)
        release.wait(60)  # a statvfs on a dead NFS server
        return []

    monkeypatch.setattr(sysinfo, "filesystems", hung)

    async def main() -> tuple[float, float]:
        d = Daemon(load(daemon_config(tmp_path)), None)
        try:
            t0 = time.monotonic()
            await d._refresh_disks(timeout=0.5)
            first = time.monotonic() - t0
            t0 = time.monotonic()
            await d._refresh_disks(timeout=0.5)  # still stuck: no second reader
            return first, time.monotonic() - t0
        finally:
            release.set()
            d.sampler.close()

    first, second = asyncio.run(main())
    assert first < 30 and second < 30  # it returned; before, the loop was stuck
    assert len(calls) == 1


def test_a_slow_notify_command_does_not_block_the_loop() -> None:
    import asyncio

    from taucg.actors.recovery_watcher import notify_admin

    async def main() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.get_running_loop().create_task(ticker())
        told = await notify_admin("x.service", "test", {}, "sleep 2")
        task.cancel()
        return told, ticks

    told, ticks = asyncio.run(main())
    assert "command exit 0" in told
    assert ticks >= 5  # the loop turned while the command ran
