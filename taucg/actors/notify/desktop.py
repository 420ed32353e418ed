"""The desktop notifier: org.freedesktop.Notifications.Notify on the
session bus of every logged-in user (``<runtime_directory>/UID/bus``,
/run/user/UID/bus where systemd-logind makes them).

A session bus takes connections from its own user only, so the call is
made by a short-lived child (``python -m taucg.actors.notify.desktop_send``)
running as the bus's owner, with the notifier's timeout; the daemon's loop
only waits on it. A runtime directory without any bus (nobody logged in)
is skipped and said once, and so is a bus whose call fails, until it works
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from taucg.model.notify import Notification

URGENCY = {"info": 0, "warning": 1, "critical": 2}  # the spec's low, normal, critical


def session_buses(runtime_directory: str) -> list[tuple[int, Path]]:
    """(uid, bus socket) of each user with a session bus; the uid is the
    socket's owner, which the directory's name must agree with."""
    out: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for d in sorted(Path(runtime_directory).iterdir()):
            bus = d / "bus"
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if bus.is_socket() and bus.stat().st_uid == int(d.name):
                    out.append((int(d.name), bus))
    return out


class Desktop:
    def __init__(self, name: str, runtime_directory: str, timeout: float,
                 log: Callable[[str], None]) -> None:
        self.name, self.runtime_directory, self.timeout, self.log = \
            name, runtime_directory, timeout, log
        self._said_none = False
        self._failing: set[int] = set()

    async def send(self, n: Notification) -> str:
        buses = session_buses(self.runtime_directory)
        if not buses:
            if not self._said_none:
                self._said_none = True
                self.log(f"notifier {self.name}: no session bus under "
                         f"{self.runtime_directory}/UID/bus (nobody logged in?); desktop "
                         "notifications are skipped until one appears")
            return "no session bus"
        self._said_none = False
        results = await asyncio.gather(*(self._one(uid, bus, n) for uid, bus in buses))
        return ", ".join(results)

    async def _one(self, uid: int, bus: Path, n: Notification) -> str:
        request = json.dumps({"app": "taucg", "summary": n.summary, "body": n.body,
                              "urgency": URGENCY[n.severity], "timeout": self.timeout})
        env = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}", "PATH": os.defpath,
               "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "LANG": "C.UTF-8"}
        as_user: dict[str, object] = {}
        if os.geteuid() == 0 and uid != 0:
            import pwd

            gid = pwd.getpwuid(uid).pw_gid if _known(uid) else uid
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "taucg.actors.notify.desktop_send", env=env, cwd="/",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, **as_user)  # type: ignore[arg-type]
        except OSError as exc:
            fix = ("the daemon may not switch users: give taucg.service a drop-in with "
                   "CapabilityBoundingSet=CAP_SETUID CAP_SETGID" if exc.errno == errno.EPERM
                   else "install taucg where every user can run it")
            return self._failed(uid, bus, f"cannot run {sys.executable} as uid {uid} "
                                f"({exc.strerror}): {fix}")
        try:
            async with asyncio.timeout(self.timeout + 5):
                out, err = await proc.communicate(request.encode())
        except TimeoutError:
            out, err = b"", f"no answer within {self.timeout:g} s".encode()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()  # our own child, by its PID
                await proc.wait()
        if proc.returncode == 0:
            if uid in self._failing:
                self._failing.discard(uid)
                self.log(f"notifier {self.name}: uid {uid}'s session bus takes "
                         "notifications again")
            return f"uid {uid}: id {out.decode().strip()}"
        why = err.decode(errors="replace").strip().splitlines()[-1:] or ["no reason given"]
        return self._failed(uid, bus, f"{why[0]}; is a notification daemon running in "
                            "that session?")

    def _failed(self, uid: int, bus: Path, why: str) -> str:
        if uid not in self._failing:
            self._failing.add(uid)
            self.log(f"notifier {self.name}: cannot notify uid {uid} on {bus}: {why}")
        return f"uid {uid}: failed"


def _known(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
