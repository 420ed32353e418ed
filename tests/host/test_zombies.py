"""Zombie detection and cleanup with real parents."""

from __future__ import annotations

import subprocess
import sys

from taucg.actors.zombies import ZombieReaper, find_zombies
from taucg.readers.sampler import Sampler
from taucg.readers.samples import ProcessSample
from tests.support.waiting import wait_for

# Forks a child that exits at once, so the child is a zombie until this
# parent reaps it. "reaps" arms a SIGCHLD handler only after the child's
# own SIGCHLD has passed, so it reaps when taucg sends one; "never" ignores.
PARENT = r"""
import os, signal, sys, time
armed = False
def on_chld(signum, frame):
    if armed:
        os.waitpid(-1, 0)
signal.signal(signal.SIGCHLD, on_chld)
pid = os.fork()
if pid == 0:
    os._exit(0)
# Armed only once the child is a zombie: its own SIGCHLD has passed, so the
# one that reaps it is taucg's (a fixed wait raced on a loaded machine).
while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.01)
armed = sys.argv[1] == "reaps"
print(pid, flush=True)
while True:
    signal.pause()
"""


def spawn(kind: str) -> tuple[subprocess.Popen[str], int]:
    p = subprocess.Popen([sys.executable, "-c", PARENT, kind], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    return p, int(p.stdout.readline())


def test_zombies_found_reaped_on_sigchld_and_stubborn_parent_reported() -> None:
    reaps, z1 = spawn("reaps")
    never, z2 = spawn("never")
    try:
        sampler = Sampler()
        zombies = {z.pid: z for z in find_zombies(sampler.processes())}
        assert zombies[z1].ppid == reaps.pid
        assert zombies[z2].ppid == never.pid
        ours = {reaps.pid, never.pid}
        reaper = ZombieReaper(grace_seconds=1.0, in_scope=lambda pid: pid in ours)
        signaled, stubborn = reaper.sweep(sampler.processes(), now=100.0)
        assert sorted(signaled) == sorted(ours)
        assert stubborn == []
        # Reaped on our SIGCHLD:
        wait_for(lambda: z1 not in {z.pid for z in find_zombies(sampler.processes())}, 60,
                 "the reaping parent to reap on taucg's SIGCHLD")
        left = {z.pid for z in find_zombies(sampler.processes())}
        assert z2 in left
        _, stubborn = reaper.sweep(sampler.processes(), now=101.5)
        assert [s.pid for s in stubborn] == [never.pid]
        assert stubborn[0].zombies == 1
    finally:
        for p in (reaps, never):
            p.kill()
            p.wait()


def test_out_of_scope_parents_and_pid1_are_never_signaled() -> None:
    never, _ = spawn("never")
    try:
        reaper = ZombieReaper(grace_seconds=0.0, in_scope=lambda pid: False)
        signaled, stubborn = reaper.sweep(Sampler().processes())
        assert signaled == [] and stubborn == []
        # A zombie whose parent is PID 1 is never signaled, even in scope.
        orphan = ProcessSample(99999, 1, 0, 0, 1, 20, 0, 0, 0, 0, 0, b"Z", b"x\0", 0.0, 0.0,
                               0.0, 0, 0, 0, 0)
        assert ZombieReaper(0.0, lambda pid: True).sweep([orphan]) == ([], [])
    finally:
        never.kill()
        never.wait()
