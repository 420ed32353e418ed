"""`taucg top`'s terminal: curses draws the frames top_model builds and
turns keys into top_model.handle_key calls. Nothing here decides what is
shown; it only places lines on the screen and waits for the next refresh
or key.

curses, not urwid or textual: it is in the standard library (no new
dependency), starts in a few milliseconds where textual's import alone
takes hundreds, and redraws only the cells that changed, which keeps the
cost per refresh far under procps top's (scripts/bench-top measures it).
"""

from __future__ import annotations

import contextlib
import curses
import locale
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from taucg.faces.top_model import (
    SPARK_ASCII,
    SPARK_UNICODE,
    Frame,
    Line,
    Snapshot,
    TierColumn,
    View,
    build_frame,
    handle_key,
    is_expanded,
    selectable,
    visible_tiers,
)

KEYS = {curses.KEY_UP: "up", curses.KEY_DOWN: "down", curses.KEY_ENTER: "enter",
        10: "enter", 13: "enter"}
EVENT_LINES = 8


def key_name(code: int) -> str | None:
    if code in KEYS:
        return KEYS[code]
    if 0 <= code < 256:
        return chr(code)
    return None


def expanded_keys(snap: Snapshot | None, view: View) -> list[str] | None:
    """The units whose processes the next refresh reads (None: all)."""
    if view.expand_all:
        return None
    return sorted(view.expanded)


class Screen:
    def __init__(self, win: Any, glyphs: str) -> None:
        self.win = win
        self.glyphs = glyphs
        self.attrs = {"title": curses.A_BOLD, "header": curses.A_REVERSE,
                      "note": curses.A_BOLD, "tier": curses.A_BOLD, "event": 0,
                      "help": 0, "unit": 0, "process": curses.A_DIM}

    def fit(self) -> None:
        """Follows the terminal's size: a resize whose SIGWINCH curses
        missed (one that came while it started) still reaches the frame."""
        try:
            cols, lines = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
        except (OSError, AttributeError, ValueError):
            return
        if (lines, cols) != self.win.getmaxyx():
            curses.resizeterm(lines, cols)

    def draw(self, frame: Frame) -> None:
        h, w = self.win.getmaxyx()
        self.win.erase()
        head, events = list(frame.head), list(frame.events)
        room = max(1, h - len(head) - len(events) - 1)
        if room < 3:  # a small window: fewer events, the body first
            events = events[:max(1, h - len(head) - 4)]
            room = max(1, h - len(head) - len(events) - 1)
        body = list(frame.body)
        chosen = next((i for i, ln in enumerate(body) if ln.selected), 0)
        top = max(0, chosen - room + 1) if chosen >= room else 0
        y = 0
        for ln in [*head, *body[top:top + room]]:
            self._put(y, ln, w)
            y += 1
        y = max(y, h - len(events) - 1)
        for ln in events:
            if y >= h - 1:
                break
            self._put(y, ln, w)
            y += 1
        self._put(h - 1, Line(frame.footer, "header"), w)
        self.win.noutrefresh()
        curses.doupdate()

    def _put(self, y: int, ln: Line, w: int) -> None:
        attr = self.attrs.get(ln.kind, 0) | (curses.A_REVERSE if ln.selected else 0)
        # The last cell of the window, or a window resized under us.
        with contextlib.suppress(curses.error):
            self.win.addnstr(y, 0, ln.text.ljust(w), max(0, w - 1), attr)


def run(refresh: Callable[[Sequence[str] | None], Snapshot], view: View, interval: float,
        columns: Sequence[TierColumn] = ()) -> View:
    """The live view until q; returns the last view (quit set)."""
    locale.setlocale(locale.LC_ALL, "")
    glyphs = SPARK_UNICODE if "utf" in locale.getpreferredencoding(False).lower() \
        else SPARK_ASCII
    result: list[View] = [view]

    def main(win: Any) -> None:
        curses.curs_set(0)
        win.keypad(True)
        screen = Screen(win, glyphs)
        v = view
        snap = refresh(expanded_keys(None, v))
        due = time.monotonic() + interval
        while not v.quit:
            screen.fit()
            h, _ = win.getmaxyx()
            screen.draw(build_frame(snap, v, columns, glyphs, events=max(1, min(
                EVENT_LINES, h // 5)), room=h))
            wait = max(0.0, due - time.monotonic()) if not v.paused else 3600.0
            win.timeout(int(wait * 1000))
            code = win.getch()
            if code == -1:  # the refresh is due
                if not v.paused:
                    snap = refresh(expanded_keys(snap, v))
                due = time.monotonic() + interval
                continue
            if code == curses.KEY_RESIZE:
                continue
            name = key_name(code)
            if name is None:
                continue
            before = v
            v = handle_key(v, name, selectable(snap, v))
            if _needs_processes(snap, before, v) and not v.paused:
                snap = refresh(expanded_keys(snap, v))
                due = time.monotonic() + interval
        result[0] = v

    # The window's real size, not a LINES/COLUMNS left in the environment.
    curses.use_env(False)
    curses.wrapper(main)
    return result[0]


def _needs_processes(snap: Snapshot, before: View, after: View) -> bool:
    """A unit opened whose processes the last snapshot did not read."""
    if after.expanded == before.expanded and after.expand_all == before.expand_all:
        return False
    return any(is_expanded(after, u) and u.processes is None
               for t in visible_tiers(snap, after) for u in t.units)
