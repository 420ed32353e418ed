"""Without systemd-python (no wheel exists; a pip install without the
build dependencies leaves none), the daemon says so and how to fix it,
instead of a traceback or a start systemd times out waiting for."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import taucg


def test_daemon_names_the_missing_module_and_the_fix(tmp_path: Path) -> None:
    # A systemd package whose modules fail as they do without libsystemd.
    fake = tmp_path / "fake" / "systemd"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    for name in ("daemon", "journal"):
        (fake / f"{name}.py").write_text(
            "raise ImportError('libsystemd.so.0: cannot open shared object file')\n")
    r = taucg("daemon", check=False, timeout=120,
              env={"PYTHONPATH": str(tmp_path / "fake"), "NOTIFY_SOCKET": str(tmp_path / "n")})
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "systemd-python is needed for telling systemd the daemon is ready" in r.stderr
    assert "libsystemd.so.0" in r.stderr and "libsystemd-dev" in r.stderr
    assert "Traceback" not in r.stderr
