"""One desktop notification, sent by a child of the daemon running as the
session bus's owner (see desktop.py): the request as JSON on stdin, the
notification's id on stdout, why it failed on stderr (exit 1).

    python -m taucg.actors.notify.desktop_send < request.json
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus


async def notify(address: str, req: dict[str, Any]) -> int:
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination="org.freedesktop.Notifications",
            path="/org/freedesktop/Notifications",
            interface="org.freedesktop.Notifications", member="Notify", signature="susssasa{sv}i",
            body=[req["app"], 0, "dialog-warning" if req["urgency"] else "dialog-information",
                  req["summary"], req["body"], [],
                  {"urgency": Variant("y", int(req["urgency"])),
                   "desktop-entry": Variant("s", "taucg")}, -1])), float(req["timeout"]))
    finally:
        bus.disconnect()
    assert reply is not None
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
    return int(reply.body[0])


def main() -> int:
    try:
        req = json.loads(sys.stdin.read())
        print(asyncio.run(notify(os.environ["DBUS_SESSION_BUS_ADDRESS"], req)))
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
