"""Every command line of the seed's usage section, as the README lists it,
runs: exit 0 or a documented status with a clear message, never "no such
command" or a traceback."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.host.conftest import BIN, wait_until_serving
from tests.support.configs import daemon_config

README = Path(__file__).resolve().parents[2] / "README.md"
# health and tau-monitor --check answer 1 below health_score_threshold (documented).
HEALTH_VERDICT = {0, 1}


def seed_lines() -> list[str]:
    text = README.read_text()
    m = re.search(r"<!-- seed-usage:begin -->\s*```sh\n(.*?)```\s*<!-- seed-usage:end -->",
                  text, re.S)
    assert m, "README has no seed-usage section"
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


def argv(line: str) -> list[str]:
    words = shlex.split(line)
    return [str(BIN / words[0]), *words[1:]]


def run(line: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(line), capture_output=True, check=False, text=True, env=env,
                          timeout=timeout)


def check_clean(line: str, r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    for bad in ("Traceback", "No such command", "No such option", "no such option"):
        assert bad not in out, f"{line}: {bad!r} in output:\n{out}"


def test_the_readme_lists_the_seed_usage() -> None:
    lines = seed_lines()
    assert len(lines) == 20
    assert {line.split()[0] for line in lines} == {"tau-monitor", "tau-monitor-cli"}
    subcommands = {line.split()[1] for line in lines if line.startswith("tau-monitor-cli")}
    assert subcommands == {"health", "resources", "processes", "recovery", "logs", "config"}


def test_every_seed_command_line_runs(start_daemon: Any) -> None:
    d = start_daemon()
    env = d.env()
    cli_lines = [line for line in seed_lines() if line.startswith("tau-monitor-cli")]
    for line in cli_lines:
        r = run(line, env, 120)
        check_clean(line, r)
        allowed = HEALTH_VERDICT if " health" in line else {0}
        assert r.returncode in allowed, f"{line}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        assert r.stdout.strip(), f"{line}: printed nothing"
    # The daemon lines need the socket free.
    assert d.stop() == 0
    for line in [line for line in seed_lines() if line.startswith("tau-monitor ")]:
        if line.endswith("--foreground"):
            proc = subprocess.Popen(argv(line), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            wait_until_serving(d.socket, proc)
            proc.send_signal(signal.SIGTERM)  # our own child, by PID
            assert proc.wait(30) == 0, line
        elif line.endswith("--daemon"):
            r = run(line, env, 60)
            check_clean(line, r)
            assert r.returncode == 0, f"{line}: {r.stdout}{r.stderr}"
            pidfile = d.root / "taucg.pid"
            pid = int(pidfile.read_text())
            assert f"pid {pid}" in r.stdout
            assert d.call("ping")["pid"] == pid  # type: ignore[index]
            os.kill(pid, signal.SIGTERM)  # the daemon this test started, by PID
            deadline = time.monotonic() + 30
            while pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not pidfile.exists(), "the pidfile outlived the daemon"
        else:
            r = run(line, env, 120)
            check_clean(line, r)
            assert r.returncode in HEALTH_VERDICT, f"{line}: {r.stdout}{r.stderr}"
            assert r.stdout.startswith("health "), r.stdout


def test_commands_needing_the_daemon_say_so(daemon_root: Path) -> None:
    env = {**os.environ, "TAUCG_CONFIG": str(daemon_config(daemon_root))}
    for line in ("tau-monitor-cli logs --stats", "taucg alerts", "taucg history"):
        r = run(line, env, 60)
        assert r.returncode == 3, (line, r.stdout, r.stderr)
        assert "the taucg daemon is not running" in r.stderr
        assert "systemctl start taucg" in r.stderr
        check_clean(line, r)


def test_tau_monitor_daemon_refuses_a_second_one(start_daemon: Any) -> None:
    d = start_daemon()
    (d.root / "taucg.pid").write_text(f"{d.proc.pid}\n")
    r = subprocess.run(argv("tau-monitor --daemon"), capture_output=True, check=False, text=True,
                       env=d.env(), timeout=60)
    assert r.returncode == 1
    assert f"already runs as pid {d.proc.pid}" in r.stdout + r.stderr


def test_tau_monitor_wants_exactly_one_mode(daemon_root: Path) -> None:
    env = {**os.environ, "TAUCG_CONFIG": str(daemon_config(daemon_root))}
    for line in ("tau-monitor", "tau-monitor --daemon --check"):
        r = run(line, env, 60)
        assert r.returncode == 2, (line, r.stdout, r.stderr)
        assert "choose one of --foreground, --daemon or --check" in r.stderr
