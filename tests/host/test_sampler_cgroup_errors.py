"""A cgroup read error names the directory and the file it was reading.

Temporary directories stand in for cgroups: the sweep opens whatever
cgroup file names it finds, and a directory named like one (cpu.stat)
opens fine but fails every read with EISDIR, a real read error rather
than an absent file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from taucg.readers.sampler import Sampler, SamplerError


def _fake_cgroup(path: Path, broken: str | None = None) -> Path:
    path.mkdir()
    (path / "memory.current").write_text("4096\n")
    if broken is not None:
        (path / broken).mkdir()
    return path


def test_read_error_names_the_cgroup_and_the_file(tmp_path: Path) -> None:
    good = _fake_cgroup(tmp_path / "good")
    bad = _fake_cgroup(tmp_path / "bad", broken="cpu.stat")
    sampler = Sampler()
    # The missing directory in between has no slot in the C set, so the C
    # index of `bad` differs from its place in the list.
    paths = [str(good), str(tmp_path / "missing"), str(bad)]
    with pytest.raises(SamplerError) as caught:
        sampler.cgroups(paths)
    assert caught.value.errno == errno.EISDIR
    assert str(caught.value) == (
        f"[Errno {errno.EISDIR}] reading {bad}/cpu.stat: {os.strerror(errno.EISDIR)}")
    sampler.close()


def test_the_first_error_is_the_one_reported(tmp_path: Path) -> None:
    first = _fake_cgroup(tmp_path / "first", broken="io.pressure")
    second = _fake_cgroup(tmp_path / "second", broken="cpu.stat")
    with Sampler() as sampler, pytest.raises(SamplerError, match=f"reading {first}/io.pressure"):
        sampler.cgroups([str(first), str(second)])


def test_fake_cgroup_without_errors_reads(tmp_path: Path) -> None:
    # The control: the same stand-in without the broken file is a sample.
    good = _fake_cgroup(tmp_path / "good")
    with Sampler() as sampler:
        [sample] = sampler.cgroups([str(good)])
    assert sample is not None
    assert sample.memory_current == 4096
    assert sample.cpu is None  # absent, not zero
