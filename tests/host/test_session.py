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


@pytest.mark.parametrize("content", [
    b"garbage{", b"[]", b"{}", b'{"units": 5}', b'{"time": 1, "units": {}}',
    b'{"time": "x", "units": {}, "blobs": []}',
    b'{"time": 1, "units": {"a.service": {"active_state": 1}}, "blobs": []}',
    b"\xff\xfe\x00bad utf-8", None])
def test_a_damaged_session_snapshot_is_named_not_a_traceback(tmp_path: Path,
                                                             content: bytes | None) -> None:
    from tests.support.cli import taucg
    from tests.support.configs import write_config

    state = tmp_path / "s"
    state.mkdir()
    snap = state / "session.json"
    if content is None:
        snap.mkdir()  # a directory where the file should be
    else:
        snap.write_bytes(content)
    cfg = write_config(tmp_path / "taucg.toml", crash_recovery={"session_state_path": state})
    with pytest.raises(session.RecoveryStateError, match=str(snap)):
        session.load_snapshot(loads(cfg.read_text()))
    r = taucg("recovery", "session", config=cfg, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert str(snap) in r.stderr and "Traceback" not in r.stderr
    assert "--session" not in r.stderr
