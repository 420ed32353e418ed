"""The dashboard in real headless Chromium, under real systemd and real
tier slices: taucg.service serves it, a process in the low tier allocates,
and the page shows the tier's memory rise without being reloaded; then a
screenshot. Chromium is the host's (Debian's chromium and chromium-driver),
which the guest sees because it shares the host's root."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taucg.faces.socket_client import call
from tests.support.blocking_systemd import BlockingSystemd
from tests.support.browser import chromium, screenshot

from .helpers import Units, installed_daemon, wait_for

ADDRESS = "127.0.0.1:9466"
SOCKET = Path("/run/taucg/taucg.sock")
CONFIG_TEXT = f"""
[resource_monitoring]
interval_seconds = 1

[daemon]
http_address = "{ADDRESS}"

[tiers.low]
memory_high = "1G"
memory_max = "1536M"
"""
ALLOCATE = 200 << 20


def ask(method: str, **params: Any) -> Any:
    return call(SOCKET, method, params, timeout=120)


@pytest.fixture
def service(systemd: BlockingSystemd) -> Iterator[None]:
    with installed_daemon(systemd, CONFIG_TEXT):
        yield


@pytest.fixture
def fifo() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="taucg-dash-"))
    path = d / "go"
    os.mkfifo(path, 0o600)
    yield path
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()


def low_bytes(js: Any) -> int | None:
    text = js("const m = document.querySelector('tr[data-tier=low] .memory');"
              "return m ? m.dataset.bytes : null;")
    return int(text) if text else None


def test_dashboard_shows_a_tiers_memory_rise_live(service: None, systemd: BlockingSystemd,
                                                  units: Units, fifo: Path,
                                                  tmp_path: Path) -> None:
    ask("apply")
    svc = units.name("dashhog")
    # Waits on the FIFO, then holds ALLOCATE bytes of touched memory.
    code = (f"import signal\nopen({str(fifo)!r}).read()\n"
            f"x = b'x' * {ALLOCATE}\nwhile True:\n    signal.pause()")
    systemd.start_transient(svc, {
        "Description": "taucg test: allocates in the low tier for the dashboard",
        "Slice": "tau-low.slice",
        "ExecStart": [(sys.executable, [sys.executable, "-S", "-c", code], False)],
    })
    with chromium() as driver:
        driver.get(f"http://{ADDRESS}/")
        js = driver.execute_script
        js("window.taucgLoaded = 'once';")  # gone if the page reloads
        wait_for(lambda: svc in " ".join(
            u for t in ask("tiers")["tiers"] if t["tier"] == "low" for u in t["units"]),
            600, f"{svc} among the low tier's units")
        before = wait_for(lambda: low_bytes(js), 600, "the low tier's memory on the page")
        shown = js("return document.querySelector('tr[data-tier=low] .meter-text')"
                   ".textContent")
        assert "high 1.0 GiB" in shown and "max 1.5 GiB" in shown, shown

        with open(fifo, "w") as go:
            go.write("go")
        risen = wait_for(lambda: (b := low_bytes(js)) is not None
                         and b >= before + ALLOCATE * 3 // 4 and b, 600,
                         "the low tier's memory to rise on the page")
        assert js("return window.taucgLoaded") == "once", "the page was reloaded"
        fill = js("return document.querySelector('tr[data-tier=low] .meter .fill')"
                  ".style.width")
        assert float(fill.rstrip("%")) > 0
        shot = screenshot(driver, tmp_path / "dashboard.png")
        print(f"\nlow tier on the page: {before} -> {risen} bytes; screenshot {shot} "
              f"({shot.stat().st_size} bytes)")
