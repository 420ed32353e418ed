"""What `taucg top` shows, as pure data: the snapshot a source hands over
(tiers, their units and processes, events, history), the viewer's choices
(sort, tier filter, what is expanded, pause, help) and the frame built from
both (lines, sparklines, the JSON document and the tab-separated rows).

Nothing here reads the kernel or draws: taucg/faces/top_source.py samples,
taucg/faces/top_screen.py draws with curses, and the unit tests build
frames from hand-made snapshots.

Extra per-tier columns (forecasts, for one) are ``TierColumn``s: a header,
a width and a function of the ``TierView``. A source puts its values in
``TierView.extra`` and the command passes the columns to ``build_frame``,
``frame_rows`` and ``frame_document``; nothing else changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from taucg.config.schema import TIER_NAMES

SORTS = ("cpu", "memory", "pressure", "name")
SORT_KEYS = {"c": "cpu", "m": "memory", "p": "pressure", "n": "name"}
TIER_KEYS = {str(i + 1): tier for i, tier in enumerate(TIER_NAMES)}
MACHINE = "machine"  # the pseudo-tier of a machine without taucg's tiers
SPARK_UNICODE = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-=+*#@"
SPARK_WIDTH = 20
EVENTS_KEPT = 200

HELP = (
    "taucg top: keys",
    "  c m p n    sort by cpu, memory, pressure, name",
    "  1-5        show one tier (1 critical ... 5 background); 0 all tiers",
    "  up/down j/k  move the selection",
    "  enter space  expand or collapse the selected unit (its processes)",
    "  + -        expand all units, collapse all",
    "  s          pause or resume refreshing",
    "  ?          this help (any key closes it)",
    "  q          quit",
)


# ---------------------------------------------------------------- input ---


@dataclass(frozen=True, slots=True)
class Pressure:
    """some avg10 of each pressure file, percent of wall time (None: absent)."""

    cpu: float | None = None
    memory: float | None = None
    io: float | None = None

    @property
    def worst(self) -> float:
        return max((v for v in (self.cpu, self.memory, self.io) if v is not None), default=0.0)

    def text(self) -> str:
        return "/".join("-" if v is None else f"{v:.1f}" for v in (self.cpu, self.memory, self.io))


@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    comm: str
    state: str
    cpu_percent: float | None  # None: first seen in this sample
    memory_bytes: int  # RSS


@dataclass(frozen=True, slots=True)
class UnitView:
    """A unit (or, without tiers, a cgroup) and, when expanded, its processes."""

    name: str
    cgroup: str  # the key that expand/collapse keeps
    cpu_percent: float | None
    memory_bytes: int | None
    tasks: int | None
    pressure: Pressure = field(default_factory=Pressure)
    processes: tuple[ProcessRow, ...] | None = None  # None: not read (collapsed)


@dataclass(frozen=True, slots=True)
class TierView:
    tier: str
    unit: str  # its slice, or a description for the machine pseudo-tier
    present: bool  # its cgroup exists
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    memory_max: int | None = None  # bytes; None: no limit
    memory_high: int | None = None
    pressure: Pressure = field(default_factory=Pressure)
    governed: Mapping[str, str] = field(default_factory=dict)  # key -> value the governor holds
    frozen: bool = False
    oom_kills: int | None = None  # since the slice's cgroup was created
    units: tuple[UnitView, ...] = ()
    history: tuple[float, ...] = ()  # CPU percent, oldest first
    extra: Mapping[str, str] = field(default_factory=dict)  # for extra TierColumns
    tasks: int | None = None  # the slice's pids.current (None: sum the units')

    @property
    def memory_limit(self) -> int | None:
        return self.memory_max if self.memory_max is not None else self.memory_high

    @property
    def memory_limit_percent(self) -> float | None:
        limit = self.memory_limit
        if not limit or self.memory_bytes is None:
            return None
        return 100.0 * self.memory_bytes / limit


@dataclass(frozen=True, slots=True)
class Event:
    time: float  # wall clock
    kind: str  # alert, recovery, governor, oom, memory, unit, daemon
    text: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: float  # wall clock
    mode: str  # "tiers" or "machine"
    note: str  # why there are no tiers, or ""
    cpu_percent: float | None
    memory_percent: float | None
    processes: int
    tiers: tuple[TierView, ...]
    events: tuple[Event, ...] = ()  # oldest first
    history: tuple[float, ...] = ()  # the machine's CPU percent, oldest first
    events_source: str = "own sampling"  # or "daemon subscription"
    history_source: str = "own samples"  # or "daemon history + own samples"
    interval: float = 1.0


@dataclass(frozen=True, slots=True)
class TierColumn:
    """One extra per-tier column: ``cell`` reads the tier (usually its ``extra``)."""

    header: str
    width: int
    cell: Callable[[TierView], str]
    key: str = ""  # its name in the JSON document's "extra"; default header.lower()


# The daemon's forecast of the tier's memory (faces/forecasts.py): its
# binding limit and the time left, e.g. "MemoryMax ~14m". Shown only while
# a daemon answers, since top alone keeps too short a history to fit.
FORECAST_COLUMN = TierColumn("FORECAST", 16, lambda t: t.extra.get("forecast", ""),
                             key="forecast")


def forecast_cells(forecasts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """tier -> its soonest memory forecast as a cell, from the API's items."""
    cells: dict[str, tuple[float, str]] = {}
    for fc in forecasts:
        tier, left = fc.get("tier"), fc.get("time_to_limit_seconds")
        if fc.get("resource") != "memory" or not tier or not isinstance(left, (int, float)):
            continue
        if tier not in cells or left < cells[tier][0]:
            cells[tier] = (float(left), f"{fc.get('limit', '')} ~{_duration(float(left))}")
    return {t: text for t, (_left, text) in cells.items()}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# ----------------------------------------------------------------- view ---


@dataclass(frozen=True, slots=True)
class View:
    sort: str = "cpu"
    tier: str | None = None  # show only this tier
    expanded: frozenset[str] = frozenset()  # unit cgroups
    expand_all: bool = False
    paused: bool = False
    help: bool = False
    cursor: int = 0  # index into the selectable (unit) lines
    quit: bool = False


def handle_key(view: View, key: str, selectable: Sequence[str]) -> View:
    """The view after one key; ``selectable`` is the unit keys in shown order."""
    if view.help:
        return replace(view, help=False, quit=key == "q")
    if key == "q":
        return replace(view, quit=True)
    if key == "?":
        return replace(view, help=True)
    if key in SORT_KEYS:
        return replace(view, sort=SORT_KEYS[key])
    if key in TIER_KEYS:
        return replace(view, tier=TIER_KEYS[key], cursor=0)
    if key == "0":
        return replace(view, tier=None, cursor=0)
    if key == "s":
        return replace(view, paused=not view.paused)
    if key == "+":
        return replace(view, expand_all=True)
    if key == "-":
        return replace(view, expand_all=False, expanded=frozenset())
    last = max(0, len(selectable) - 1)
    if key in ("down", "j"):
        return replace(view, cursor=min(last, view.cursor + 1))
    if key in ("up", "k"):
        return replace(view, cursor=max(0, view.cursor - 1))
    if key in ("enter", " ") and selectable:
        unit = selectable[min(view.cursor, last)]
        if view.expand_all:
            # Collapsing one of all: the others stay open.
            return replace(view, expand_all=False,
                           expanded=frozenset(selectable) - {unit})
        return replace(view, expanded=view.expanded ^ {unit})
    return view


def is_expanded(view: View, unit: UnitView) -> bool:
    return view.expand_all or unit.cgroup in view.expanded


# ------------------------------------------------------------- sorting ---


def _num(v: float | None) -> float:
    return -1.0 if v is None else float(v)


def sort_units(units: Sequence[UnitView], by: str) -> list[UnitView]:
    if by == "name":
        return sorted(units, key=lambda u: u.name.lower())
    if by == "memory":
        return sorted(units, key=lambda u: (-_num(u.memory_bytes), u.name))
    if by == "pressure":
        return sorted(units, key=lambda u: (-u.pressure.worst, -_num(u.cpu_percent), u.name))
    return sorted(units, key=lambda u: (-_num(u.cpu_percent), u.name))


def sort_processes(procs: Sequence[ProcessRow], by: str) -> list[ProcessRow]:
    if by == "name":
        return sorted(procs, key=lambda p: (p.comm.lower(), p.pid))
    if by == "memory":
        return sorted(procs, key=lambda p: (-p.memory_bytes, p.pid))
    # A process has no pressure file of its own: pressure sorts it by CPU.
    return sorted(procs, key=lambda p: (-_num(p.cpu_percent), p.pid))


def visible_tiers(snap: Snapshot, view: View) -> list[TierView]:
    return [t for t in snap.tiers if view.tier is None or t.tier == view.tier]


def selectable(snap: Snapshot, view: View) -> list[str]:
    """The unit keys the cursor moves over, in the order they are shown."""
    return [u.cgroup for t in visible_tiers(snap, view) for u in sort_units(t.units, view.sort)]


# ---------------------------------------------------------------- text ---


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH, floor: float = 10.0,
              glyphs: str = SPARK_UNICODE) -> str:
    """The last ``width`` values as bars scaled to their maximum (at least
    ``floor``, so an idle series stays low rather than filling the cell)."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    top = max(*shown, floor)
    steps = len(glyphs) - 1
    return "".join(glyphs[max(0, min(steps, round(steps * v / top)))] for v in shown)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"  # pragma: no cover


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def memory_text(t: TierView) -> str:
    limit = t.memory_limit
    if limit is None:
        return human_bytes(t.memory_bytes)
    share = t.memory_limit_percent
    return f"{human_bytes(t.memory_bytes)}/{human_bytes(limit)} {pct(share)}%"


def governed_text(t: TierView) -> str:
    parts = [f"{k}={v}" for k, v in sorted(t.governed.items())]
    if t.frozen:
        parts.append("frozen")
    return ",".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    kind: str  # title, header, tier, unit, process, note, event, help
    key: str | None = None  # a unit line's cgroup
    selected: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    head: tuple[Line, ...]
    body: tuple[Line, ...]
    events: tuple[Line, ...]
    footer: str

    def lines(self) -> list[Line]:
        return [*self.head, *self.body, *self.events]

    def text(self) -> str:
        return "\n".join([*(ln.text for ln in self.lines()), self.footer])


NAME_W = 34


def _cols(name: str, cpu: str, mem: str, tasks: str, psi: str, rest: str = "") -> str:
    return f"{name[:NAME_W]:<{NAME_W}} {cpu:>6} {mem:>22} {tasks:>6} {psi:>14} {rest}".rstrip()


def build_frame(snap: Snapshot, view: View, columns: Sequence[TierColumn] = (),
                glyphs: str = SPARK_UNICODE, events: int = 8,
                room: int | None = None) -> Frame:
    """The frame; with ``room`` (the screen's height), body lines past the
    screen are left out once the selected unit's line is in: formatting a
    thousand process lines nobody sees would be most of a refresh's cost."""
    clock = time.strftime("%H:%M:%S", time.localtime(snap.time))
    state = "PAUSED" if view.paused else f"every {snap.interval:g} s"
    filt = view.tier or "all tiers"
    head = [
        Line(f"taucg top  {clock}  {state}  cpu {pct(snap.cpu_percent)}%  "
             f"mem {pct(snap.memory_percent)}%  procs {snap.processes}  "
             f"cpu {sparkline(snap.history, glyphs=glyphs)}", "title"),
        Line(f"sort {view.sort}  show {filt}  events: {snap.events_source}  "
             f"history: {snap.history_source}", "title"),
    ]
    if snap.note:
        head.append(Line(snap.note, "note"))
    extra_head = " ".join(f"{c.header[:c.width]:<{c.width}}" for c in columns)
    head.append(Line(_cols("TIER / UNIT / PROCESS", "CPU%", "MEMORY (/LIMIT)", "TASKS",
                           "PSI C/M/I", f"{'OOM':>4} {'GOVERNED':<18} "
                           f"{'CPU HISTORY':<{SPARK_WIDTH}} {extra_head}"), "header"))
    if view.help:
        return Frame(tuple(head), tuple(Line(h, "help") for h in HELP), (),
                     "any key closes the help")
    body: list[Line] = []
    keys = selectable(snap, view)
    cursor_key = keys[min(view.cursor, len(keys) - 1)] if keys else None
    shown = visible_tiers(snap, view)
    seen = cursor_key is None  # the selected unit's line is in the body
    if not shown:
        body.append(Line(f"tier {view.tier} is not among the tiers shown here "
                         "(0 shows them all)", "note"))
    for t in shown:
        if not t.present:
            body.append(Line(f"{t.tier:<12} {t.unit}: not started (run 'sudo taucg apply')",
                             "tier"))
            continue
        tasks = t.tasks if t.tasks is not None else sum(u.tasks or 0 for u in t.units)
        extra = " ".join(f"{c.cell(t)[:c.width]:<{c.width}}" for c in columns)
        rest = (f"{'-' if t.oom_kills is None else t.oom_kills:>4} "
                f"{governed_text(t)[:18]:<18} "
                f"{sparkline(t.history, glyphs=glyphs):<{SPARK_WIDTH}} {extra}")
        body.append(Line(_cols(f"{t.tier} ({len(t.units)} units)", pct(t.cpu_percent),
                               memory_text(t), str(tasks), t.pressure.text(), rest), "tier"))
        for u in sort_units(t.units, view.sort):
            open_ = is_expanded(view, u)
            mark = "-" if open_ else "+"
            body.append(Line(_cols(f"  {mark} {u.name}", pct(u.cpu_percent),
                                   human_bytes(u.memory_bytes),
                                   "-" if u.tasks is None else str(u.tasks),
                                   u.pressure.text()), "unit", u.cgroup,
                             u.cgroup == cursor_key))
            seen = seen or u.cgroup == cursor_key
            if open_ and u.processes is not None:
                procs = sort_processes(u.processes, view.sort)
                if room is not None and seen:
                    procs = procs[:max(0, room - len(body))]
                for p in procs:
                    body.append(Line(_cols(f"      {p.pid:>7} {p.comm}", pct(p.cpu_percent),
                                           human_bytes(p.memory_bytes), p.state, ""),
                                     "process"))
            if room is not None and seen and len(body) >= room:
                break
        if room is not None and seen and len(body) >= room:
            break
    ev = [Line(f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.kind:<9} {e.text}",
               "event") for e in snap.events[-events:]] if events > 0 else []
    ev_head = Line(f"events ({snap.events_source})" + ("" if ev else ": none yet"), "header")
    return Frame(tuple(head), tuple(body), (ev_head, *ev),
                 "q quit  ? help  c/m/p/n sort  1-5/0 tier  enter expand  +/- all  s pause")


# ---------------------------------------------------- plain and JSON ---

ROW_HEADERS = ["LEVEL", "TIER", "UNIT", "PID", "NAME", "CPU%", "MEMORY", "MEMORY LIMIT",
               "TASKS", "PSI C/M/I", "OOM KILLS", "GOVERNED"]


def frame_rows(snap: Snapshot, view: View, columns: Sequence[TierColumn] = ()
               ) -> tuple[list[str], list[list[str]]]:
    """The frame as tab-separated rows: one per tier, unit and shown process."""
    headers = ROW_HEADERS + [c.header for c in columns]
    rows: list[list[str]] = []
    for t in visible_tiers(snap, view):
        rows.append(["tier", t.tier, t.unit, "-", "-", pct(t.cpu_percent),
                     "-" if t.memory_bytes is None else str(t.memory_bytes),
                     "-" if t.memory_limit is None else str(t.memory_limit),
                     str(t.tasks if t.tasks is not None else sum(u.tasks or 0 for u in t.units)),
                     t.pressure.text(),
                     "-" if t.oom_kills is None else str(t.oom_kills), governed_text(t),
                     *(c.cell(t) for c in columns)])
        pad = ["-"] * len(columns)
        for u in sort_units(t.units, view.sort):
            rows.append(["unit", t.tier, u.name, "-", "-", pct(u.cpu_percent),
                         "-" if u.memory_bytes is None else str(u.memory_bytes), "-",
                         "-" if u.tasks is None else str(u.tasks), u.pressure.text(),
                         "-", "-", *pad])
            if is_expanded(view, u) and u.processes is not None:
                for p in sort_processes(u.processes, view.sort):
                    rows.append(["process", t.tier, u.name, str(p.pid), p.comm,
                                 pct(p.cpu_percent), str(p.memory_bytes), "-", "-", "-",
                                 "-", "-", *pad])
    return headers, rows


def _pressure(p: Pressure) -> dict[str, float | None]:
    return {"cpu": p.cpu, "memory": p.memory, "io": p.io}


def frame_document(snap: Snapshot, view: View, columns: Sequence[TierColumn] = ()
                   ) -> dict[str, Any]:
    """taucg.top/1 without its schema line (render.emit_json adds it)."""
    from taucg.faces.render import utc

    def unit(u: UnitView) -> dict[str, Any]:
        procs = None
        if is_expanded(view, u) and u.processes is not None:
            procs = [{"pid": p.pid, "comm": p.comm, "state": p.state,
                      "cpu_percent": p.cpu_percent, "memory_bytes": p.memory_bytes}
                     for p in sort_processes(u.processes, view.sort)]
        return {"unit": u.name, "cgroup": u.cgroup, "cpu_percent": u.cpu_percent,
                "memory_bytes": u.memory_bytes, "tasks": u.tasks,
                "pressure_some_avg10_percent": _pressure(u.pressure), "processes": procs}

    tiers = [{"tier": t.tier, "unit": t.unit, "present": t.present,
              "cpu_percent": t.cpu_percent, "memory_bytes": t.memory_bytes,
              "memory_max_bytes": t.memory_max, "memory_high_bytes": t.memory_high,
              "memory_limit_percent": t.memory_limit_percent,
              "pressure_some_avg10_percent": _pressure(t.pressure),
              "governed": dict(t.governed), "frozen_by_governor": t.frozen,
              "oom_kills": t.oom_kills, "cpu_percent_history": list(t.history),
              "extra": {(c.key or c.header.lower()): c.cell(t) for c in columns},
              "units": [unit(u) for u in sort_units(t.units, view.sort)]}
             for t in visible_tiers(snap, view)]
    return {"sampled_at": utc(snap.time), "mode": snap.mode, "note": snap.note,
            "sort": view.sort, "tier_filter": view.tier,
            "interval_seconds": snap.interval,
            "events_source": snap.events_source, "history_source": snap.history_source,
            "system": {"cpu_percent": snap.cpu_percent, "memory_percent": snap.memory_percent,
                       "processes": snap.processes, "cpu_percent_history": list(snap.history)},
            "tiers": tiers,
            "events": [{"happened_at": utc(e.time), "kind": e.kind, "text": e.text}
                       for e in snap.events]}
