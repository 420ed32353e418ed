"""The audit trail under two writers and a full disk: no record lost,
none doubled, no rotated file damaged."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taucg.actors.shared_log import rotated_files

WRITER = """
import sys
from taucg.actors.records import audit
from taucg.config.loading import loads
cfg = loads(sys.argv[1])
for i in range(int(sys.argv[3])):
    audit(cfg.logging, "test", f"{sys.argv[2]}-{i}", padding="x" * 60)
"""


def config(log: Path, size_mb: int = 1) -> str:
    return (f'[logging]\naudit_log_path = "{log}"\nperformance_log_path = "{log}.perf"\n'
            f"max_log_size_mb = {size_mb}\nrotated_files_kept = 1000\n")


def targets(log: Path) -> list[str]:
    out = []
    for p in [log, *rotated_files(log)]:
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        out += [json.loads(line)["target"] for line in data.decode().splitlines()]
    return out


def test_two_writers_lose_and_double_nothing(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    n = 20_000
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, config(log), name, str(n)])
             for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=600) == 0
    seen = Counter(targets(log))
    assert len(rotated_files(log)) >= 3, "expected rotations at 1 MiB"
    assert sum(seen.values()) == 2 * n, f"{2 * n - sum(seen.values())} records lost"
    assert max(seen.values()) == 1, "a record was written twice"
    assert set(seen) == {f"{w}-{i}" for w in "ab" for i in range(n)}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of our own (mounted in the test's directory, never on
    the host's own paths), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        from taucg.actors import records

        # The cached audit logger holds the file open; close it to unmount.
        for _settings, logger in records._side_logs.values():
            for h in list(logger.handlers):
                logger.removeHandler(h)
                h.close()
        records._side_logs.clear()
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_keeps_every_file_and_every_record(small_disk: Path) -> None:
    from taucg.actors import records
    from taucg.config.loading import loads

    log = small_disk / "audit.log"
    cfg = loads(config(log))
    filler = small_disk / "filler"
    i = 0

    def write(count: int) -> None:
        nonlocal i
        for _ in range(count):
            records.audit(cfg.logging, "test", f"r-{i}", padding="y" * 200)
            i += 1

    write(4000)  # a little over 1 MiB: the first rotation (compressed, small)
    assert rotated_files(log)
    before = {p: p.read_bytes() for p in rotated_files(log)}
    # Fill the disk to the last byte, then go on writing: rotations fail.
    fill(filler)
    write(3000)
    for p, data in before.items():  # nothing renamed, dropped or truncated
        assert p.read_bytes() == data
    # Space returns: the backlog is written, nothing was lost.
    os.unlink(filler)
    write(10)
    got = targets(log)
    assert len(got) == i and set(got) == {f"r-{k}" for k in range(i)}


def fill(path: Path) -> None:
    """Writes until the filesystem is full (ENOSPC)."""
    import errno

    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 65536)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return
