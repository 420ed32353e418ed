"""`tau-monitor --daemon`: the classic double fork with a pidfile, for
machines where the daemon is not run by systemd. Under systemd the unit is
the way (Type=notify, no fork, no pidfile).

The parent returns only once the daemon serves its socket, so its exit
status says whether the daemon started."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from taucg.actors.files import open_private, private_dir
from taucg.config.schema import Config


class DetachError(Exception):
    """The daemon could not start in the background; says why."""


def running_pid(pidfile: Path) -> int | None:
    """The pid in pidfile if that process is alive and a taucg daemon."""
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"taucg" in cmdline or b"tau-monitor" in cmdline else None


def detach_and_run(cfg: Config, config_path: str | None) -> int:
    pidfile = Path(cfg.daemon.pidfile)
    other = running_pid(pidfile)
    if other is not None:
        raise DetachError(f"a taucg daemon already runs as pid {other} ({pidfile}); stop it "
                          f"first (kill {other})")
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as r:
            answer = r.read().decode(errors="replace")
        if answer.startswith("ok"):
            print(f"taucg daemon started as pid {answer.split()[1]} ({pidfile})")
            return 0
        raise DetachError(answer.strip() or "the daemon exited before it was ready; see "
                          f"{cfg.logging.log_file_path}")
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    status = 1
    try:
        try:
            private_dir(pidfile.parent)
            fd = open_private(pidfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            _answer(write_end, f"cannot write the pidfile: {exc.strerror or exc}; check "
                               "[daemon] pidfile")
            raise
        from taucg.faces.lean_imports import without_openssl

        without_openssl()  # before taucg.faces.daemon imports asyncio
        from taucg.faces.daemon import run

        status = run(cfg, config_path, on_ready=lambda error: _answer(write_end, error))
    finally:
        with contextlib.suppress(OSError):
            os.close(write_end)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        sys.stdout.flush()
        os._exit(status)


def _answer(fd: int, error: str | None) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (f"ok {os.getpid()}" if error is None else error).encode())
        os.close(fd)
