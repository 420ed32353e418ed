"""ananicy rule trees (``[rule_sources] ananicy``): .rules, .types and
.cgroups files read into typed, resolved rules.

This is config: admin-written text read and checked, nothing of the kernel
(readers/) and no meaning (model/ maps the rules to tiers). The format is
ananicy's: one JSON object per line, ``#`` starts a comment (a whole line
or after the object), blank lines are skipped. Files are found anywhere
under each root, in sorted path order; a later definition of the same rule
name, type or cgroup replaces an earlier one (later roots win).

A line that cannot be used (bad JSON, a wrong value type, an unknown type
or cgroup) is dropped and counted as an ``AnanicyProblem`` with its file
and line; nothing stops the load. Unknown keys are ignored (the community
corpora carry keys of newer ananicy versions), each noted once per file.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

SUFFIXES = (".types", ".cgroups", ".rules")
# Far above any real tree's file (the largest community file is a few KiB);
# it only keeps a mistaken path (a log, an image) out of the daemon's memory.
MAX_FILE_BYTES = 16 << 20
IOCLASSES = ("realtime", "best-effort", "idle", "none")
SCHEDS = ("other", "normal", "batch", "idle", "fifo", "rr", "iso", "deadline")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class AnanicyProblem:
    file: str
    line: int  # 0: the file (or root) as a whole
    message: str
    dropped: bool = True  # False: the line loaded, something in it was ignored

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What a rule or type asks for; None leaves it to the tier."""

    nice: int | None = None
    ioclass: str | None = None
    ionice: int | None = None
    sched: str | None = None
    rtprio: int | None = None
    oom_score_adj: int | None = None
    cgroup: str | None = None

    def over(self, base: Settings) -> Settings:
        """These settings, with base filling the ones not given. The idle IO
        class has no levels, so a type's ionice does not survive it."""
        out = Settings(*(getattr(self, k) if getattr(self, k) is not None
                         else getattr(base, k) for k in _SETTING_KEYS))
        return replace(out, ionice=None) if out.ioclass == "idle" else out

    def given(self) -> dict[str, int | str]:
        return {k: v for k in _SETTING_KEYS if (v := getattr(self, k)) is not None}


_SETTING_KEYS = ("nice", "ioclass", "ionice", "sched", "rtprio", "oom_score_adj", "cgroup")


@dataclass(frozen=True, slots=True)
class AnanicyType:
    name: str
    settings: Settings
    source: Source


@dataclass(frozen=True, slots=True)
class AnanicyCgroup:
    name: str
    cpu_quota: float  # percent of all CPUs together, as ananicy means it
    source: Source


@dataclass(frozen=True, slots=True)
class AnanicyRule:
    """One rule, resolved: ``settings`` are the rule's own over its type's."""

    name: str
    type: str | None
    settings: Settings
    source: Source
    own: Settings = field(default_factory=Settings)  # before the type's were added
    type_source: Source | None = None
    cpu_quota: float | None = None  # from its cgroup, percent of all CPUs
    cgroup_source: Source | None = None


@dataclass(frozen=True, slots=True)
class AnanicyTree:
    roots: tuple[str, ...]
    rules: tuple[AnanicyRule, ...]
    types: Mapping[str, AnanicyType]
    cgroups: Mapping[str, AnanicyCgroup]
    problems: tuple[AnanicyProblem, ...]
    files: int = 0
    replaced: int = 0  # rules whose name a later line defined again

    @property
    def dropped(self) -> int:
        return sum(1 for p in self.problems if p.dropped)


# ------------------------------------------------------------- values ---


class _Bad(ValueError):
    pass


def _int(obj: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"{key} must be an integer from {lo} to {hi}, got {json.dumps(v)}")
    if not lo <= v <= hi:
        raise _Bad(f"{key} {v} is outside {lo}..{hi}")
    return v


def _choice(obj: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or v not in choices:
        raise _Bad(f"{key} must be one of {', '.join(choices)}, got {json.dumps(v)}")
    return v


def _name(obj: Mapping[str, Any], key: str, required: bool) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise _Bad(f"no {key!r} key")
        return None
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        raise _Bad(f"{key} must be a non-empty string, got {json.dumps(v)}")
    return v


def _settings(obj: Mapping[str, Any]) -> Settings:
    s = Settings(nice=_int(obj, "nice", -20, 19),
                 ioclass=_choice(obj, "ioclass", IOCLASSES),
                 ionice=_int(obj, "ionice", 0, 7),
                 sched=_choice(obj, "sched", SCHEDS),
                 rtprio=_int(obj, "rtprio", 1, 99),
                 oom_score_adj=_int(obj, "oom_score_adj", -1000, 1000),
                 cgroup=_name(obj, "cgroup", False))
    if s.ioclass == "idle" and s.ionice is not None:
        raise _Bad("ioclass idle has no levels: drop ionice or pick best-effort")
    return s


# Keys each kind of file knows, beyond the settings.
_KNOWN = {".rules": {"name", "type", *_SETTING_KEYS},
          ".types": {"type", *_SETTING_KEYS},
          ".cgroups": {"cgroup", "CPUQuota"}}


# ------------------------------------------------------------- reading ---


def _objects(path: Path, problems: list[AnanicyProblem]
             ) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, object) for each readable line of one file."""
    text = _read(path, problems)
    if text is None:
        return
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            obj, end = _DECODER.raw_decode(line)
        except json.JSONDecodeError as exc:
            problems.append(AnanicyProblem(str(path), n, f"not JSON: {exc.msg} "
                                           f"(column {exc.colno})"))
            continue
        rest = line[end:].strip()
        if rest and not rest.startswith("#"):
            problems.append(AnanicyProblem(str(path), n, f"text after the object: {rest[:40]!r}"))
            continue
        if not isinstance(obj, dict):
            problems.append(AnanicyProblem(str(path), n,
                                           f"expected a JSON object, got {type(obj).__name__}"))
            continue
        yield n, obj


def _read(path: Path, problems: list[AnanicyProblem]) -> str | None:
    try:
        # O_NONBLOCK: a FIFO in the tree must not hang the load.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                why = "is not a regular file"
            elif st.st_size > MAX_FILE_BYTES:
                why = f"is {st.st_size} bytes, over {MAX_FILE_BYTES}: not a rules file?"
            else:
                return os.read(fd, MAX_FILE_BYTES + 1).decode("utf-8")
        finally:
            os.close(fd)
    except UnicodeDecodeError as exc:
        why = f"is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        why = f"cannot be read: {exc.strerror or exc}"
    problems.append(AnanicyProblem(str(path), 0, why))
    return None


def find_files(root: Path, problems: list[AnanicyProblem]) -> list[Path]:
    """Every .rules/.types/.cgroups file under root, sorted by path."""
    if not root.is_dir():
        why = "no such directory" if not root.exists() else "is not a directory"
        problems.append(AnanicyProblem(str(root), 0, f"{why}; fix [rule_sources] ananicy"))
        return []
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root, onerror=lambda e: problems.append(
            AnanicyProblem(str(e.filename), 0, f"cannot be listed: {e.strerror}"))):
        dirs.sort()
        found.extend(Path(dirpath, f) for f in files if f.endswith(SUFFIXES))
    return sorted(found)


def load_tree(roots: Iterable[str | os.PathLike[str]]) -> AnanicyTree:
    """Reads every root; never raises for what is in the files."""
    problems: list[AnanicyProblem] = []
    types: dict[str, AnanicyType] = {}
    cgroups: dict[str, AnanicyCgroup] = {}
    raw_rules: dict[str, AnanicyRule] = {}
    replaced = 0
    names = tuple(str(r) for r in roots)
    files = [p for r in names for p in find_files(Path(r), problems)]
    # Types and cgroups first: a rule may name a type defined in any file.
    files.sort(key=lambda p: SUFFIXES.index(p.suffix))
    for path in files:
        kind = path.suffix
        unknown_said: set[str] = set()
        for n, obj in _objects(path, problems):
            src = Source(str(path), n)
            unknown = sorted(set(obj) - _KNOWN[kind] - unknown_said)
            try:
                if kind == ".cgroups":
                    name = _name(obj, "cgroup", True)
                    q = obj.get("CPUQuota")
                    if isinstance(q, bool) or not isinstance(q, int | float) \
                            or not 0 < q <= 100:
                        raise _Bad(f"CPUQuota must be a number above 0 and at most 100, "
                                   f"got {json.dumps(q)}")
                    assert name is not None
                    cgroups[name] = AnanicyCgroup(name, float(q), src)
                elif kind == ".types":
                    name = _name(obj, "type", True)
                    assert name is not None
                    types[name] = AnanicyType(name, _settings(obj), src)
                else:
                    name = _name(obj, "name", True)
                    assert name is not None
                    rule = AnanicyRule(name, _name(obj, "type", False), _settings(obj), src)
                    replaced += name in raw_rules
                    raw_rules[name] = rule
            except _Bad as exc:
                problems.append(AnanicyProblem(str(path), n, str(exc)))
                continue
            if unknown:
                unknown_said.update(unknown)
                problems.append(AnanicyProblem(str(path), n, "ignored unknown key(s) "
                                               f"{', '.join(unknown)}", dropped=False))
    rules = _resolve(raw_rules.values(), types, cgroups, problems)
    return AnanicyTree(names, rules, MappingProxyType(types), MappingProxyType(cgroups),
                       tuple(sorted(problems, key=lambda p: (p.file, p.line))), len(files),
                       replaced)


def _resolve(rules: Iterable[AnanicyRule], types: Mapping[str, AnanicyType],
             cgroups: Mapping[str, AnanicyCgroup], problems: list[AnanicyProblem]
             ) -> tuple[AnanicyRule, ...]:
    out = []
    for rule in rules:
        src = rule.source
        settings, type_src = rule.settings, None
        if rule.type is not None:
            t = types.get(rule.type)
            if t is None:
                problems.append(AnanicyProblem(src.file, src.line, f"unknown type "
                                               f"{rule.type!r}: no .types file defines it"))
                continue
            settings, type_src = settings.over(t.settings), t.source
        quota, cg_src = None, None
        if settings.cgroup is not None:
            cg = cgroups.get(settings.cgroup)
            if cg is None:
                via = "" if rule.settings.cgroup else f" (from type {rule.type} at {type_src})"
                problems.append(AnanicyProblem(src.file, src.line, f"unknown cgroup "
                                               f"{settings.cgroup!r}{via}: no .cgroups file "
                                               "defines it"))
                continue
            quota, cg_src = cg.cpu_quota, cg.source
        out.append(replace(rule, settings=settings, own=rule.settings, type_source=type_src,
                           cpu_quota=quota, cgroup_source=cg_src))
    return tuple(out)
