"""Session state files on this machine (the D-Bus parts run in the VM)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from taucg.actors import recovery_state as session
from taucg.config.loading import loads


def test_blob_saved_atomically_and_handed_back(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("hand-back writes under /run/taucg, which needs root")
    cfg = loads(f'[crash_recovery]\nsession_state_path = "{tmp_path / "s"}"\n')
    src = tmp_path / "in.bin"
    src.write_bytes(b"\x00state\xff")
    unit = f"taucg-test-{os.getpid()}.service"
    dest = session.save_blob(cfg, unit.removesuffix(".service"), src)
    assert dest == tmp_path / "s" / "blobs" / unit
    assert dest.read_bytes() == b"\x00state\xff"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temp left
    handed = session.hand_back(cfg, unit)
    try:
        assert handed == session.HANDBACK_DIR / unit
        assert handed.read_bytes() == b"\x00state\xff"
        assert stat.S_IMODE(handed.stat().st_mode) == 0o600
    finally:
        if handed:
            handed.unlink()
    assert session.hand_back(cfg, "no-blob.service") is None
    assert session.load_snapshot(cfg) is None


def test_session_units_are_critical_plus_placed_services() -> None:
    cfg = loads('[crash_recovery]\ncritical_processes = ["a", "b.service"]\n'
                '[tiers.high]\nunits = ["c"]\n')
    assert session.session_units(cfg) == ["a.service", "b.service", "c.service"]
