"""TOML -> one frozen, typed Config.

The built-in default (``default.toml`` in this package) is loaded first; an
admin file then overrides only the keys it sets. Every problem in the admin
file is collected, not just the first, and each names the file, the key path
and, where the text shows it, the line.

Lookup order for the admin file: ``--config``, then ``$TAUCG_CONFIG``, then
``/etc/taucg/taucg.toml``; with none of them the built-in default stands alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat

# tomllib is 3.11's; requires-python is >=3.11 (README: supported Pythons).
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from taucg.config.schema import TIER_NAMES, Check, Config, Rule, _check_service_key
from taucg.config.tomllines import KeyPath, key_lines, line_for
from taucg.config.values import (
    CpuSet,
    Size,
    check_unit_name,
    is_loopback,
    parse_address,
    parse_cpus,
    parse_size,
    unit_name,
)

BUILTIN = "built-in default"
SYSTEM_CONFIG = Path("/etc/taucg/taucg.toml")
ENV_VAR = "TAUCG_CONFIG"
# 1 MiB: over a hundred times the built-in config, far below what hurts.
MAX_CONFIG_BYTES = 1 << 20
PID_MAX_LIMIT = 4 * 1024 * 1024  # the kernel's ceiling on pid_max, so on tasks


# Keys of a table_of whose names are checked (tier names, unit names).
_TABLE_KEY_CHECKS: dict[tuple[str, ...], Any] = {
    ("tiers",): lambda k: None if k in TIER_NAMES else
    f"unknown tier {k!r}; the tiers are {', '.join(TIER_NAMES)}",
    ("recovery", "services"): _check_service_key,
}


# ---------------------------------------------------------------- errors ---


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a config file; str() gives one line each."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f'."{part}"' if out else f'"{part}"'
    return out


class _Problems:
    def __init__(self, file: str, lines: dict[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.items: list[ConfigProblem] = []
        self.bad_keys: set[str] = set()

    def has(self, *paths: KeyPath) -> bool:
        return any(format_key(p) in self.bad_keys for p in paths)

    def add(self, path: KeyPath, message: str) -> None:
        self.bad_keys.add(format_key(path))
        self.items.append(
            ConfigProblem(self.file, format_key(path), message, line_for(self.lines, path))
        )


# ------------------------------------------------------------- converting ---


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               list: "an array", dict: "a table"}


def _type_name(value: object) -> str:
    for t, name in _TYPE_NAMES.items():
        if type(value) is t:
            return f"{name} ({value!r})" if t not in (list, dict) else name
    return type(value).__name__


def _range(value: float, check: Check) -> None:
    if check.lo is not None and value < check.lo:
        raise ValueError(f"{value!r} is below the minimum {check.lo:g}")
    if check.hi is not None and value > check.hi:
        raise ValueError(f"{value!r} is above the maximum {check.hi:g}")


def _convert_scalar(check: Check, value: Any) -> Any:
    kind = check.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_type_name(value)}")
        _range(value, check)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_type_name(value)}")
        # TOML has nan and inf; no threshold, weight or duration means either.
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        _range(float(value), check)
        return float(value)
    if isinstance(value, str) and "\0" in value:
        # A NUL byte passes TOML but no path, unit or name can hold one.
        raise ValueError(f"{value!r} contains a NUL byte")
    if kind == "optpath":  # "" or an absolute path
        if not isinstance(value, str) or (value and not value.startswith("/")):
            raise ValueError(f"expected an absolute path or \"\", got {_type_name(value)}")
        return value
    if kind in ("url", "metricname"):
        from taucg.config.output_checks import check_scalar

        return check_scalar(kind, value)
    if kind in ("str", "path", "regex", "choice", "unitname"):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        if kind == "path" and not value.startswith("/"):
            raise ValueError(f"expected an absolute path, got {value!r}")
        if kind == "choice" and value not in check.choices:
            raise ValueError(_choice_message(value, check.choices))
        if kind == "regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        if kind == "unitname":
            check_unit_name(value)
        if kind == "str" and not value:
            raise ValueError("expected a non-empty string")
        return value
    if kind == "address":
        if not isinstance(value, str):
            raise ValueError(f"expected \"HOST:PORT\" or \"\", got {_type_name(value)}")
        if value:
            parse_address(value)
        return value
    if kind == "size":
        return parse_size(value)
    if kind == "bytes":
        size = parse_size(value)
        if size.percent is not None:
            raise ValueError(f"takes bytes or \"infinity\", not a percentage ({value!r}): "
                             "systemd accepts no percentage here before version 253")
        return size
    if kind == "weight":
        if value == "idle":
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'expected an integer from 1 to 10000 or "idle", '
                             f"got {_type_name(value)}")
        _range(value, check)
        return value
    if kind == "cpus":
        return parse_cpus(value)
    if kind == "tasks":
        if value == "infinity":
            return "infinity"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'expected a positive integer or "infinity", got {_type_name(value)}')
        if value < 1:
            raise ValueError(f"tasks_max must be at least 1, got {value}")
        if value > PID_MAX_LIMIT:
            raise ValueError(f"tasks_max {value} is above {PID_MAX_LIMIT}, the most tasks "
                             'Linux can have; use "infinity" for no limit')
        return value
    if kind == "user":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected a user name or a numeric uid, got {_type_name(value)}")
        if isinstance(value, int) and not 0 <= value < 2**32 - 1:
            raise ValueError(f"uid {value} is out of range")
        if isinstance(value, str) and not value:
            raise ValueError("expected a user name or a numeric uid, got an empty string")
        return value
    if kind == "weights":
        if not isinstance(value, dict):
            raise ValueError(f"expected a table of weights, got {_type_name(value)}")
        weights: dict[str, float] = {}
        for name, w in value.items():
            if name not in check.choices:
                raise ValueError(f"weight for {_choice_message(name, check.choices)}")
            if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0 \
                    or not math.isfinite(w):
                raise ValueError(f"the weight of {name} must be a number >= 0, got {w!r}")
            weights[name] = float(w)
        return MappingProxyType(weights)
    if kind == "paths":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected an array of absolute paths, got {_type_name(value)}")
        for v in value:
            if not v.startswith("/") or "\0" in v:
                raise ValueError(f"expected an absolute path, got {v!r}")
        return tuple(value)
    if kind == "tier_map":
        if not isinstance(value, dict):
            raise ValueError(f"expected a table of names to tiers, got {_type_name(value)}")
        for name, tier in value.items():
            if not isinstance(tier, str) or tier not in check.choices:
                raise ValueError(f"{name}: " + (_choice_message(tier, check.choices)
                                                if isinstance(tier, str) else
                                                f"expected a tier name, got {_type_name(tier)}"))
        return MappingProxyType(dict(value))
    if kind in ("units", "choices"):
        if not isinstance(value, list):
            raise ValueError(f"expected an array of strings, got {_type_name(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueError(f"item {i + 1} should be a string, got {_type_name(item)}")
            if kind == "units":
                check_unit_name(item)
            elif item not in check.choices:
                raise ValueError(f"item {i + 1}: " + _choice_message(item, check.choices))
            out.append(item)
        return tuple(out)
    raise AssertionError(f"unknown check kind {kind}")


def _choice_message(value: str, choices: tuple[str, ...]) -> str:
    hint = difflib.get_close_matches(value, choices, n=1)
    msg = f"{value!r} is not one of {', '.join(choices)}"
    return f"{msg}; did you mean {hint[0]!r}?" if hint else msg


def _build(cls: type, data: Any, path: KeyPath, problems: _Problems) -> Any:
    if not isinstance(data, dict):
        problems.add(path, f"expected a table, got {_type_name(data)}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = [n for n, f in fields.items() if "check" in f.metadata]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            where = f" in [{format_key(path)}]" if path else ""
            what = "section" if not path else "key"
            msg = f"unknown {what} {key!r}{where}"
            problems.add((*path, key), f"{msg}; did you mean {hint[0]!r}?" if hint else
                         f"{msg}; known {what}s: {', '.join(known)}")
            continue
        check: Check = fields[key].metadata["check"]
        sub = (*path, key)
        if check.kind == "section":
            assert check.cls is not None
            kwargs[key] = _build(check.cls, value, sub, problems)
        elif check.kind == "table_of":
            kwargs[key] = _build_table_of(check, value, sub, problems)
        elif check.kind == "array_of":
            kwargs[key] = _build_array_of(check, value, sub, problems)
        else:
            try:
                kwargs[key] = _convert_scalar(check, value)
            except ValueError as exc:
                problems.add(sub, str(exc))
    for name in known:
        check = fields[name].metadata["check"]
        if check.required and name not in data:
            problems.add(path, f"missing required key {name!r}")
    return cls(**kwargs)


def _build_table_of(check: Check, value: Any, path: KeyPath, problems: _Problems) -> Any:
    assert check.cls is not None
    if not isinstance(value, dict):
        problems.add(path, f"expected a table, got {_type_name(value)}")
        return MappingProxyType({})
    key_check = _TABLE_KEY_CHECKS.get(tuple(str(p) for p in path))
    out: dict[str, Any] = {}
    for name, sub in value.items():
        if key_check is not None:
            bad = key_check(name)
            if bad:
                problems.add((*path, name), bad)
                continue
        out[name] = _build(check.cls, sub, (*path, name), problems)
    return MappingProxyType(out)


def _build_array_of(check: Check, value: Any, path: KeyPath, problems: _Problems) -> Any:
    assert check.cls is not None
    if not isinstance(value, list):
        problems.add(path, f"expected an array of tables ([[{format_key(path)}]]), "
                     f"got {_type_name(value)}")
        return ()
    return tuple(_build(check.cls, item, (*path, i), problems) for i, item in enumerate(value))


# --------------------------------------------------------- cross checks ---

_MEMORY_ORDER = ("memory_min", "memory_low", "memory_high", "memory_max")


def _size_key(size: Size) -> tuple[str, float]:
    if size.is_infinity:
        return ("any", float("inf"))
    if size.bytes is not None:
        return ("bytes", float(size.bytes))
    assert size.percent is not None
    return ("percent", size.percent)


def _lowest(tiers: tuple[str, ...]) -> str:
    return max(tiers, key=TIER_NAMES.index)


def _cross_check(cfg: Config, sources: Mapping[str, str], problems: _Problems) -> None:
    def from_admin(path: KeyPath) -> bool:
        return sources.get(format_key(path)) == problems.file

    def blame(*paths: KeyPath) -> KeyPath:
        for p in paths:
            if from_admin(p):
                return p
        return paths[0]

    seen_units: dict[str, str] = {}
    for tier_name in TIER_NAMES:
        tier = cfg.tiers.get(tier_name)
        if tier is None:
            continue
        set_sizes = [(k, getattr(tier, k)) for k in _MEMORY_ORDER if getattr(tier, k) is not None]
        for i, (ka, a) in enumerate(set_sizes):
            for kb, b in set_sizes[i + 1:]:
                (ua, va), (ub, vb) = _size_key(a), _size_key(b)
                comparable = ua == ub or "any" in (ua, ub)
                if ka == "memory_high" and a.is_infinity:
                    continue  # no throttling point at all, whatever memory_max is
                pa, pb = ("tiers", tier_name, ka), ("tiers", tier_name, kb)
                if comparable and va > vb and not problems.has(pa, pb):
                    path = blame(pb, pa)
                    problems.add(path, f"{ka} ({a}) is above {kb} ({b}); systemd needs "
                                 "memory_min <= memory_low <= memory_high <= memory_max")
        for u in tier.units:
            norm = unit_name(u)
            other = seen_units.get(norm)
            if other is not None:
                problems.add(blame(("tiers", tier_name, "units"), ("tiers", other, "units")),
                             f"unit {norm} is listed in both tiers.{other} and tiers.{tier_name}; "
                             "a unit can be in one tier only")
            else:
                seen_units[norm] = tier_name
    gov = cfg.governor
    if gov.protect and set(gov.protect) >= set(TIER_NAMES):
        problems.add(("governor", "protect"), "protects every tier: the governor needs "
                     "at least one tier below the protected ones to tighten")
    elif gov.protect and TIER_NAMES.index(_lowest(gov.protect)) == len(TIER_NAMES) - 1:
        problems.add(("governor", "protect"), "protects background, the lowest tier: "
                     "nothing is below it to tighten; protect higher tiers only")
    th = cfg.thermal
    if th.critical_celsius <= th.throttle_celsius and not problems.has(
            ("thermal", "critical_celsius"), ("thermal", "throttle_celsius")):
        problems.add(blame(("thermal", "critical_celsius"), ("thermal", "throttle_celsius")),
                     f"critical_celsius ({th.critical_celsius:g}) must be above "
                     f"throttle_celsius ({th.throttle_celsius:g})")
    rm = cfg.resource_monitoring
    if rm.min_interval_seconds > rm.interval_seconds:
        problems.add(blame(("resource_monitoring", "min_interval_seconds"),
                           ("resource_monitoring", "interval_seconds")),
                     f"min_interval_seconds ({rm.min_interval_seconds}) is above "
                     f"interval_seconds ({rm.interval_seconds})")
    for i, rule in enumerate(cfg.rules):
        if not any(getattr(rule, k) is not None for k in Rule.MATCH_KEYS):
            problems.add(("rules", i), "a rule needs at least one of "
                         f"{', '.join(Rule.MATCH_KEYS)} to match on")
    _check_http(cfg, problems, blame)
    for name, svc in cfg.recovery.services.items():
        if svc.max_delay_seconds < svc.delay_seconds:
            problems.add(blame(("recovery", "services", name, "max_delay_seconds"),
                               ("recovery", "services", name, "delay_seconds")),
                         f"max_delay_seconds ({svc.max_delay_seconds:g}) is below "
                         f"delay_seconds ({svc.delay_seconds:g})")
    from taucg.config.output_checks import cross_check

    cross_check(cfg, problems.add, problems.has)


def _check_http(cfg: Config, problems: _Problems, blame: Callable[..., KeyPath]) -> None:
    """The HTTP server's address, its older name, and TLS off loopback."""
    d = cfg.daemon
    http, old = ("daemon", "http_address"), ("daemon", "metrics_address")
    if d.http_address and d.metrics_address and d.http_address != d.metrics_address:
        problems.add(blame(http, old), f"http_address ({d.http_address}) and "
                     f"metrics_address ({d.metrics_address}) differ; metrics_address is "
                     "the older name of http_address: keep only http_address")
        return
    address = d.http_address or d.metrics_address
    if not address or problems.has(http, old):
        return
    host, _port = parse_address(address)
    if not is_loopback(host) and not d.web_config_file and not d.insecure:
        key = "http_address" if d.http_address else "metrics_address"
        problems.add(("daemon", key),
                     f"{address} is not a loopback address, and plain HTTP there would "
                     "send metrics and the API unencrypted: set [daemon] web_config_file "
                     "to a web config with tls_server_config, or insecure = true to "
                     "serve plain HTTP anyway")


# ------------------------------------------------------------- loading ---


def merge_tables(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else (arrays included) replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_tables(out[k], v)
        else:
            out[k] = v
    return out


def _leaves(data: Mapping[str, Any], path: KeyPath = ()) -> Iterator[KeyPath]:
    for k, v in data.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*path, k))
        else:
            yield (*path, k)


def builtin_text() -> str:
    # Beside this module, as the wheel installs it (the C extension rules out
    # a zip import); importlib.resources would cost the daemon ~0.5 MiB of
    # imports (zipfile, its readers) to find the same file.
    return (Path(__file__).parent / "default.toml").read_text(encoding="utf-8")


def _parse(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        raise ConfigError([ConfigProblem(file, "", f"TOML syntax error: {msg}", line)]) from None


def _read(path: Path) -> str:
    """The file's text, refusing anything but a regular file of at most
    MAX_CONFIG_BYTES before reading: a FIFO would block the reader forever,
    and a huge file would take the daemon's memory and time."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once, so fstat
        # can say what it is instead of hanging in open().
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError([ConfigProblem(str(path), "", (
                    "is not a regular file (a FIFO, socket or device); point --config or "
                    "$TAUCG_CONFIG at a TOML file"))])
            if st.st_size > MAX_CONFIG_BYTES:
                raise ConfigError([ConfigProblem(str(path), "", (
                    f"is {st.st_size} bytes; a config may have at most {MAX_CONFIG_BYTES} "
                    "(the built-in one is about 7 KiB): is this the right file?"))])
            data = os.read(fd, MAX_CONFIG_BYTES + 1)
        finally:
            os.close(fd)
        return data.decode("utf-8")
    except FileNotFoundError:
        why = "no such file; check the path, or drop --config/$TAUCG_CONFIG to use the default"
    except PermissionError:
        why = "permission denied; run as a user that can read it, or fix its mode"
    except IsADirectoryError:
        why = "is a directory, not a TOML file"
    except UnicodeDecodeError as exc:
        why = f"is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8"
    except OSError as exc:
        why = exc.strerror or str(exc)
    raise ConfigError([ConfigProblem(str(path), "", why)])


def loads(text: str, file: str = "<string>") -> Config:
    """The built-in default overlaid with the TOML in ``text``."""
    defaults = _parse(builtin_text(), BUILTIN)
    admin = _parse(text, file)
    merged = merge_tables(defaults, admin)
    sources = {format_key(p): BUILTIN for p in _leaves(defaults)}
    sources.update({format_key(p): file for p in _leaves(admin)})
    problems = _Problems(file, key_lines(text))
    cfg: Config = _build(Config, merged, (), problems)
    # Keys that failed to convert kept their defaults; the cross checks skip
    # them so that every message is about something the admin wrote.
    _cross_check(cfg, sources, problems)
    if problems.items:
        raise ConfigError(sorted(problems.items, key=lambda p: p.line or 0))
    return dataclasses.replace(cfg, sources=MappingProxyType(sources), file=file)


def builtin() -> Config:
    return dataclasses.replace(loads("", BUILTIN), file=None)


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config, then $TAUCG_CONFIG, then /etc/taucg/taucg.toml if it exists."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    path = find_config_file(explicit)
    if path is None:
        return builtin()
    return loads(_read(path), str(path))


# --------------------------------------------------------------- output ---


def _plain(value: Any) -> Any:
    if isinstance(value, Size | CpuSet):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """TOML-ready plain data (unset keys left out); loads(dumps(to_dict(c))) == c."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if "check" not in f.metadata:
            continue
        value = getattr(obj, f.name)
        if value is None:
            continue
        out[f.name] = _plain(value)
    return out


def flatten(data: Mapping[str, Any], path: KeyPath = ()) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf; arrays are leaves."""
    for k, v in data.items():
        if isinstance(v, Mapping) and v:
            yield from flatten(v, (*path, k))
        else:
            yield format_key((*path, k)), v


def source_of(cfg: Config, key: str) -> str:
    """Where ``key``'s value came from, looking up through parent tables."""
    probe = key
    while probe:
        if probe in cfg.sources:
            return cfg.sources[probe]
        probe = probe.rpartition(".")[0]
    return BUILTIN
