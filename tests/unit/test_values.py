from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taucg.config.values import (
    CpuSet,
    Size,
    format_bytes,
    format_cpus,
    parse_cpus,
    parse_size,
    unit_name,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("512M", Size(bytes=512 << 20)),
    ("1G", Size(bytes=1 << 30)),
    ("4k", Size(bytes=4096)),
    (" 2 G ", Size(bytes=2 << 30)),
    (1000, Size(bytes=1000)),
    ("infinity", Size()),
    ("max", Size()),
    ("40%", Size(percent=40.0)),
    ("12.5%", Size(percent=12.5)),
])
def test_parse_size(text: object, expected: Size) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "1.5G", "-1", "0%", "101%", True, 1.5, "5 X"])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"size|percentage|boolean"):
        parse_size(bad)


def test_size_resolve_rounds_percent_to_pages() -> None:
    assert Size(percent=50).resolve(10_000_000) == 4_997_120
    assert Size(bytes=7).resolve(1) == 7
    assert Size().resolve(1) is None


@given(st.integers(0, 1 << 62))
def test_format_bytes_round_trips(n: int) -> None:
    assert parse_size(format_bytes(n)).bytes == n


@pytest.mark.parametrize(("text", "cpus"), [
    ("0-3,6", {0, 1, 2, 3, 6}), ("5", {5}), ("0,2-3", {0, 2, 3}), ("1 3", {1, 3}),
])
def test_parse_cpus(text: str, cpus: set[int]) -> None:
    assert parse_cpus(text) == CpuSet(frozenset(cpus))


def test_parse_cpus_empty_allowed_only_when_asked() -> None:
    assert parse_cpus("\n", allow_empty=True) == CpuSet(frozenset())
    with pytest.raises(ValueError, match="at least one CPU"):
        parse_cpus("")


@given(st.sets(st.integers(0, 200), max_size=40))
def test_format_cpus_round_trips(cpus: set[int]) -> None:
    text = format_cpus(cpus)
    assert parse_cpus(text, allow_empty=True).cpus == cpus


def test_unit_name() -> None:
    assert unit_name("tau-session") == "tau-session.service"
    assert unit_name("tau.slice") == "tau.slice"
