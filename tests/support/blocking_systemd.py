"""A synchronous face on taucg's asyncio systemd client, for tests.

Only tests drive systemd step by step from plain functions; taucg itself
awaits the client, so this wrapper lives here and not in the package."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from taucg.actors.systemd_dbus import Systemd, SystemdUnavailable

T = TypeVar("T")

# VM default: D-Bus round trips under emulation are slow.
DEFAULT_TIMEOUT = 120.0


class BlockingSystemd:
    """Runs each Systemd coroutine to completion on a private event loop.

    Every async method of Systemd is available under the same name as a
    plain call (systemd.start("x.service"), systemd.get_property(...)).
    If the bus went away (dbus restarted), a call reconnects once and is
    retried, so a long-lived caller survives a bus restart."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._loop = asyncio.new_event_loop()
        self._timeout = timeout
        self.client = Systemd(timeout)
        self._loop.run_until_complete(self.client.connect())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs a coroutine of the caller's own (e.g. one reading signals)."""
        return self._loop.run_until_complete(coro)

    def _reconnect(self) -> None:
        self._loop.run_until_complete(self.client.close())
        self.client = Systemd(self._timeout)
        self._loop.run_until_complete(self.client.connect())

    def _call(self, name: str, *a: Any, **kw: Any) -> Any:
        # Looked up on each try: after a reconnect, self.client is a new one.
        try:
            return self._loop.run_until_complete(getattr(self.client, name)(*a, **kw))
        except SystemdUnavailable:
            self._reconnect()
            return self._loop.run_until_complete(getattr(self.client, name)(*a, **kw))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or "client" not in self.__dict__:
            # Private names, and any name before __init__ set the client
            # (copy, pickle), are not the client's: no endless recursion.
            raise AttributeError(name)
        attr = getattr(self.client, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._call(name, *a, **kw)
        return attr  # type: ignore[no-any-return]

    def close(self) -> None:
        self._loop.run_until_complete(self.client.close())
        self._loop.close()

    def __enter__(self) -> BlockingSystemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
