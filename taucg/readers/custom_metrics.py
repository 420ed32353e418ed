"""Reading a custom metric's text: the start of a file, or what a command
prints. Neither may hold the daemon's loop: the file is read on a thread
(a FIFO or a hung NFS mount blocks a read), the command is a child waited
on with a timeout and killed with its process group when it overstays."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

MAX_BYTES = 4096  # a number, with room for a trailing unit or comment


class ReadFailed(Exception):
    """The source gave no text; the message says why and what to do."""


def _read_file(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ReadFailed(f"{path} does not exist; create it or fix file =") from None
    except PermissionError:
        raise ReadFailed(f"{path}: permission denied; let the daemon read it") from None
    except OSError as exc:
        raise ReadFailed(f"{path}: {exc.strerror}") from None
    try:
        data = os.read(fd, MAX_BYTES)
    except BlockingIOError:
        raise ReadFailed(f"{path} has nothing to read (a FIFO with no writer?)") from None
    except OSError as exc:
        raise ReadFailed(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return data.decode(errors="replace")


async def read_file(path: str, timeout: float) -> str:
    try:
        return await asyncio.wait_for(asyncio.to_thread(_read_file, path), timeout)
    except TimeoutError:
        raise ReadFailed(f"{path} did not answer within {timeout:g} s (a hung mount?)"
                         ) from None


async def read_command(command: str, timeout: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        raise ReadFailed(f"command {command!r} did not finish within {timeout:g} s and was "
                         "killed; make it faster or raise timeout_seconds") from None
    finally:
        if proc.returncode is None:
            # Our own child's process group (start_new_session made it), by its id.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()[-1:] or ["no error output"]
        raise ReadFailed(f"command {command!r} exited {proc.returncode}: {why[0]}")
    return out[:MAX_BYTES].decode(errors="replace")
