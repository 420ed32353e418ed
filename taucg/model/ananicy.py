"""ananicy rules -> tiers, and the index that finds a process's rule
without scanning the corpus (a community tree holds 15,000+ rules).

The tier comes from ``[rule_sources.ananicy_tiers]`` by the rule's type;
a type the table does not name (or maps to "nice"), and a rule with no
type, go by nice: below -5 high, -5..4 normal, 5..14 low, 15 and up
background (no nice at all: normal, where a process with nice 0 is).

Lookup, by dict: the process's comm first (ananicy's ``name`` is the
comm), then its executable's file name (a comm changed by prctl, or
longer names), then, for a comm the kernel cut at 15 characters, the rule
whose name starts with it (the first such name in sorted order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from taucg.config.ananicy import AnanicyRule, AnanicyTree, load_tree
from taucg.config.schema import Config

TASK_COMM_LEN = 15  # the kernel's comm holds 15 characters and a NUL


def tier_by_nice(nice: int | None) -> str:
    if nice is None:
        return "normal"
    if nice < -5:
        return "high"
    if nice < 5:
        return "normal"
    if nice < 15:
        return "low"
    return "background"


def tier_of_rule(rule: AnanicyRule, table: Mapping[str, str]) -> tuple[str, str]:
    """(tier, why) for one rule."""
    nice = rule.settings.nice
    if rule.type is not None:
        mapped = table.get(rule.type)
        if mapped is not None and mapped != "nice":
            return mapped, f"type {rule.type} -> {mapped} by [rule_sources.ananicy_tiers]"
        how = ("mapped to \"nice\"" if mapped == "nice"
               else "not in [rule_sources.ananicy_tiers]")
        return tier_by_nice(nice), f"type {rule.type} {how}: nice {_nice(nice)} -> " \
                                   f"{tier_by_nice(nice)}"
    return tier_by_nice(nice), f"no type: nice {_nice(nice)} -> {tier_by_nice(nice)}"


def _nice(nice: int | None) -> str:
    return "unset" if nice is None else str(nice)


@dataclass(frozen=True, slots=True)
class AnanicyMatch:
    rule: AnanicyRule
    tier: str
    why: str  # how the tier was chosen
    key: str  # what matched: "comm", "exe" or "comm (cut at 15)"
    value: str

    def label(self) -> str:
        return f"ananicy {self.rule.source} ({self.rule.name})"

    def explain(self) -> str:
        given = ", ".join(f"{k} {v}" for k, v in self.rule.settings.given().items())
        parts = [f"{self.label()} matched ({self.key} {self.value!r} = name "
                 f"{self.rule.name!r}; {self.why}): tier {self.tier}"]
        if self.rule.type_source is not None:
            parts.append(f"type {self.rule.type} from {self.rule.type_source}")
        if self.rule.cpu_quota is not None:
            parts.append(f"cgroup {self.rule.settings.cgroup} from {self.rule.cgroup_source}: "
                         f"CPUQuota {self.rule.cpu_quota:g}% of all CPUs on its scope")
        if given:
            parts.append(f"applies {given}")
        return "; ".join(parts)


class AnanicyIndex:
    """The tree's rules, each with its tier, by name."""

    def __init__(self, tree: AnanicyTree, table: Mapping[str, str]) -> None:
        self.tree = tree
        self._by_name: dict[str, tuple[AnanicyRule, str, str]] = {}
        self._by_cut: dict[str, tuple[AnanicyRule, str, str]] = {}
        for rule in tree.rules:
            entry = (rule, *tier_of_rule(rule, table))
            self._by_name[rule.name] = entry
        for name in sorted(self._by_name):
            if len(name) > TASK_COMM_LEN:
                self._by_cut.setdefault(name[:TASK_COMM_LEN], self._by_name[name])

    def __len__(self) -> int:
        return len(self._by_name)

    def match(self, comm: str, exe: str | None = None) -> AnanicyMatch | None:
        hit = self._by_name.get(comm)
        if hit is not None:
            return AnanicyMatch(hit[0], hit[1], hit[2], "comm", comm)
        base = os.path.basename(exe) if exe else ""
        # " (deleted)": the kernel's suffix for a replaced executable.
        base = base.removesuffix(" (deleted)")
        if base and base != comm:
            hit = self._by_name.get(base)
            if hit is not None:
                return AnanicyMatch(hit[0], hit[1], hit[2], "exe name", base)
        if len(comm) == TASK_COMM_LEN:
            hit = self._by_cut.get(comm)
            if hit is not None:
                return AnanicyMatch(hit[0], hit[1], hit[2], "comm (cut at 15)", comm)
        return None

    def summary(self) -> str:
        t = self.tree
        return (f"{len(self)} ananicy rules, {len(t.types)} types, {len(t.cgroups)} cgroups "
                f"from {t.files} files under {', '.join(t.roots)}; "
                f"{t.dropped} lines skipped")


def load_index(cfg: Config) -> AnanicyIndex | None:
    """The configured trees, read now; None when none is configured."""
    rs = cfg.rule_sources
    if not rs.ananicy:
        return None
    return AnanicyIndex(load_tree(rs.ananicy), rs.ananicy_tiers)
