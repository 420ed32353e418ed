"""The command notifier: the admin's shell command, run as a child of the
daemon without ever blocking its loop. The notification is in TAUCG_*
variables and, as JSON, on the command's stdin; a command still running
at its timeout is killed with its whole process group (its own session,
so a shell's children go too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

from taucg.model.notify import Notification


def environment(n: Notification) -> dict[str, str]:
    env = {**os.environ, "TAUCG_EVENT": n.event, "TAUCG_SEVERITY": n.severity,
           "TAUCG_STATE": n.state, "TAUCG_KEY": n.key, "TAUCG_SUMMARY": n.summary,
           "TAUCG_BODY": n.body, "TAUCG_ID": n.id, "TAUCG_TIME": f"{n.time:.3f}",
           "TAUCG_SUPPRESSED": str(n.suppressed)}
    env.update({f"TAUCG_FIELD_{k.upper()}": v for k, v in n.fields.items()})
    return env


async def run_command(command: str, n: Notification, timeout: float) -> str:
    """How it went, in words: "exit 0", "exit 3", "killed after 10 s"."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, env=environment(n), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        async with asyncio.timeout(timeout):
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(json.dumps(n.to_dict()).encode() + b"\n")
                await proc.stdin.drain()
                proc.stdin.close()
            rc = await proc.wait()
        return f"exit {rc}"
    except TimeoutError:
        return f"killed after {timeout:g} s"
    finally:
        if proc.returncode is None:
            # Our own child's process group (start_new_session made it), by its id.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
