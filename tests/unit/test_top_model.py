"""taucg top's frame model, on hand-made snapshots: sorting, filtering,
expanding, keys, sparklines, the extra per-tier column, the JSON document
(against its shipped schema) and the daemon notifications as events."""

from __future__ import annotations

from dataclasses import replace

from taucg.faces.render import document
from taucg.faces.top_model import (
    FORECAST_COLUMN,
    SPARK_ASCII,
    SPARK_UNICODE,
    Event,
    Pressure,
    ProcessRow,
    Snapshot,
    TierColumn,
    TierView,
    UnitView,
    View,
    build_frame,
    forecast_cells,
    frame_document,
    frame_rows,
    handle_key,
    selectable,
    sort_units,
    sparkline,
)
from taucg.faces.top_source import event_of
from tests.support.json_contract import validate

MiB = 1 << 20


def unit(name: str, cpu: float | None, mem: int, psi: float = 0.0,
         procs: tuple[ProcessRow, ...] | None = None) -> UnitView:
    return UnitView(name, f"/cg/{name}", cpu, mem, len(procs or ()) or 1,
                    Pressure(psi, 0.0, 0.0), procs)


PROCS = (ProcessRow(10, "bravo", "S", 5.0, 10 * MiB), ProcessRow(11, "alpha", "R", 50.0, MiB),
         ProcessRow(12, "charlie", "S", None, 90 * MiB))


def snap(events: tuple[Event, ...] = ()) -> Snapshot:
    low = TierView("low", "tau-low.slice", True, 30.0, 600 * MiB, 1024 * MiB, None,
                   Pressure(1.0, 20.0, 0.5), {"cpu_quota": "50%"}, False, 2,
                   (unit("web.service", 25.0, 100 * MiB, 3.0, PROCS),
                    unit("app.service", 1.0, 500 * MiB, 40.0),
                    unit("zed.service", None, 5 * MiB)), (1.0, 50.0, 100.0))
    normal = TierView("normal", "tau-normal.slice", True, 80.0, 50 * MiB,
                      units=(unit("batch.service", 80.0, 50 * MiB),))
    critical = TierView("critical", "tau-critical.slice", False)
    return Snapshot(1_700_000_000.0, "tiers", "", 42.0, 10.0, 321,
                    (critical, normal, low), events, (5.0, 6.0))


def body(frame_view: View, s: Snapshot | None = None) -> list[str]:
    return [ln.text for ln in build_frame(s or snap(), frame_view).body]


def test_units_sort_by_each_key() -> None:
    units = snap().tiers[2].units
    assert [u.name for u in sort_units(units, "cpu")] == ["web.service", "app.service",
                                                          "zed.service"]
    assert [u.name for u in sort_units(units, "memory")] == ["app.service", "web.service",
                                                             "zed.service"]
    assert [u.name for u in sort_units(units, "pressure")] == ["app.service", "web.service",
                                                               "zed.service"]
    assert [u.name for u in sort_units(units, "name")] == ["app.service", "web.service",
                                                           "zed.service"]


def test_an_expanded_unit_shows_its_processes_in_the_sort_order() -> None:
    v = View(expanded=frozenset({"/cg/web.service"}), sort="name")
    lines = body(v)
    web = next(i for i, t in enumerate(lines) if "web.service" in t)
    assert lines[web].lstrip().startswith("- web.service")
    assert [t.split()[1] for t in lines[web + 1:web + 4]] == ["alpha", "bravo", "charlie"]
    assert "+ zed.service" in lines[web + 4]
    by_mem = body(View(expanded=frozenset({"/cg/web.service"}), sort="memory"))
    web = next(i for i, t in enumerate(by_mem) if "web.service" in t)
    assert [t.split()[1] for t in by_mem[web + 1:web + 4]] == ["charlie", "bravo", "alpha"]
    # Collapsed: no process line at all.
    assert not [t for t in body(View()) if "alpha" in t]


def test_a_tier_filter_shows_only_that_tier() -> None:
    lines = body(View(tier="normal"))
    assert any(t.startswith("normal") for t in lines)
    assert not [t for t in lines if "low" in t or "web.service" in t or "critical" in t]
    absent = body(View(tier="background"))
    assert absent == ["tier background is not among the tiers shown here (0 shows them all)"]


def test_a_tier_not_started_says_so() -> None:
    lines = body(View())
    assert any("tau-critical.slice: not started" in t for t in lines)


def test_the_tier_line_holds_memory_against_its_limit_pressure_oom_and_governed() -> None:
    line = next(t for t in body(View()) if t.startswith("low"))
    assert "600.0M/1.0G 58.6%" in line
    assert "1.0/20.0/0.5" in line
    assert " 2 " in line and "cpu_quota=50%" in line
    assert sparkline((1.0, 50.0, 100.0)) in line


def test_keys() -> None:
    keys = selectable(snap(), View())
    assert keys == ["/cg/batch.service", "/cg/web.service", "/cg/app.service",
                    "/cg/zed.service"]
    v = View()
    for key, sort in (("m", "memory"), ("p", "pressure"), ("n", "name"), ("c", "cpu")):
        v = handle_key(v, key, keys)
        assert v.sort == sort
    assert handle_key(v, "4", keys).tier == "low"
    assert handle_key(handle_key(v, "4", keys), "0", keys).tier is None
    assert handle_key(v, "s", keys).paused and not handle_key(
        handle_key(v, "s", keys), "s", keys).paused
    down = handle_key(handle_key(v, "down", keys), "j", keys)
    assert down.cursor == 2
    assert handle_key(View(cursor=3), "down", keys).cursor == 3  # stops at the last
    assert handle_key(View(), "up", keys).cursor == 0
    opened = handle_key(down, "enter", keys)
    assert opened.expanded == {"/cg/app.service"}
    assert handle_key(opened, " ", keys).expanded == frozenset()
    every = handle_key(v, "+", keys)
    assert every.expand_all
    # Collapsing one while all are open keeps the others open.
    one_shut = handle_key(every, "enter", keys)
    assert not one_shut.expand_all and one_shut.expanded == set(keys) - {keys[0]}
    assert handle_key(every, "-", keys) == View()
    helped = handle_key(v, "?", keys)
    assert helped.help and not handle_key(helped, "x", keys).help
    assert handle_key(helped, "q", keys).quit
    assert handle_key(v, "q", keys).quit
    assert handle_key(v, "%", keys) == v


def test_the_selected_unit_is_marked() -> None:
    frame = build_frame(snap(), View(cursor=1))
    chosen = [ln for ln in frame.body if ln.selected]
    assert len(chosen) == 1 and "web.service" in chosen[0].text


def test_help_replaces_the_body() -> None:
    lines = body(View(help=True))
    assert lines[0] == "taucg top: keys" and any("q          quit" in t for t in lines)


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0.0, 100.0]) == SPARK_UNICODE[0] + SPARK_UNICODE[-1]
    # An idle series stays low: scaled to the floor, not to its own maximum.
    assert sparkline([1.0, 2.0], floor=10.0) == SPARK_UNICODE[1] * 2
    assert len(sparkline([float(i) for i in range(100)], width=20)) == 20
    assert set(sparkline([5.0, 50.0], glyphs=SPARK_ASCII)) <= set(SPARK_ASCII)


def test_the_event_pane_keeps_the_last_events() -> None:
    events = tuple(Event(1_700_000_000.0 + i, "alert", f"event {i}") for i in range(12))
    frame = build_frame(snap(events), View(), events=5)
    texts = [ln.text for ln in frame.events]
    assert texts[0].startswith("events (own sampling)")
    assert [t.rsplit(" ", 1)[1] for t in texts[1:]] == ["7", "8", "9", "10", "11"]
    assert "none yet" in build_frame(snap(), View()).events[0].text


FORECAST = TierColumn("FORECAST", 14, lambda t: t.extra.get("forecast", "-"))


def test_an_extra_tier_column_reaches_the_frame_rows_and_json() -> None:
    s = snap()
    low = s.tiers[2]
    from dataclasses import replace

    s = replace(s, tiers=(s.tiers[0], s.tiers[1], replace(low, extra={"forecast": "~14 min"})))
    frame = build_frame(s, View(), [FORECAST])
    assert "FORECAST" in frame.head[-1].text
    assert "~14 min" in next(ln.text for ln in frame.body if ln.text.startswith("low"))
    headers, rows = frame_rows(s, View(), [FORECAST])
    assert headers[-1] == "FORECAST"
    assert next(r for r in rows if r[0] == "tier" and r[1] == "low")[-1] == "~14 min"
    doc = frame_document(s, View(), [FORECAST])
    assert next(t for t in doc["tiers"] if t["tier"] == "low")["extra"] == {
        "forecast": "~14 min"}


def test_the_daemons_forecasts_become_the_soonest_memory_cell_per_tier() -> None:
    items = [
        {"resource": "memory", "tier": "low", "limit": "MemoryMax",
         "time_to_limit_seconds": 840.0},
        {"resource": "process_memory", "tier": "low", "limit": "MemoryMax",
         "time_to_limit_seconds": 60.0},  # a process's, not the tier's
        {"resource": "memory", "tier": "low", "limit": "MemoryHigh",
         "time_to_limit_seconds": 3000.0},  # later than the first
        {"resource": "filesystem", "tier": None, "limit": "size",
         "time_to_limit_seconds": 5.0},
        {"resource": "memory", "tier": "normal", "limit": "MemoryHigh",
         "time_to_limit_seconds": 30.0},
        {"resource": "memory", "tier": "high", "limit": "MemoryMax",
         "time_to_limit_seconds": 9000.0},
    ]
    assert forecast_cells(items) == {"low": "MemoryMax ~14m", "normal": "MemoryHigh ~30s",
                                     "high": "MemoryMax ~2.5h"}
    assert FORECAST_COLUMN.cell(replace(snap().tiers[2], extra={"forecast": "x"})) == "x"
    assert FORECAST_COLUMN.cell(snap().tiers[2]) == ""


def test_rows_have_processes_only_when_expanded() -> None:
    _, rows = frame_rows(snap(), View())
    assert {r[0] for r in rows} == {"tier", "unit"}
    _, rows = frame_rows(snap(), View(expand_all=True))
    assert [r[4] for r in rows if r[0] == "process"] == ["alpha", "bravo", "charlie"]


def test_the_json_document_matches_its_schema() -> None:
    events = (Event(1_700_000_000.0, "recovery", "tau-crashy.service signal: restart"),)
    doc = document("top", frame_document(snap(events), View(expand_all=True, tier="low")))
    validate(doc, "top")
    assert doc["tier_filter"] == "low" and [t["tier"] for t in doc["tiers"]] == ["low"]
    web = doc["tiers"][0]["units"][0]
    assert web["unit"] == "web.service" and len(web["processes"]) == 3
    assert doc["events"][0]["happened_at"] == "2023-11-14T22:13:20.000Z"
    # Collapsed units carry null, which the schema allows; a wrong type it refuses.
    collapsed = document("top", frame_document(snap(), View()))
    validate(collapsed, "top")
    collapsed["tiers"][0]["oom_kills"] = "two"
    try:
        validate(collapsed, "top")
    except AssertionError:
        pass
    else:
        raise AssertionError("the schema took a string for oom_kills")


def test_daemon_notifications_become_events() -> None:
    rec = event_of("taucg.recovery", {"time": 5.0, "event": "action",
                                       "unit": "tau-crashy.service", "strategy": "restart",
                                       "attempt": 1, "result": "signal",
                                       "outcome": "restarted"})
    assert rec == Event(5.0, "recovery", "tau-crashy.service signal: restart (attempt 1) "
                                         "-> restarted")
    alert = event_of("taucg.alert", {"time": 6.0, "state": "raised", "metric": "cpu_percent",
                                     "message": "cpu_percent 97 above 90"})
    assert alert == Event(6.0, "alert", "raised: cpu_percent 97 above 90")
    gov = event_of("taucg.governor", {"time": 7.0, "kind": "thermal", "tier": "low",
                                      "key": "cpu_quota", "before": None, "after": "40%",
                                      "reason": "temperature 90.0"})
    assert gov is not None and gov.kind == "governor" and "low cpu_quota" in gov.text
    safe = event_of("taucg.recovery", {"time": 8.0, "event": "safe_mode", "safe_mode": True})
    assert safe == Event(8.0, "recovery", "safe mode entered")
    dropped = event_of("taucg.dropped", {"reason": "read faster", "lost": 3})
    assert dropped is not None and dropped.kind == "daemon"
    assert event_of("taucg.unknown", {}) is None


def test_a_screens_room_leaves_out_what_it_cannot_show_but_not_the_selection() -> None:
    many = tuple(ProcessRow(100 + i, f"p{i:04d}", "S", float(i), MiB) for i in range(500))
    s = snap()
    from dataclasses import replace

    low = replace(s.tiers[2], units=(unit("big.service", 99.0, MiB, procs=many),
                                     *s.tiers[2].units))
    s = replace(s, tiers=(s.tiers[0], s.tiers[1], low))
    keys = selectable(s, View())
    full = build_frame(s, View(expand_all=True)).body
    assert len(full) > 500
    cut = build_frame(s, View(expand_all=True), room=30).body
    assert 30 <= len(cut) < 40 and cut == full[:len(cut)]
    # The selection far below the screen: every line up to it is still built.
    last = build_frame(s, View(expand_all=True, cursor=len(keys) - 1), room=30).body
    assert last[-1].selected
    assert [ln.text for ln in last] == [ln.text for ln in full[:len(last)]]
