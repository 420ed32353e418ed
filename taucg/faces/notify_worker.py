"""The notify worker: the daemon's events, fanned out to the configured
notifiers ([[notifiers]]).

It listens on the Hub (faces/subscriptions.py), where the sample tick
publishes alert records, the recovery worker its outcomes and safe mode,
the governor its actions, and the health worker its transitions.
``model.notify.from_event`` says which of them a person hears about and
how severe each is; each notifier's ``Gate`` applies its own events,
severity and rate limit. Delivery never blocks the loop: the journal call
is immediate, commands and desktop calls are child processes waited on
by tasks of their own (at most CONCURRENT per notifier), and each webhook
has a sender task draining its queue on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taucg.actors.notify import journald
from taucg.actors.notify.command import run_command
from taucg.actors.notify.desktop import Desktop
from taucg.actors.notify.queue import DiskQueue, queue_dir
from taucg.actors.notify.webhook import Webhook
from taucg.config.output_checks import notifier_names
from taucg.config.schema import Config, Notifier
from taucg.model.notify import Gate, Notification, NotifierView, from_event

CONCURRENT = 4  # commands or desktop calls of one notifier running at once


@dataclass(slots=True)
class Route:
    name: str
    cfg: Notifier
    gate: Gate
    webhook: Webhook | None = None
    desktop: Desktop | None = None
    running: set[asyncio.Task[None]] = field(default_factory=set)
    said: set[str] = field(default_factory=set)


class NotifyWorker:
    def __init__(self, cfg: Config, log: logging.Logger,
                 changed: Callable[[tuple[NotifierView, ...]], None] = lambda _v: None
                 ) -> None:
        """``changed`` hears the counts after each delivery or attempt."""
        self.log = log
        self.changed = changed
        node = socket.gethostname()
        self.routes: list[Route] = []
        for name, n in zip(notifier_names(cfg), cfg.notifiers, strict=True):
            route = Route(name, n, Gate(frozenset(n.events), n.min_severity, n.rate_limit,
                                        n.rate_period_seconds))
            say = self._say(name)
            if n.type == "webhook":
                assert n.url is not None  # config cross check
                queue = DiskQueue(queue_dir(cfg.crash_recovery.state_directory, name),
                                  n.queue_limit, say)
                route.webhook = Webhook(name, n.url, n.format, n.timeout_seconds,
                                        n.retry_initial_seconds, n.retry_max_seconds, queue,
                                        node, say)
                route.webhook.changed = self._changed
            elif n.type == "desktop":
                route.desktop = Desktop(name, n.runtime_directory, n.timeout_seconds, say)
            self.routes.append(route)
        self.sent: dict[str, int] = {r.name: 0 for r in self.routes}

    def view(self) -> tuple[NotifierView, ...]:
        return tuple(NotifierView(
            r.name, r.cfg.type, self.sent[r.name], r.gate.held_total,
            len(r.webhook.queue) if r.webhook is not None else None,
            r.webhook.failures_total if r.webhook is not None else None)
            for r in self.routes)

    def _changed(self) -> None:
        self.changed(self.view())

    def _say(self, name: str) -> Callable[[str], None]:
        def say(message: str) -> None:
            self.log.warning("%s", message, extra={"notifier": name})
        return say

    def hear(self, topic: str, params: Mapping[str, Any]) -> None:
        """Called by the Hub on the loop for each event; never waits."""
        n = from_event(topic, params)
        if n is None:
            return
        now = time.monotonic()
        for route in self.routes:
            admitted = route.gate.admit(n, now)
            if admitted is not None:
                self._deliver(route, admitted)
        self._changed()

    def _deliver(self, route: Route, n: Notification) -> None:
        self.sent[route.name] += 1
        kind = route.cfg.type
        if route.webhook is not None:
            try:
                route.webhook.put(n)
            except OSError as exc:
                self._once(route, "queue", f"notifier {route.name}: cannot queue "
                           f"notification {n.id} on disk: {exc}; check the state directory")
        elif kind == "journald":
            try:
                journald.send(n)
            except Exception as exc:
                self._once(route, "journal", f"notifier {route.name}: journald is not "
                           f"reachable ({exc}); the notification is only in this log: "
                           f"{n.summary}: {n.body}")
        elif kind == "command":
            assert route.cfg.command is not None
            self._spawn(route, n, run_command(route.cfg.command, n,
                                              route.cfg.timeout_seconds))
        elif route.desktop is not None:
            self._spawn(route, n, route.desktop.send(n))

    def _spawn(self, route: Route, n: Notification, work: Awaitable[str]) -> None:
        if len(route.running) >= CONCURRENT:
            self._once(route, "busy", f"notifier {route.name}: {CONCURRENT} deliveries still "
                       f"running; dropped {n.summary!r} (lower timeout_seconds?)")
            if asyncio.iscoroutine(work):
                work.close()
            return
        route.said.discard("busy")

        async def deliver() -> None:
            try:
                result = await work
            except Exception as exc:
                result = f"failed: {exc}"
            level = logging.INFO if result.startswith(("exit 0", "uid")) else logging.WARNING
            self.log.log(level, "notifier %s: %s -> %s", route.name, n.summary, result,
                         extra={"notifier": route.name, "notification": n.id})

        task = asyncio.get_running_loop().create_task(deliver(), name=f"notify-{route.name}")
        route.running.add(task)
        task.add_done_callback(route.running.discard)

    def _once(self, route: Route, what: str, message: str) -> None:
        if what not in route.said:
            route.said.add(what)
            self.log.warning("%s", message, extra={"notifier": route.name})

    async def _sender(self, webhook: Webhook) -> None:
        """One webhook's sender, restarted after an unexpected error (a full
        disk, say): the queue on disk still holds what it had not sent."""
        while True:
            try:
                await webhook.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("notifier %s: the sender failed; restarting it in 5 s",
                                   webhook.name)
                await asyncio.sleep(5)

    async def run(self) -> None:
        """The webhooks' senders, until cancelled; then the deliveries
        still running are cancelled, which kills their children."""
        senders = [asyncio.get_running_loop().create_task(self._sender(r.webhook),
                                                          name=f"webhook-{r.name}")
                   for r in self.routes if r.webhook is not None]
        try:
            await asyncio.Event().wait()
        finally:
            running = [t for r in self.routes for t in r.running] + senders
            for t in running:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*running, return_exceptions=True)
