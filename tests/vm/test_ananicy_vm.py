"""An ananicy tree under the real daemon (taucg.service, real systemd): a
process of the test's own whose comm the tree names is placed in the
mapped tier, with the rule's nice, IO class and oom_score_adj and its
cgroup's CPUQuota on the scope; the skipped lines are in the daemon's log;
a reload (SIGHUP through systemctl reload) reads the tree again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ananicy_corpus import Expect, add_rule, write_corpus
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.cli import taucg

from .helpers import (
    CGROUP_ROOT,
    DAEMON_CONFIG,
    DAEMON_UNIT,
    Units,
    installed_daemon,
    wait_for,
)

# /etc: readable by the hardened service (ProtectSystem=strict keeps it
# read-only, PrivateTmp would hide /tmp).
TREE = Path("/etc/taucg-test-ananicy.d")
LOG = Path("/var/log/tau/monitor.log")
AUDIT = Path("/var/log/tau/audit.log")
CONFIG = f"""
[resource_monitoring]
interval_seconds = 2

[rule_sources]
ananicy = ["{TREE}"]
"""


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def summaries(rules: int) -> list[dict[str, Any]]:
    return [r for r in records(LOG) if r.get("ananicy", {}).get("rules") == rules]


def cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def ionice_of(pid: int) -> str:
    return subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def tree() -> Iterator[Expect]:
    shutil.rmtree(TREE, ignore_errors=True)
    ex = write_corpus(TREE, rules=400)
    yield ex
    shutil.rmtree(TREE, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(systemd: BlockingSystemd, tree: Expect) -> Iterator[Expect]:
    with installed_daemon(systemd, CONFIG):
        yield tree


@pytest.fixture
def spawn(units: Units) -> Iterator[Any]:
    """Copies of sleep under a comm the tree names, each in a scope of its
    own (as a login session's programs are); ended by PID."""
    started: list[subprocess.Popen[bytes]] = []
    bin_dir = Path(tempfile.mkdtemp(prefix="taucg-ananicy-"))
    bin_dir.chmod(0o755)

    def start(comm: str) -> subprocess.Popen[bytes]:
        exe = bin_dir / comm
        shutil.copy2("/bin/sleep", exe)
        p = subprocess.Popen(["systemd-run", "--quiet", "--scope", "--unit",
                              units.name("ana", "scope"), str(exe), "300"])
        started.append(p)
        return p

    yield start
    for p in started:
        p.terminate()
        p.wait(60)
    shutil.rmtree(bin_dir, ignore_errors=True)


def placed_in(pid: int, tier: str, comm: str) -> Path:
    wait_for(lambda: f"/tau-{tier}.slice/taucg-{tier}-{comm}-{pid}.scope" in cgroup_of(pid),
             120, f"{comm} to be placed in {tier}")
    return CGROUP_ROOT / cgroup_of(pid).lstrip("/")


def test_the_tree_loads_with_its_bad_lines_logged(daemon: Expect) -> None:
    ex = daemon
    first = wait_for(lambda: summaries(ex.rules), 120, "the daemon's ananicy summary")
    assert first[-1]["ananicy"]["skipped_lines"] == len(ex.bad)
    problems = {r.get("problem") for r in records(LOG)}
    for f, n, _ in ex.bad:
        assert any(p and p.startswith(f"{f}:{n}: ") for p in problems), (f, n)


def test_a_matching_comm_is_placed_with_the_rules_settings(daemon: Expect, spawn: Any) -> None:
    ex = daemon
    p = spawn("taucg-anaprey")
    scope = placed_in(p.pid, "low", "taucg-anaprey")
    # Heavy_CPU -> low; the rule's own nice 12 and oom_score_adj 555 over the
    # low tier's 10 and 300; ioclass idle; cgroup cpu30: 30% of all CPUs.
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, p.pid) == 12, 60, "nice 12")
    assert int(Path(f"/proc/{p.pid}/oom_score_adj").read_text()) == 555
    assert ionice_of(p.pid) == "idle"
    cpus = os.cpu_count() or 1
    assert (scope / "cpu.max").read_text().split() == [str(30 * cpus * 1000), "100000"]
    file, line = ex.lines["taucg-anaprey"]

    def audited() -> list[dict[str, Any]]:
        return [r for r in records(AUDIT) if r.get("action") == "place"
                and r.get("target") == f"{p.pid} (taucg-anaprey)"]

    record = wait_for(audited, 60, "the placement's audit record")[0]
    assert record["rule"] == f"ananicy {file}:{line} (taucg-anaprey)"
    why = taucg("processes", "--why", str(p.pid), config=DAEMON_CONFIG).stdout
    assert f"ananicy {file}:{line} (taucg-anaprey) matched" in why
    assert "currently in tier: low" in why


def test_reload_reads_the_tree_again(daemon: Expect, spawn: Any) -> None:
    ex = daemon
    wait_for(lambda: summaries(ex.rules), 120, "the daemon's first summary")
    file, line = add_rule(TREE, "taucg-anareload", {"type": "BG_CPUIO"})
    subprocess.run(["systemctl", "reload", DAEMON_UNIT], check=True, timeout=120)
    wait_for(lambda: summaries(ex.rules + 1), 120, "the re-read tree's summary")
    p = spawn("taucg-anareload")
    scope = placed_in(p.pid, "background", "taucg-anareload")
    # BG_CPUIO (our .types file): nice 16, idle IO and CPU policy, cgroup cpu30.
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, p.pid) == 16, 60, "nice 16")
    assert os.sched_getscheduler(p.pid) == os.SCHED_IDLE
    assert ionice_of(p.pid) == "idle"
    cpus = os.cpu_count() or 1
    assert (scope / "cpu.max").read_text().split() == [str(30 * cpus * 1000), "100000"]
    rec = wait_for(lambda: [r for r in records(AUDIT) if r.get("action") == "place"
                            and r.get("target") == f"{p.pid} (taucg-anareload)"], 60,
                   "the audit record")[0]
    assert rec["rule"] == f"ananicy {file}:{line} (taucg-anareload)"
