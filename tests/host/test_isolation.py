"""Namespaces through the isolation helper that `taucg run` uses."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

HELPER = [sys.executable, "-m", "taucg.actors.isolation"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root here")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HELPER, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_net_sees_only_loopback_and_it_is_up() -> None:
    r = run("--net", "--", sys.executable, "-c",
            "import socket; print(sorted(n for _, n in socket.if_nameindex()))\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('bound')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["['lo']", "bound"]
    assert len(__import__("socket").if_nameindex()) > 1  # the host has more


def test_pid_makes_the_command_pid_1_with_its_own_proc() -> None:
    r = run("--pid", "--", "/bin/sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    assert r.returncode == 0, r.stderr
    pid, count = r.stdout.split()
    assert pid == "1"
    assert int(count) <= 3  # sh, ls and grep, not the host's processes


def test_exit_status_and_signals_pass_through() -> None:
    assert run("--pid", "--", "/bin/sh", "-c", "exit 42").returncode == 42
    assert run("--", "/bin/sh", "-c", "exit 7").returncode == 7
    assert run("--", "/bin/sh", "-c", "kill -TERM $$").returncode == -15
    # Under --pid the command is the namespace's init, which the kernel
    # shields from its own default-action signals; a child's death shows.
    r = run("--pid", "--", "/bin/sh", "-c", "/bin/sh -c 'kill -TERM $$'; exit $?")
    assert r.returncode == 128 + 15


def test_uts_and_ipc() -> None:
    r = run("--uts", "--ipc", "--", "/bin/sh", "-c", "hostname taucg-test && hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "taucg-test"
    assert os.uname().nodename != "taucg-test"


def test_missing_command_and_netns_are_clear_errors() -> None:
    r = run("--", "/no/such/command")
    assert r.returncode == 127 and "command not found" in r.stderr
    r = run("--netns", "taucg-no-such-ns", "--", "true")
    assert r.returncode == 126
    assert "no network namespace 'taucg-no-such-ns'" in r.stderr
    assert "ip netns add" in r.stderr


def test_named_netns_gets_a_veth_pair() -> None:
    from taucg.actors.isolation import ensure_netns, remove_netns, veth_name

    name = f"taucg-t{os.getpid()}"
    try:
        assert ensure_netns(name) is True
        assert ensure_netns(name) is False  # already there: reused
        r = run("--netns", name, "--", sys.executable, "-c",
                "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "['eth0', 'lo']"
        import socket

        assert veth_name(name) in {n for _, n in socket.if_nameindex()}
    finally:
        remove_netns(name)
    assert not os.path.exists(f"/run/netns/{name}")


def test_a_failing_step_says_which_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from taucg.actors import isolation
    from taucg.readers import syscalls

    def refuse(flags: int) -> None:
        raise PermissionError(errno.EPERM, "unshare(CLONE_NEWIPC): Operation not permitted")

    monkeypatch.setattr(syscalls, "unshare", refuse)
    with pytest.raises(isolation.IsolationError) as caught:
        isolation.enter({"ipc"})
    assert str(caught.value) == (
        f"unshare failed: {os.strerror(errno.EPERM)} (needs root, or CAP_SYS_ADMIN)")

