"""A webhook's queue on disk: one file per notification waiting to be
delivered, so a receiver that is down, or a daemon that restarts, loses
nothing.

Each file is written atomically (actors/files.write_atomic) and named
``<sequence>-<id>.json``: the sequence keeps the order across restarts.
A notification leaves the queue only after the receiver answered 2xx
(``done``). A daemon killed between that answer and the removal sends
that one again at its next start; its ``id`` is the same, so a receiver
can tell.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from taucg.actors.files import PRIVATE_MODE, clean_leftovers, private_dir, remove_file, write_atomic
from taucg.model.notify import Notification

_NAME = re.compile(r"(\d{12})-([0-9a-f]+)\.json")


def queue_dir(state_directory: str, notifier: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", notifier)
    return Path(state_directory) / "notify" / safe


class DiskQueue:
    def __init__(self, directory: Path, limit: int,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.directory = directory
        self.limit = limit
        self.log = log
        private_dir(directory)
        clean_leftovers(directory)
        self._files = sorted(p for p in directory.iterdir() if _NAME.fullmatch(p.name))
        last = self._files[-1].name[:12] if self._files else "0"
        self._seq = int(last)

    def __len__(self) -> int:
        return len(self._files)

    def put(self, n: Notification) -> None:
        if len(self._files) >= self.limit:
            oldest = self._files.pop(0)
            with contextlib.suppress(OSError):
                remove_file(oldest)
            self.log(f"queue {self.directory} holds {self.limit} undelivered notifications; "
                     f"dropped the oldest ({oldest.name}): is the receiver down? raise "
                     "queue_limit to keep more")
        self._seq += 1
        path = self.directory / f"{self._seq:012d}-{n.id}.json"
        private_dir(self.directory)  # remove_file takes an emptied directory away
        write_atomic(path, json.dumps(n.to_dict()), PRIVATE_MODE)
        self._files.append(path)

    def head(self) -> tuple[Path, Notification] | None:
        """The oldest waiting notification; an unreadable file is set aside
        (renamed .bad) so that it cannot block the queue."""
        while self._files:
            path = self._files[0]
            try:
                return path, Notification.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._files.pop(0)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                self.log(f"queued notification {path} is unreadable ({exc}); moved it "
                         "aside as .bad")
        return None

    def done(self, path: Path) -> None:
        if self._files and self._files[0] == path:
            self._files.pop(0)
        remove_file(path)
