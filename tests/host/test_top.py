"""`taucg top` on this machine, through tmux: it draws, refreshes, sorts,
filters, expands and collapses, and q exits 0. The host has no systemd and
no cgroup v2 tiers, so the view must say so and show the machine's
processes by cgroup instead: two processes of the test's own, with names
of their own and very different sizes, must appear in it, in the order
each sort key asks for. Also --once (plain and JSON against its schema),
the errors, and the daemon's subscription and history on a real daemon."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taucg.faces.socket_client import call
from tests.host.conftest import REPO
from tests.support.cli import taucg, taucg_argv
from tests.support.configs import private_paths, write_config
from tests.support.json_contract import error_document, one_document
from tests.support.tmux import Terminal
from tests.support.waiting import wait_for

SMALL, BIG = "0-tautop-small", "zz-tautop-big"  # first and last by name
BIG_BYTES = 400 << 20
CLOCK = re.compile(r"taucg top  (\d\d:\d\d:\d\d)")
PROCESS_LINE = re.compile(r"^\s{6,}(\d+) (\S+)", re.M)

# Names itself (prctl PR_SET_NAME: its comm), fills N bytes so they are
# resident, says so, and waits until the test ends it.
CHILD = ("import ctypes, signal, sys\n"
         "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
         "keep = b'x' * int(sys.argv[2])\n"
         "print('ready', flush=True)\n"
         "signal.pause()\n")


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    # A private socket: no daemon answers, so events come from top's own sampling.
    return write_config(tmp_path / "taucg.toml", **private_paths(tmp_path))


@pytest.fixture(scope="module")
def named() -> Iterator[dict[str, int]]:
    """The two processes: name -> PID."""
    procs = {name: subprocess.Popen([sys.executable, "-c", CHILD, name, str(size)],
                                    stdout=subprocess.PIPE, text=True)
             for name, size in ((SMALL, 1 << 20), (BIG, BIG_BYTES))}
    try:
        for p in procs.values():
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield {name: p.pid for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()  # our own children, by Popen
            p.wait()


def top(cfg: Path, *args: str) -> Iterator[Terminal]:
    term = Terminal(taucg_argv("top", *args, config=cfg), env={"PYTHONPATH": str(REPO)},
                    cwd=str(REPO))
    try:
        term.wait(lambda s: "TIER / UNIT / PROCESS" in s, "taucg top to draw its first frame")
        yield term
    finally:
        term.close()


@pytest.fixture
def term(cfg: Path, request: pytest.FixtureRequest) -> Iterator[Terminal]:
    yield from top(cfg, *getattr(request, "param", ()))


def process_names(screen: str) -> list[str]:
    return [m.group(2) for m in PROCESS_LINE.finditer(screen)]


UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def processes(screen: str) -> list[tuple[int, str, float, float]]:
    """(pid, name, cpu, memory bytes) of each process line, in screen order,
    read by the frame's columns (a comm may hold spaces)."""
    out = []
    for line in screen.splitlines():
        m = PROCESS_LINE.match(line)
        if not m:
            continue
        name = line[:34].split(None, 1)[1].strip()
        cpu, mem = line[35:41].strip(), line[42:64].strip()
        out.append((int(m.group(1)), name, -1.0 if cpu == "-" else float(cpu),
                    float(mem[:-1]) * UNITS[mem[-1]]))
    return out


def ordered(screen: str, by: str) -> bool:
    """Whether the process lines on screen are in ``by``'s order."""
    rows = processes(screen)
    if by == "name":
        keys: list[object] = [name.lower() for _, name, _, _ in rows]
        return keys == sorted(keys)
    column = 2 if by == "cpu" else 3
    values = [r[column] for r in rows]
    return len(values) > 1 and values == sorted(values, reverse=True)


@pytest.mark.parametrize("term", [("--expand", "--sort", "name")], indirect=True)
def test_it_draws_the_machines_processes_and_says_there_are_no_tiers(
        term: Terminal, named: dict[str, int]) -> None:
    screen = term.wait(lambda s: f"{named[SMALL]} {SMALL}" in s,
                       "our small process in the expanded view")
    assert "no taucg tiers here" in screen
    assert "the machine's processes, by cgroup" in screen
    assert re.search(r"^machine \(\d+ units\)", screen, re.M), screen
    assert "events: own sampling" in screen
    assert "events (own sampling)" in screen  # the event pane
    assert ordered(screen, "name"), screen


def test_it_refreshes(term: Terminal) -> None:
    m = CLOCK.search(term.screen())
    assert m is not None
    first = m.group(1)
    later = term.wait(lambda s: (c := CLOCK.search(s)) and c.group(1) != first,
                      "the clock to change between captures")
    assert "TIER / UNIT / PROCESS" in later


@pytest.mark.parametrize("term", [("--expand",)], indirect=True)
def test_the_sort_keys_sort(term: Terminal, named: dict[str, int]) -> None:
    # The machine is shared: other processes come and go, so the test reads
    # the order of what is on screen, and finds its own big process in it.
    term.keys("m")
    screen = term.wait(lambda s: "sort memory" in s and ordered(s, "memory")
                       and f"{named[BIG]} {BIG}" in s,
                       "the processes by memory, our 400 MiB one among the first")
    assert not ordered(screen, "name"), screen
    term.keys("n")
    screen = term.wait(lambda s: "sort name" in s and ordered(s, "name")
                       and f"{named[SMALL]} {SMALL}" in s,
                       f"the processes by name, {SMALL} among the first")
    assert f"{named[BIG]} {BIG}" not in screen  # zz-...: far down the list
    term.keys("c")
    term.wait(lambda s: "sort cpu" in s and ordered(s, "cpu"), "the processes by CPU")


def test_a_tier_filter_filters(term: Terminal) -> None:
    assert re.search(r"^machine \(", term.screen(), re.M)
    term.keys("1")
    screen = term.wait(lambda s: "show critical" in s, "the filter to show critical only")
    assert "tier critical is not among the tiers shown here" in screen
    assert not re.search(r"^machine \(", screen, re.M), screen
    assert not re.search(r"^  [-+] ", screen, re.M), screen
    term.keys("0")
    term.wait(lambda s: "show all tiers" in s and re.search(r"^machine \(", s, re.M),
              "every tier shown again")


@pytest.mark.parametrize("term", [("--sort", "name")], indirect=True)
def test_enter_expands_and_minus_collapses(term: Terminal, named: dict[str, int]) -> None:
    assert not process_names(term.screen())
    term.keys("Enter")
    term.wait(lambda s: f"{named[SMALL]} {SMALL}" in s, "the selected unit's processes")
    term.keys("-")
    term.wait(lambda s: not process_names(s) and "  + " in s, "every unit collapsed")


def test_help_and_pause_then_q_exits_0(term: Terminal) -> None:
    term.keys("?")
    term.wait(lambda s: "taucg top: keys" in s, "the help")
    term.keys("x")
    term.wait(lambda s: "taucg top: keys" not in s and "TIER / UNIT" in s, "the help closed")
    term.keys("s")
    term.wait(lambda s: "PAUSED" in s, "the pause shown")
    term.keys("q")
    assert term.exit_status() == 0


def test_once_prints_one_frame_plain_and_json(cfg: Path, named: dict[str, int]) -> None:
    r = taucg("top", "--once", "-d", "0.3", "--expand", "-o", "plain", config=cfg)
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert rows[0][:3] == ["LEVEL", "TIER", "UNIT"]
    ours = [row for row in rows if row[0] == "process" and row[3] == str(named[BIG])]
    assert ours and ours[0][4] == BIG and int(ours[0][6]) >= BIG_BYTES, ours
    doc = one_document(taucg("top", "--once", "-d", "0.3", "--expand", "-o", "json",
                             config=cfg), "top")
    assert doc["mode"] == "machine" and "no taucg tiers" in doc["note"]
    assert doc["events_source"] == "own sampling"
    procs = [p for t in doc["tiers"] for u in t["units"] for p in u["processes"]]
    big = next(p for p in procs if p["pid"] == named[BIG])
    assert big["comm"] == BIG and big["memory_bytes"] >= BIG_BYTES
    assert doc["system"]["processes"] >= len(procs) > 2
    table = taucg("top", "--once", "-d", "0.3", "-o", "table", config=cfg).stdout
    assert "TIER / UNIT / PROCESS" in table and "events (own sampling)" in table


def test_without_a_terminal_it_says_to_use_once(cfg: Path) -> None:
    r = taucg("top", config=cfg, check=False)
    assert r.returncode == 1 and "--once" in r.stderr and "Traceback" not in r.stderr
    error_document(taucg("top", "-o", "json", config=cfg, check=False), 1)


def test_with_a_daemon_events_and_history_come_from_it(start_daemon: object) -> None:
    d = start_daemon()  # type: ignore[operator]
    wait_for(lambda: call(d.socket, "history", {})["metrics"].get("cpu_percent", {}).get(
        "points"), 60, "the daemon's first CPU history points")
    r = taucg("top", "--once", "-d", "0.3", "-o", "json", config=d.config)
    doc = json.loads(r.stdout)
    assert doc["events_source"] == "daemon subscription", doc
    assert doc["history_source"] == "daemon history + own samples", doc
    # The daemon's points come first, then this run's own two samples' one.
    assert len(doc["system"]["cpu_percent_history"]) >= 2
