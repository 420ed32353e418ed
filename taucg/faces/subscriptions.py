"""The fan-out of the daemon's events to the socket API's subscribers:
alerts, recovery actions and governor actions, each as a JSON-RPC
notification ("taucg.alert", "taucg.recovery", "taucg.governor").

``Hub.publish`` is called by the workers on the loop and never waits: each
subscriber has a bounded queue, drained by its connection's sender task.
A subscriber whose queue is full reads too slowly; it is dropped at once
(its queue emptied, one final "taucg.dropped" notification put in its
place) rather than letting the daemon hold memory for it or wait on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taucg.faces.jsonrpc import notification
from taucg.faces.socket_client import encode

if TYPE_CHECKING:
    from taucg.actors.recovery_watcher import RecoveryView

TOPICS = ("alert", "recovery", "governor")
QUEUE_LIMIT = 256  # notifications waiting for one subscriber before it is dropped


@dataclass(eq=False, slots=True)
class Subscriber:
    topics: frozenset[str]
    queue: asyncio.Queue[bytes]
    dropped: bool = False  # the queue holds only the final notification


class Hub:
    def __init__(self, limit: int = QUEUE_LIMIT,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.limit = limit
        self.log = log
        self._subs: set[Subscriber] = set()
        self.dropped_total = 0
        # In-process listeners (the notify worker): called with every event,
        # subscribed topics or not, before the subscribers' queues.
        self.listeners: list[Callable[[str, Mapping[str, Any]], None]] = []

    def __len__(self) -> int:
        return len(self._subs)

    def add(self, topics: frozenset[str]) -> Subscriber:
        sub = Subscriber(topics, asyncio.Queue(self.limit + 1))  # + 1: room for the final one
        self._subs.add(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def publish(self, topic: str, params: Mapping[str, Any]) -> None:
        """Queues one notification for every subscriber of topic; never blocks."""
        for listen in list(self.listeners):
            try:
                listen(topic, params)
            except Exception as exc:
                self.log(f"a {topic} event listener failed: {exc!r}")
        if not self._subs:
            return
        line = encode(notification(f"taucg.{topic}", params))
        for sub in list(self._subs):
            if topic not in sub.topics:
                continue
            if sub.queue.qsize() >= self.limit:
                self._drop(sub)
            else:
                sub.queue.put_nowait(line)

    def _drop(self, sub: Subscriber) -> None:
        self._subs.discard(sub)
        lost = 1  # the one that found the queue full
        while not sub.queue.empty():
            sub.queue.get_nowait()
            lost += 1
        sub.dropped = True
        self.dropped_total += 1
        sub.queue.put_nowait(encode(notification("taucg.dropped", {
            "reason": f"{self.limit} notifications waited unread; the subscription is "
                      "closed: read faster, or subscribe to fewer topics",
            "lost": lost})))
        self.log(f"API subscriber dropped: {self.limit} notifications unread")


def recovery_events(was: RecoveryView | None, now: RecoveryView) -> list[dict[str, Any]]:
    """What changed between two views of the recovery watcher: each new
    action's outcome, and safe mode entered or left. Outcomes are told
    apart by identity: a view holds the watcher's own Outcome objects."""
    seen = {id(o) for _, o in was.outcomes} if was is not None else set()
    t = time.time()
    events: list[dict[str, Any]] = [
        {"time": t, "event": "action", "unit": unit, "strategy": o.decision.strategy,
         "attempt": o.decision.attempt, "result": o.result, "outcome": o.outcome}
        for unit, o in now.outcomes if id(o) not in seen]
    if was is not None and was.safe_mode != now.safe_mode:
        events.append({"time": t, "event": "safe_mode", "safe_mode": now.safe_mode})
    return events
