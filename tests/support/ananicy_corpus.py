"""An ananicy rule tree written by our own generator (no community file is
copied): types in one file, cgroups in another, rules spread over nested
folders using every field, comment and blank-line forms, and a file of
broken lines. ``write_corpus`` returns what a correct loader must find.

Used by the unit tests (a few hundred rules), the VM test and
scripts/bench-ananicy (15,000+ rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Types the default [rule_sources.ananicy_tiers] table names, with settings
# of our own choosing; plus two it does not name, mapped by their nice.
TYPES: dict[str, dict[str, Any]] = {
    "LowLatency_RT": {"nice": -12, "sched": "other"},
    "Game": {"nice": -6, "ioclass": "best-effort", "ionice": 1},
    "Player-Audio": {"nice": -8, "ioclass": "realtime", "ionice": 3},
    "Player-Video": {"nice": -7},
    "Image-View": {"nice": 0},
    "Doc-View": {"nice": 1},
    "Chat": {"nice": -1},
    "Heavy_CPU": {"nice": 9, "ioclass": "best-effort", "ionice": 6},
    "Service": {"nice": 5, "oom_score_adj": 100},
    "BG_CPUIO": {"nice": 16, "ioclass": "idle", "sched": "idle", "cgroup": "cpu30"},
    "BG_CPU": {"nice": 18, "sched": "batch"},
    "Launcher": {"nice": 19, "ioclass": "idle"},
    "Our_Fast": {"nice": -9},  # not in the table: nice -9 -> high
    "Our_Slow": {"nice": 11},  # not in the table: nice 11 -> low
}
CGROUPS = {"cpu80": 80, "cpu30": 30, "cpu50": 50}


def _line(obj: dict[str, Any], comment: str | None = None) -> str:
    text = json.dumps(obj)
    return f"{text} # {comment}" if comment else text


@dataclass
class Expect:
    rules: int = 0  # rules that load
    types: int = 0
    cgroups: int = 0
    bad: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, a word of why
    noted: list[tuple[str, int]] = field(default_factory=list)  # loaded, a key ignored
    lines: dict[str, tuple[str, int]] = field(default_factory=dict)  # rule name -> file, line


class _File:
    def __init__(self, path: Path, expect: Expect) -> None:
        self.path, self.expect = path, expect
        self.lines: list[str] = []

    def add(self, text: str) -> int:
        self.lines.append(text)
        return len(self.lines)

    def rule(self, obj: dict[str, Any], comment: str | None = None) -> None:
        n = self.add(_line(obj, comment))
        self.expect.lines[obj["name"]] = (str(self.path), n)

    def bad(self, text: str, why: str) -> None:
        self.expect.bad.append((str(self.path), self.add(text), why))

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")


# The rule forms cycled through: every field, alone and together.
def _form(i: int, name: str) -> dict[str, Any]:
    types = list(TYPES)
    forms: list[dict[str, Any]] = [
        {"type": types[i % len(types)]},
        {"type": types[(i * 7) % len(types)], "nice": (i % 39) - 20},
        {"nice": (i % 39) - 20},
        {"ioclass": "best-effort", "ionice": i % 8},
        {"ioclass": "idle", "nice": 15},
        {"sched": ("other", "batch", "idle", "normal")[i % 4], "nice": 4},
        {"oom_score_adj": (i * 37) % 2001 - 1000},
        {"cgroup": ("cpu80", "cpu30", "cpu50")[i % 3], "nice": 10},
        {"type": "Game", "nice": -3, "ioclass": "realtime", "ionice": 2, "sched": "rr",
         "rtprio": 5, "oom_score_adj": -100, "cgroup": "cpu80"},
    ]
    return {"name": name, **forms[i % len(forms)]}


def write_corpus(root: Path, rules: int = 300, per_file: int = 40,
                 broken: bool = True) -> Expect:
    """A tree under root with ``rules`` generated rules (plus the named ones
    tests look up); returns what loading it must give."""
    ex = Expect(types=len(TYPES), cgroups=len(CGROUPS))
    types = _File(root / "00-types" / "ours.types", ex)
    types.add("# Types, in their own file: rules elsewhere name them.")
    types.add("")
    for name, settings in TYPES.items():
        types.add(_line({"type": name, **settings}, "trailing comment" if name == "Game"
                        else None))
        types.add("   ")
    types.write()

    cgroups = _File(root / "00-cgroups.cgroups", ex)
    cgroups.add("## CPU caps, percent of all CPUs")
    for name, quota in CGROUPS.items():
        cgroups.add(_line({"cgroup": name, "CPUQuota": quota}))
    if broken:
        cgroups.bad(_line({"cgroup": "cpuX", "CPUQuota": "80"}), "CPUQuota")
        cgroups.bad(_line({"cgroup": "cpuY", "CPUQuota": 150}), "CPUQuota")
    cgroups.write()

    # Named rules the tests and the VM look up by comm.
    named = _File(root / "10-ours" / "named.rules", ex)
    named.add("# Rules the tests look up by name")
    named.rule({"name": "taucg-anaprey", "type": "Heavy_CPU", "nice": 12,
                "oom_score_adj": 555, "ioclass": "idle", "cgroup": "cpu30"}, "VM prey")
    named.rule({"name": "taucg-anagame", "type": "Game"})
    named.rule({"name": "taucg-anafast", "type": "Our_Fast"})
    named.rule({"name": "taucg-ananice", "nice": 7})
    named.rule({"name": "taucg-anabg", "type": "BG_CPUIO"})
    named.rule({"name": "taucg-a-very-long-process-name", "type": "Chat"})
    named.rule({"name": "taucg-dup", "nice": 0})
    ex.rules += 7
    named.write()

    made = 0
    f = 0
    while made < rules:
        folder = root / "20-generated" / f"group-{f // 10:03d}"
        file = _File(folder / f"apps-{f:04d}.rules", ex)
        if f % 3 == 0:
            file.add("# generated rules")
        for _ in range(min(per_file, rules - made)):
            name = f"gen-{made:05d}"
            file.rule(_form(made, name), "tail" if made % 11 == 0 else None)
            if made % 5 == 0:
                file.add("")
            made += 1
        file.write()
        f += 1
    ex.rules += made

    # The same name again, later in path order: the later line wins.
    later = _File(root / "30-later" / "dup.rules", ex)
    later.rule({"name": "taucg-dup", "nice": 17})
    later.write()

    # Files the loader must not read.
    (root / "README.md").write_text("not a rules file {\n")
    (root / "20-generated" / "old.conf").write_text("NAME=x NICE=1\n")

    if broken:
        bad = _File(root / "90-broken" / "bad.rules", ex)
        bad.add("# each line below is broken in one way")
        bad.bad('{"name": "b1", "nice": 5', "JSON")
        bad.bad('{"name": "b2" "nice": 5}', "JSON")
        bad.bad(_line({"name": "b3", "type": "NoSuchType"}), "unknown type")
        bad.bad(_line({"name": "b4", "nice": "5"}), "nice")
        bad.bad(_line({"name": "b5", "nice": 40}), "nice")
        bad.bad(_line({"name": "b6", "ionice": 9}), "ionice")
        bad.bad(_line({"name": "b7", "ioclass": "fast"}), "ioclass")
        bad.bad(_line({"name": "b8", "sched": 3}), "sched")
        bad.bad(_line({"name": "b9", "oom_score_adj": 2000}), "oom_score_adj")
        bad.bad(_line({"name": "b10", "cgroup": "cpu99"}), "unknown cgroup")
        bad.bad(_line({"name": "b11", "ioclass": "idle", "ionice": 3}), "idle")
        bad.bad(_line({"nice": 3}), "name")
        bad.bad(_line({"name": 12, "nice": 3}), "name")
        bad.bad("[1, 2, 3]", "object")
        bad.bad(_line({"name": "b12", "nice": True}), "nice")
        bad.bad(_line({"name": "b13", "type": ["Game"]}), "type")
        bad.bad('{"name": "b14"} trailing junk', "after the object")
        bad.add("")
        n = bad.add(_line({"name": "taucg-anakey", "nice": 2, "latency_nice": 5}))
        ex.noted.append((str(bad.path), n))
        ex.lines["taucg-anakey"] = (str(bad.path), n)
        ex.rules += 1
        bad.write()
    return ex


def add_rule(root: Path, name: str, rule: dict[str, Any], file: str = "40-added.rules"
             ) -> tuple[str, int]:
    """Appends one rule (for the reload tests); returns its file and line."""
    path = root / file
    lines = path.read_text().splitlines() if path.exists() else []
    lines.append(_line({"name": name, **rule}))
    path.write_text("\n".join(lines) + "\n")
    return str(path), len(lines)
