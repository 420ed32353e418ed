"""Process -> tier classification by the config's [[rules]], explainably.

Precedence: rules are tried in the order they appear in the config file,
and the first rule whose every given key matches wins. Within a rule the
keys are ANDed. Below them, the ananicy trees of [rule_sources] (looked
up by comm in an index, never scanned: see model/ananicy.py). A process
nothing matches stays where it is.

Keys: comm (exact, or a glob with * ? [ ]), exe (glob on the executable's
path), cmdline (regular expression searched in the space-joined command
line), user (a name or a numeric uid), unit (the unit the process runs in,
e.g. "cron.service" or "session-3.scope"; globs allowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from taucg.config.schema import Rule
from taucg.config.values import unit_name
from taucg.model.ananicy import AnanicyIndex, AnanicyMatch
from taucg.readers.procfs import ProcessFacts, uid_of


@dataclass(frozen=True, slots=True)
class Check:
    key: str
    wanted: str
    actual: str | None
    matched: bool

    def __str__(self) -> str:
        verb = "matches" if self.matched else "does not match"
        return f"{self.key} {self.actual!r} {verb} {self.wanted!r}"


@dataclass(frozen=True, slots=True)
class RuleResult:
    index: int  # 1-based, as in the config file
    rule: Rule
    checks: tuple[Check, ...]

    @property
    def matched(self) -> bool:
        return all(c.matched for c in self.checks)

    def label(self) -> str:
        return f"rule {self.index}" + (f" ({self.rule.name})" if self.rule.name else "")


@dataclass(frozen=True, slots=True)
class Verdict:
    facts: ProcessFacts
    tier: str | None
    rule: RuleResult | None
    tried: tuple[RuleResult, ...] = field(default=())
    ananicy: AnanicyMatch | None = None
    ananicy_rules: int | None = None  # the index's size when one was asked

    @property
    def source(self) -> str | None:
        """Where the deciding rule is written: the config's rule, or FILE:LINE."""
        if self.rule is not None:
            return self.rule.label()
        return str(self.ananicy.rule.source) if self.ananicy is not None else None

    def label(self) -> str | None:
        if self.rule is not None:
            return self.rule.label()
        return self.ananicy.label() if self.ananicy is not None else None

    def explain(self) -> list[str]:
        f = self.facts
        lines = [f"process {f.pid} ({f.comm}), user {f.user}, unit {f.unit or '-'}, "
                 f"exe {f.exe or '(unreadable)'}"]
        if not self.tried:
            lines.append("no [[rules]] are configured")
        if self.ananicy is not None and self.tried:
            lines.append("no [[rules]] entry matched; the ananicy rules come next")
        for r in self.tried:
            if r.matched:
                lines.append(f"{r.label()} matched ({'; '.join(map(str, r.checks))}): "
                             f"tier {r.rule.tier}")
                break
            failed = [str(c) for c in r.checks if not c.matched]
            lines.append(f"{r.label()} skipped: {'; '.join(failed)}")
        if self.ananicy is not None:
            lines.append(self.ananicy.explain())
        elif self.rule is None and self.ananicy_rules is not None:
            lines.append(f"no ananicy rule names comm {f.comm!r} or exe "
                         f"{(f.exe or '').rsplit('/', 1)[-1]!r} "
                         f"({self.ananicy_rules} rules indexed)")
        if self.rule is None and self.ananicy is None and (self.tried or self.ananicy_rules):
            lines.append("no rule matched: the process stays where it is")
        return lines


def _glob_or_exact(pattern: str, value: str | None) -> bool:
    return value is not None and (value == pattern or fnmatchcase(value, pattern))


def check_rule(rule: Rule, f: ProcessFacts) -> tuple[Check, ...]:
    checks = []
    if rule.comm is not None:
        checks.append(Check("comm", rule.comm, f.comm, _glob_or_exact(rule.comm, f.comm)))
    if rule.exe is not None:
        checks.append(Check("exe", rule.exe, f.exe, _glob_or_exact(rule.exe, f.exe)))
    if rule.cmdline is not None:
        checks.append(Check("cmdline", rule.cmdline, f.cmdline,
                            re.search(rule.cmdline, f.cmdline) is not None))
    if rule.user is not None:
        if isinstance(rule.user, int):
            ok = f.uid == rule.user
        else:
            ok = f.uid == uid_of(rule.user) or f.user == rule.user
        checks.append(Check("user", str(rule.user), f.user, ok))
    if rule.unit is not None:
        unit = f.unit
        ok = unit is not None and (_glob_or_exact(rule.unit, unit)
                                   or unit == unit_name(rule.unit))
        checks.append(Check("unit", rule.unit, unit, ok))
    return tuple(checks)


def classify(rules: tuple[Rule, ...], f: ProcessFacts,
             ananicy: AnanicyIndex | None = None) -> Verdict:
    tried = []
    for i, rule in enumerate(rules, start=1):
        result = RuleResult(i, rule, check_rule(rule, f))
        tried.append(result)
        if result.matched:
            return Verdict(f, rule.tier, result, tuple(tried))
    if ananicy is None:
        return Verdict(f, None, None, tuple(tried))
    m = ananicy.match(f.comm, f.exe)
    return Verdict(f, m.tier if m else None, None, tuple(tried), m, len(ananicy))
