"""A benchmark, not a pass/fail test: the daemon's resident memory with the
HTTP server off, on, and on with TLS and basic auth, measured in the same
run and printed as ratios (the server is imported only when configured)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.host.conftest import REPO, wait_until_serving
from tests.support.cli import taucg_argv
from tests.support.configs import daemon_config
from tests.support.tls import free_port, get, make_ca, make_cert, write_web_config
from tests.support.waiting import wait_for

pytestmark = pytest.mark.host


def _rss_kib(daemon: dict[str, Any], url: str | None = None, **get_kw: Any) -> int:
    root = Path(tempfile.mkdtemp(prefix="taucg-rss-"))
    config = daemon_config(root, daemon=daemon)
    proc = subprocess.Popen(taucg_argv("daemon", config=config), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(root / "taucg.sock", proc)
        from taucg.faces.socket_client import call

        wait_for(lambda: call(root / "taucg.sock", "status", timeout=20)["sweeps"] >= 5, 120,
                 "five sweeps")
        if url is not None:  # served once, so the server's code is loaded
            assert get(url, **get_kw).status == 200
        status = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1])
    finally:
        proc.terminate()  # our own child, by PID
        proc.wait(30)


def test_print_rss_with_http_off_and_on(tmp_path: Path) -> None:
    off = _rss_kib({})
    port = free_port()
    on = _rss_kib({"http_address": f"127.0.0.1:{port}"}, f"http://127.0.0.1:{port}/metrics")
    ca = make_ca(tmp_path, "ca")
    web = write_web_config(tmp_path / "web.yml", users={"u": "p"},
                           server=make_cert(ca, tmp_path, "srv", ["IP:127.0.0.1"]))
    port = free_port()
    tls = _rss_kib({"http_address": f"127.0.0.1:{port}", "web_config_file": web},
                   f"https://127.0.0.1:{port}/api/v1/tiers", ca=ca.cert, auth=("u", "p"))
    print(f"\ndaemon VmRSS after 5 sweeps: HTTP off {off} KiB; on {on} KiB "
          f"({on / off:.2f}x off); TLS + basic auth {tls} KiB ({tls / off:.2f}x off)")
    assert off > 0 and on > 0 and tls > 0
