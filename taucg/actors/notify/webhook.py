"""The webhook notifier: an HTTP POST per notification, in taucg's JSON
document or Alertmanager's /api/v2/alerts format (model/notify.py builds
both), from a queue on disk (queue.py).

One sender task per webhook delivers the queue in order. A refused
connection, a timeout or a 5xx (or 408, 429) is tried again after a delay
that starts at retry_initial_seconds and doubles up to retry_max_seconds;
the outage is logged once when it starts and once when it ends. Any other
answer (a 4xx: the receiver will never take this body) sets that one
notification aside as ``.rejected``, logged with the answer, instead of
blocking the queue forever. The POST runs on a thread with the notifier's
timeout: urllib is blocking, and the loop must not be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taucg import __version__
from taucg.actors.notify.queue import DiskQueue
from taucg.model.notify import Notification, alertmanager_payload, taucg_payload

RETRYABLE = (408, 429)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    reason: str

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retry(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in RETRYABLE


def post(url: str, body: bytes, timeout: float) -> Answer:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"taucg/{__version__}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(65536)
            return Answer(resp.status, resp.reason)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, str(exc.reason))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Answer(None, str(reason))


def body(n: Notification, fmt: str, node: str) -> bytes:
    doc: Any = alertmanager_payload(n, node) if fmt == "alertmanager" else \
        taucg_payload(n, node)
    return json.dumps(doc).encode()


class Webhook:
    def __init__(self, name: str, url: str, fmt: str, timeout: float, retry_initial: float,
                 retry_max: float, queue: DiskQueue, node: str,
                 log: Callable[[str], None]) -> None:
        self.name, self.url, self.fmt, self.timeout = name, url, fmt, timeout
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.queue, self.node, self.log = queue, node, log
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0  # attempts since the last delivery
        self.failures_total = 0
        self._delay = retry_initial
        self.changed: Callable[[], None] = lambda: None  # after each attempt

    def put(self, n: Notification) -> None:
        self.queue.put(n)
        self._wake.set()

    async def run(self) -> None:
        if len(self.queue):
            self.log(f"notifier {self.name}: {len(self.queue)} notifications queued from "
                     f"before; delivering them to {self.url}")
        self._delay = self.retry_initial
        while True:
            head = self.queue.head()
            if head is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            path, n = head
            answer = await asyncio.to_thread(post, self.url, body(n, self.fmt, self.node),
                                             self.timeout)
            wait = self._settle(path, n, answer)
            self.changed()
            if wait:
                await asyncio.sleep(wait)

    def _settle(self, path: Path, n: Notification, answer: Answer) -> float:
        """What one attempt's answer does to the queue; the backoff to wait, if any."""
        if answer.delivered:
            self.queue.done(path)
            self.delivered += 1
            if self.failures:
                self.log(f"notifier {self.name}: {self.url} answers again after "
                         f"{self.failures} failed attempts; {len(self.queue)} still queued")
            self.failures, self._delay = 0, self.retry_initial
            return 0.0
        if not answer.retry:
            with contextlib.suppress(OSError):
                path.with_suffix(".rejected").write_text(json.dumps(n.to_dict()))
            self.queue.done(path)
            self.log(f"notifier {self.name}: {self.url} refused notification {n.id} with "
                     f"HTTP {answer.status} {answer.reason}; set aside as "
                     f"{path.with_suffix('.rejected')}: check the url and format")
            return 0.0
        if not self.failures:
            what = f"HTTP {answer.status} {answer.reason}" if answer.status else answer.reason
            self.log(f"notifier {self.name}: cannot deliver to {self.url} ({what}); "
                     f"{len(self.queue)} queued on disk, retrying with backoff up to "
                     f"{self.retry_max:g} s")
        self.failures += 1
        self.failures_total += 1
        wait, self._delay = self._delay, min(self._delay * 2, self.retry_max)
        return wait
