"""Namespaces for `taucg run`: an exec helper, run as

    python -m taucg.actors.isolation [--net] [--netns NAME] [--pid] [--mount]
                                     [--ipc] [--uts] [--gate-fd N] -- CMD [ARGS...]

It waits on the gate fd (so its parent can put it into a systemd scope
first), unshares the asked-for namespaces and execs CMD. With --pid the
helper forks: CMD becomes PID 1 of the new namespace with its own /proc,
and the helper waits and exits with CMD's status. --net gives a network
namespace with only loopback, brought up; --netns joins a named one from
`ip netns` (/run/netns/NAME).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import NoReturn

from taucg.readers import syscalls

NAMESPACES = ("net", "pid", "mount", "ipc", "uts")


class IsolationError(Exception):
    pass


def _failed(what: str, exc: OSError) -> IsolationError:
    # The user reads this on `taucg run`'s stderr: say the step in their
    # terms, and point at the usual cause of EPERM.
    err = exc.errno or 0
    hint = " (needs root, or CAP_SYS_ADMIN)" if err == errno.EPERM else ""
    return IsolationError(f"{what} failed: {os.strerror(err)}{hint}")


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
        flags |= syscalls.CLONE_NEWNET
    if "pid" in names:
        # A pid namespace needs its own /proc, hence its own mounts.
        flags |= syscalls.CLONE_NEWPID | syscalls.CLONE_NEWNS
    if "mount" in names:
        flags |= syscalls.CLONE_NEWNS
    if "ipc" in names:
        flags |= syscalls.CLONE_NEWIPC
    if "uts" in names:
        flags |= syscalls.CLONE_NEWUTS
    if netns is not None:
        path = f"/run/netns/{netns}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise IsolationError(f"no network namespace {netns!r} ({path}); 'taucg run "
                                 f"--netns {netns}' creates it, or 'ip netns add {netns}'"
                                 ) from None
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
        except OSError as exc:
            raise _failed(f"joining network namespace {netns}", exc) from exc
        finally:
            os.close(fd)
    if flags:
        try:
            syscalls.unshare(flags)
        except OSError as exc:
            raise _failed("unshare", exc) from exc
    if flags & syscalls.CLONE_NEWNS:
        # Keep our mounts (a new /proc) from propagating back to the host.
        try:
            syscalls.mount("none", "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        except OSError as exc:
            raise _failed("making / private", exc) from exc
    if "net" in names and netns is None:
        loopback_up()


def _mount_proc() -> None:
    try:
        syscalls.mount("proc", "/proc", "proc",
                       syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
    except OSError as exc:
        raise _failed("mounting /proc in the new pid namespace", exc) from exc


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
    ap = argparse.ArgumentParser(prog="python -m taucg.actors.isolation", description=__doc__)
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
