"""Namespaces for `taucg run`: an exec helper, run as

    python -m taucg.isolation [--net] [--netns NAME] [--pid] [--mount] [--ipc] [--uts]
                              [--gate-fd N] -- CMD [ARGS...]

It waits on the gate fd (so its parent can put it into a systemd scope
first), unshares the asked-for namespaces and execs CMD. With --pid the
helper forks: CMD becomes PID 1 of the new namespace with its own /proc,
and the helper waits and exits with CMD's status. --net gives a network
namespace with only loopback, brought up; --netns joins a named one from
`ip netns` (/run/netns/NAME).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import NoReturn

from taucg.readers._sampler import ffi, lib

NAMESPACES = ("net", "pid", "mount", "ipc", "uts")


class IsolationError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc < 0:
        hint = " (needs root, or CAP_SYS_ADMIN)" if -rc == 1 else ""
        raise IsolationError(f"{what} failed: {os.strerror(-rc)}{hint}")


def loopback_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="lo")
        if idx:
            ipr.link("set", index=idx[0], state="up")


def veth_name(netns: str) -> str:
    return f"tau-{netns}"[:15]  # IFNAMSIZ


def ensure_netns(name: str) -> bool:
    """Creates /run/netns/NAME with a veth pair if it does not exist:
    ``tau-NAME`` on the host, ``eth0`` inside, both up (addresses are the
    admin's to assign). Returns whether it was created."""
    from pyroute2 import IPRoute, NetNS, netns

    if not name or "/" in name or name.startswith("."):
        raise IsolationError(f"{name!r} is not a usable network namespace name")
    if name in netns.listnetns():
        return False
    try:
        netns.create(name)
        with IPRoute() as ipr:
            ipr.link("add", ifname=veth_name(name), kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": name})
            ipr.link("set", index=ipr.link_lookup(ifname=veth_name(name))[0], state="up")
        with NetNS(name) as ns:
            for ifname in ("lo", "eth0"):
                ns.link("set", index=ns.link_lookup(ifname=ifname)[0], state="up")
    except Exception as exc:
        remove_netns(name)
        raise IsolationError(f"cannot create network namespace {name!r}: {exc}") from exc
    return True


def remove_netns(name: str) -> None:
    from pyroute2 import IPRoute, netns

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=veth_name(name))
        if idx:
            ipr.link("del", index=idx[0])
    if name in netns.listnetns():
        netns.remove(name)


def enter(names: set[str], netns: str | None = None) -> None:
    """Unshares the namespaces in this process (and joins netns)."""
    flags = 0
    if "net" in names and netns is None:
        flags |= lib.CLONE_NEWNET
    if "pid" in names:
        flags |= lib.CLONE_NEWPID | lib.CLONE_NEWNS  # a pid namespace needs its own /proc
    if "mount" in names:
        flags |= lib.CLONE_NEWNS
    if "ipc" in names:
        flags |= lib.CLONE_NEWIPC
    if "uts" in names:
        flags |= lib.CLONE_NEWUTS
    if netns is not None:
        path = f"/run/netns/{netns}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise IsolationError(f"no network namespace {netns!r} ({path}); 'taucg run "
                                 f"--netns {netns}' creates it, or 'ip netns add {netns}'"
                                 ) from None
        try:
            _check(lib.tau_setns(fd, lib.CLONE_NEWNET), f"joining network namespace {netns}")
        finally:
            os.close(fd)
    if flags:
        _check(lib.tau_unshare(flags), "unshare")
    if flags & lib.CLONE_NEWNS:
        # Keep our mounts (a new /proc) from propagating back to the host.
        _check(lib.tau_mount(b"none", b"/", ffi.NULL, lib.MS_REC | lib.MS_PRIVATE, ffi.NULL),
               "making / private")
    if "net" in names and netns is None:
        loopback_up()


def _mount_proc() -> None:
    _check(lib.tau_mount(b"proc", b"/proc", b"proc",
                         lib.MS_NOSUID | lib.MS_NODEV | lib.MS_NOEXEC, ffi.NULL),
           "mounting /proc in the new pid namespace")


def _exit_like(status: int) -> NoReturn:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def run(names: set[str], netns: str | None, argv: list[str], gate_fd: int | None) -> NoReturn:
    if gate_fd is not None:
        # The parent writes one byte once this process is in its scope.
        os.read(gate_fd, 1)
        os.close(gate_fd)
    enter(names, netns)
    if "pid" not in names:
        os.execvp(argv[0], argv)
    child = os.fork()
    if child == 0:
        try:
            _mount_proc()
            os.execvp(argv[0], argv)
        except BaseException as exc:
            print(f"taucg run: cannot start {argv[0]}: {exc}", file=sys.stderr)
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    _exit_like(status)


def main(argv: list[str] | None = None) -> NoReturn:
    ap = argparse.ArgumentParser(prog="python -m taucg.isolation", description=__doc__)
    for name in NAMESPACES:
        ap.add_argument(f"--{name}", action="store_true")
    ap.add_argument("--netns", default=None)
    ap.add_argument("--gate-fd", type=int, default=None)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given after --")
    names = {n for n in NAMESPACES if getattr(args, n)}
    try:
        run(names, args.netns, cmd, args.gate_fd)
    except IsolationError as exc:
        print(f"taucg run: {exc}", file=sys.stderr)
        os._exit(126)
    except FileNotFoundError:
        print(f"taucg run: command not found: {cmd[0]}", file=sys.stderr)
        os._exit(127)


if __name__ == "__main__":
    main()
