"""ProcessSample records are laid out from the cdef by field name: a
reordered struct tau_proc must still parse right, and a struct that does
not pair up with the record must fail at layout time, never mislabel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cffi
import pytest
from taucg.readers._sampler import ffi as built_ffi

from taucg.readers.sampler import (
    _PROC_LAYOUT,
    PROC_FIELDS,
    LayoutError,
    record_layout,
    unpack_records,
)
from taucg.readers.samples import ProcessSample

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "sampler.h"
COMM_LEN = re.search(r"#define TAU_COMM_LEN (\d+)", HEADER.read_text())


def _struct_text() -> str:
    """struct tau_proc exactly as sampler.h declares it, comments dropped."""
    m = re.search(r"struct tau_proc \{.*?\};", HEADER.read_text(), re.S)
    assert m and COMM_LEN
    text = re.sub(r"/\*.*?\*/", "", m.group(0), flags=re.S)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return text.replace("TAU_COMM_LEN", COMM_LEN.group(1))


def _cdef_only(text: str) -> Any:
    # Plain structs need no compiler: typeof, offsetof and new() work on the
    # cdef alone, with the platform's alignment rules.
    ffi = cffi.FFI()
    ffi.cdef(text)
    return ffi


def _change(text: str, changes: dict[str, str]) -> str:
    """Replaces every key by its value at once, so two declarations can
    trade places."""
    for old in changes:
        assert text.count(old) == 1, f"sampler.h no longer has {old!r}: update this test"
    pattern = "|".join(re.escape(old) for old in changes)
    return re.sub(pattern, lambda m: changes[m.group(0)], text)


def _fill(ffi: Any, n: int) -> Any:
    """n structs whose every field holds a value unique to (row, field)."""
    rows = ffi.new("struct tau_proc[]", n)
    for row in range(n):
        for k, (name, field) in enumerate(ffi.typeof("struct tau_proc").fields):
            value = 1000 * (row + 1) + k
            if field.type.kind == "array":
                setattr(rows[row], name, f"c{value}".encode())
            elif field.type.cname == "char":
                setattr(rows[row], name, bytes([65 + row + k]))
            elif field.type.cname in ("double", "float"):
                setattr(rows[row], name, value + 0.5)
            else:
                setattr(rows[row], name, value)
    return rows


def _parse(ffi: Any, rows: Any, n: int) -> list[ProcessSample]:
    layout = record_layout(ffi, "struct tau_proc", PROC_FIELDS, ProcessSample._fields)
    buf = ffi.buffer(rows, n * ffi.sizeof("struct tau_proc"))
    return unpack_records(layout, buf, ProcessSample._make)


def _expected(ffi: Any, row: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, field in ffi.typeof("struct tau_proc").fields:
        value = getattr(row, name)
        if field.type.kind == "array":
            value = bytes(ffi.buffer(value))  # the record keeps the NUL padding
        out[PROC_FIELDS[name]] = value
    return out


def _assert_names_hold_their_values(text: str) -> None:
    ffi = _cdef_only(text)
    rows = _fill(ffi, 3)
    records = _parse(ffi, rows, 3)
    assert len(records) == 3
    for row, rec in enumerate(records):
        assert rec._asdict() == _expected(ffi, rows[row])


def test_header_layout_is_what_the_extension_was_built_with() -> None:
    text = _struct_text()
    assert _cdef_only(text).sizeof("struct tau_proc") == built_ffi.sizeof("struct tau_proc")
    assert _PROC_LAYOUT.unpacker.size == built_ffi.sizeof("struct tau_proc")
    # The struct lists its fields in the record's order: no per-record reorder.
    assert _PROC_LAYOUT.reorder is None
    _assert_names_hold_their_values(text)


def test_built_extension_records_by_name() -> None:
    rows = _fill(built_ffi, 2)
    records = _parse(built_ffi, rows, 2)
    for row, rec in enumerate(records):
        assert rec._asdict() == _expected(built_ffi, rows[row])
    assert records[0].comm == "c1012"
    assert records[1].pid == 2000 and records[1].ppid == 2001


@pytest.mark.parametrize("changes", [
    # Same type and size: a size check cannot see these.
    {"int32_t pid, ppid, pgrp, session;": "int32_t ppid, pid, pgrp, session;"},
    {"double utime, stime;": "double stime, utime;"},
    {"uint64_t minflt, majflt;": "uint64_t majflt, minflt;"},
    # Same size, different types: seconds and bytes change places.
    {"double utime, stime;": "uint64_t vsize;\n    double stime;",
     "uint64_t vsize;": "double utime;"},
    # A move that changes the padding (after comm, and at the end).
    {"uint32_t rt_priority, policy, flags;": "",
     "uint64_t minflt, majflt;": "uint64_t minflt, majflt;\n"
                                 "    uint32_t rt_priority, policy, flags;"},
], ids=["pid-ppid", "utime-stime", "minflt-majflt", "utime-vsize", "move-across-padding"])
def test_reordered_fields_still_parse_by_name(changes: dict[str, str]) -> None:
    text = _change(_struct_text(), changes)
    layout = record_layout(_cdef_only(text), "struct tau_proc", PROC_FIELDS,
                           ProcessSample._fields)
    assert layout.reorder is not None
    _assert_names_hold_their_values(text)


@pytest.mark.parametrize(("changes", "says"), [
    ({"int32_t pid, ppid,": "int32_t pid, parent,"}, "tau_proc.parent has no record field"),
    ({"uint64_t minflt, majflt;": "uint64_t minflt, majflt, cminflt;"},
     "tau_proc.cminflt has no record field"),
    ({"uint64_t minflt, majflt;": "uint64_t minflt;"}, "filled by no C field ['major_faults']"),
    ({"uint64_t rss;": "uint64_t rss[2];"}, "no struct code for C type uint64_t[2]"),
], ids=["renamed", "added", "dropped", "array"])
def test_a_struct_that_does_not_pair_up_fails_loudly(changes: dict[str, str], says: str) -> None:
    text = _change(_struct_text(), changes)
    with pytest.raises(LayoutError, match=re.escape(says)):
        record_layout(_cdef_only(text), "struct tau_proc", PROC_FIELDS, ProcessSample._fields)


@pytest.mark.parametrize(("remap", "says"), [
    ({"ppid": "pid"}, "mapped twice ['pid'], not in the record [], filled by no C field ['ppid']"),
    ({"ppid": "parent"}, "not in the record ['parent'], filled by no C field ['ppid']"),
])
def test_a_field_map_that_does_not_pair_up_fails_loudly(remap: dict[str, str],
                                                        says: str) -> None:
    with pytest.raises(LayoutError, match=re.escape(says)):
        record_layout(built_ffi, "struct tau_proc", {**PROC_FIELDS, **remap},
                      ProcessSample._fields)
