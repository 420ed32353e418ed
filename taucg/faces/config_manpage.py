"""taucg.toml(5), written from the config schema at the time it is asked
for, so it cannot drift from the code: every section and key with its
type (from the key's check), its built-in default (from default.toml,
which a test holds equal to the schema) and its help (the key's doc, or
the comment above it in default.toml)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from taucg import __version__
from taucg.config.loading import builtin, builtin_text, to_dict
from taucg.config.schema import TIER_NAMES, Check, Config
from taucg.faces.roff import Page, bold, escape, italic

_KINDS = {
    "bool": "boolean", "int": "integer", "float": "number", "str": "string",
    "path": "absolute path", "optpath": 'absolute path or ""',
    "regex": "regular expression", "unitname": "unit name",
    "address": "HOST:PORT", "size": "size (bytes, K/M/G/T suffix, or percent of RAM)",
    "bytes": "size (bytes, K/M/G/T suffix)", "weight": 'integer or "idle"',
    "cpus": 'CPU list ("0-3,6")', "tasks": 'integer or "infinity"',
    "user": "user name or uid", "weights": "table of check = weight",
    "units": "list of unit names", "choice": "one of", "choices": "list of",
    "url": "http:// or https:// URL", "metricname": "name ([a-zA-Z][a-zA-Z0-9_]*)",
}


def describe(check: Check) -> str:
    """A key's type in words: kind, range, choices."""
    text = _KINDS.get(check.kind, check.kind)
    if check.choices:
        text += ": " + ", ".join(check.choices)
    if check.lo is not None and check.hi is not None:
        text += f", {check.lo:g} to {check.hi:g}"
    if check.required:
        text += " (required)"
    return text


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


_HEADER = re.compile(r"^\s*\[\[?([\w.]+)\]\]?")
_KEY = re.compile(r"^\s*(\w+)\s*=")


def default_comments(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """From default.toml: dotted key -> the comment block right above it,
    and section -> the comment block right above or right below its header.
    A blank line ends a block (the file's own heading describes no key)."""
    keys: dict[str, str] = {}
    sections: dict[str, str] = {}
    section, block, after_header = "", [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        header, key = _HEADER.match(line), _KEY.match(line)
        if header:
            section = header.group(1)
            if block:
                sections[section] = " ".join(block)
        elif key and block:
            if after_header:
                sections[section] = " ".join(block)
            else:
                keys[f"{section}.{key.group(1)}"] = " ".join(block)
        after_header = bool(header)
        block = []
    return keys, sections


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    name: str
    check: Check
    doc: str


@dataclasses.dataclass(frozen=True, slots=True)
class Section:
    """One TOML table of the reference; ``pattern`` names it as an admin
    writes it ("tiers.NAME", "[[rules]]")."""

    name: str
    pattern: str
    cls: type
    keys: tuple[Key, ...]


def _keys(cls: type) -> tuple[Key, ...]:
    return tuple(Key(f.name, f.metadata["check"], f.metadata.get("doc", ""))
                 for f in dataclasses.fields(cls) if "check" in f.metadata)


def sections() -> Iterator[Section]:
    """Every section of the schema, nested tables after their parent."""
    for f in dataclasses.fields(Config):
        check = f.metadata.get("check")
        if check is None or check.cls is None:
            continue
        if check.kind == "section":
            yield Section(f.name, f"[{f.name}]", check.cls, _keys(check.cls))
            for sub in dataclasses.fields(check.cls):
                inner = sub.metadata.get("check")
                if inner is not None and inner.kind == "table_of" and inner.cls is not None:
                    yield Section(f"{f.name}.{sub.name}", f"[{f.name}.{sub.name}.UNIT]",
                                  inner.cls, _keys(inner.cls))
                elif inner is not None and inner.kind == "array_of" and inner.cls is not None:
                    yield Section(f"{f.name}.{sub.name}", f"[[{f.name}.{sub.name}]]",
                                  inner.cls, _keys(inner.cls))
        elif check.kind == "table_of":
            yield Section(f.name, f"[{f.name}.TIER]", check.cls, _keys(check.cls))
        elif check.kind == "array_of":
            yield Section(f.name, f"[[{f.name}]]", check.cls, _keys(check.cls))


def _default(defaults: dict[str, Any], section: Section, key: Key) -> str:
    if section.name == "tiers":
        per_tier = [f"{tier} {toml_value(defaults['tiers'][tier][key.name])}"
                    for tier in TIER_NAMES if key.name in defaults["tiers"].get(tier, {})]
        return ("built-in: " + "; ".join(per_tier)) if per_tier else \
            "unset (systemd's default)"
    node: Any = defaults
    for part in section.name.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict) and key.name in node:
        return f"default: {toml_value(node[key.name])}"
    cls_default = next(f.default for f in dataclasses.fields(section.cls)
                       if f.name == key.name)
    if cls_default is None or cls_default is dataclasses.MISSING:
        return "unset by default"
    return f"default: {toml_value(cls_default)}"


def _own_doc(cls: type) -> str:
    """The class's docstring, not the signature dataclasses make up without one."""
    doc = cls.__doc__ or ""
    return "" if doc.startswith(f"{cls.__name__}(") else _plain(doc)


def _plain(text: str) -> str:
    """Help as an admin reads it: without the comments' "Our addition:" tags."""
    return re.sub(r"^Our additions?:\s*", "", " ".join(text.split()))


def config_page() -> str:
    defaults = to_dict(builtin())
    key_help, section_help = default_comments(builtin_text())
    page = Page()
    page.title("taucg.toml", 5, f"taucg {__version__}", "taucg manual")
    page.section("name")
    page.raw("taucg.toml \\- taucg configuration file")
    page.section("synopsis")
    page.raw(bold("/etc/taucg/taucg.toml"))
    page.section("description")
    page.para("taucg reads its built-in configuration first; the admin file "
              "(/etc/taucg/taucg.toml, or $TAUCG_CONFIG, or --config) overrides only the "
              "keys it sets. A file with a problem is refused as a whole, every problem "
              "named with its file and line. 'taucg config' shows the effective value of "
              "every key and where it came from; 'taucg config check FILE' validates a file.")
    page.para("This page is generated from the schema taucg validates with; it lists every "
              "section and key, its type, its built-in default and what it does.")
    for sec in sections():
        page.section(sec.pattern, upper=False)
        if sec.name == "tiers":
            page.para("TIER is one of " + ", ".join(TIER_NAMES) + ". Each tier is the "
                      "systemd slice tau-TIER.slice; an unset key leaves systemd's default.")
        about = section_help.get(sec.name) or _own_doc(sec.cls)
        if about:
            page.para(about)
        for key in sec.keys:
            dotted = f"{sec.name}.{key.name}"
            help_text = _plain(key.doc or key_help.get(dotted) or section_help.get(dotted, ""))
            page.item(f"{bold(key.name)} ({italic(describe(key.check))})",
                      f"{_default(defaults, sec, key)}. {help_text}".strip())
    page.section("files")
    page.item(bold("/etc/taucg/taucg.toml"), "the admin configuration")
    page.section("see also")
    page.raw(f"{bold('taucg')}(1), {bold('systemd.resource-control')}(5), "
             f"{bold('systemd.slice')}(5)")
    return page.text()


def all_keys() -> list[str]:
    """Every dotted key the page documents (for the tests)."""
    return [f"{sec.name}.{key.name}" for sec in sections() for key in sec.keys]


__all__ = ["all_keys", "config_page", "describe", "escape"]
