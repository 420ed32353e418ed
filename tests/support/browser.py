"""Headless Chromium (Debian's chromium and chromium-driver, from
scripts/setup) driven by Selenium, for the dashboard tests. The driver's
path is given, so selenium-manager never looks for one on the network."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextlib.contextmanager
def chromium(start_timeout: float = 600) -> Iterator[Any]:
    """Chromium started here, then attached to by chromedriver: chromedriver
    gives a browser it starts itself 60 s to come up, and in the emulated
    VM Chromium takes minutes (2.5 to dump one page was measured), so the
    browser gets start_timeout to answer on its DevTools port."""
    import json
    import os
    import subprocess
    import urllib.request

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.support.tls import free_port
    from tests.support.waiting import wait_for

    for p, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not p.exists():
            pytest.fail(f"{p} is missing: scripts/setup installs Debian's {pkg}")
    profile = Path(tempfile.mkdtemp(prefix="taucg-chromium-"))
    port = free_port()
    argv = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1400,1100", f"--user-data-dir={profile}",
            "--no-first-run", "--disable-extensions", "--disable-background-networking",
            "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}",
            "about:blank"]
    log = open(profile.parent / f"{profile.name}.log", "wb")  # noqa: SIM115
    browser = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})

    def answers() -> bool:
        assert browser.poll() is None, f"chromium exited {browser.returncode}; see {log.name}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=10) as r:
                return bool(json.load(r).get("Browser"))
        except OSError:
            return False

    driver = None
    try:
        wait_for(answers, start_timeout, "chromium's DevTools port")
        options = webdriver.ChromeOptions()
        options.debugger_address = f"127.0.0.1:{port}"
        driver = webdriver.Chrome(options=options,
                                  service=Service(executable_path=str(CHROMEDRIVER)))
        driver.set_page_load_timeout(start_timeout)
        driver.set_script_timeout(start_timeout)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        browser.terminate()  # our own child, by PID
        try:
            browser.wait(60)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(60)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, path: Path) -> Path:
    """A PNG of the page, checked to be one."""
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, (path, len(data))
    return path
