"""The REST API against its own OpenAPI document, live: schemathesis reads
/api/v1/openapi.json from a real daemon and sends every operation valid
and invalid parameters (its coverage and fuzzing phases, positive and
negative generation), checking each answer with all its checks: no server
error, documented status codes, content types, headers and response
schemas, invalid data rejected, valid data accepted, unsupported methods
refused with Allow.

It runs schemathesis's own command (`st run`): its pytest plugin cannot
load a schema from a fixture under pytest 9 (it reads the removed
Node._nodeid), and the command is how schemathesis is meant to be run
against a live server anyway. Its JSON report gives the counts and its
HAR report every request, so the test also checks that each operation
answered 200 and that each one with parameters had bad ones rejected."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.tls import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.host


def _st() -> str:
    st = Path(sys.executable).parent / "st"
    if st.exists():
        return str(st)
    found = shutil.which("st")
    if found is None:
        pytest.fail("schemathesis's st is missing: pip install -e '.[test]' (scripts/setup)")
    return found


# A flight record exists only once a watched unit failed, which takes
# systemd: here the route can only answer 404 (tests/vm/test_flight_recorder_vm.py
# reads a real one through the same API method).
NEEDS_A_CRASH = {"/api/v1/recovery/flight"}


@pytest.mark.timeout(1800)  # a few minutes here, more on a loaded machine
def test_rest_api_conforms_to_its_openapi_document(start_daemon: Any, tmp_path: Path) -> None:
    port = free_port()
    d = start_daemon(daemon={"http_address": f"127.0.0.1:{port}"})
    wait_for(lambda: d.call("status")["sweeps"] >= 2, 60, "two sweeps")
    reports = tmp_path / "reports"
    argv = [_st(), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
            "--checks", "all", "--mode", "all", "--phases", "examples,coverage,fuzzing",
            "--max-examples", "100", "--generation-database", "none", "--no-color",
            "--request-timeout", "30", "--output-truncate", "false",
            "--report", "json,har", "--report-json-path", str(reports / "run.json"),
            "--report-har-path", str(reports / "requests.har")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False,
                       cwd=tmp_path)
    summary = r.stdout[r.stdout.find("SUMMARY"):] if "SUMMARY" in r.stdout else r.stdout
    print(summary)
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-5000:]
    assert d.proc.poll() is None, "the daemon died under schemathesis"

    report = json.loads((reports / "run.json").read_text())
    spec = json.loads(resources.files("taucg.faces.http").joinpath("openapi.json").read_text())
    assert report["operations"]["tested"] == len(spec["paths"])
    assert report["failures"] == [] and report["errors"] == []
    assert report["test_cases"]["generated"] > 10 * len(spec["paths"])

    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    others: collections.Counter[tuple[str, int]] = collections.Counter()
    har = json.loads((reports / "requests.har").read_text())
    for entry in har["log"]["entries"]:
        req, status = entry["request"], entry["response"]["status"]
        key = (urlsplit(req["url"]).path, status)
        (statuses if req["method"] == "GET" else others)[key] += 1
    print(f"schemathesis: {report['test_cases']['generated']} test cases, "
          f"{sum(statuses.values())} requests")
    for path, item in spec["paths"].items():
        mine = {s: n for (p, s), n in statuses.items() if p == path}
        print(f"  GET {path}: " + ", ".join(f"{s}: {n}" for s, n in sorted(mine.items())))
        if path in NEEDS_A_CRASH:
            assert mine.get(404), f"GET {path} never answered 404 (no record yet)"
        else:
            assert mine.get(200), f"GET {path} never answered 200"
        assert not any(s >= 500 for s in mine), f"GET {path} had server errors: {mine}"
        if item["get"]["parameters"]:
            assert mine.get(400), f"GET {path} never had a bad parameter rejected"
    print(f"  other methods: {dict(collections.Counter(s for (_p, s) in others.elements()))}")
    assert others and all(s == 405 for _p, s in others), others
