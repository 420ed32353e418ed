"""The release path, end to end: the sdist carries what a wheel build needs,
a wheel built from it in a clean venv is the one abi3 wheel, and the
installed command runs and samples this machine.

Slow (a minute or two: two venvs, a C build, dependencies from PyPI); it
needs only python -m venv and pip reaching PyPI. `build` comes from the
test extra, or is installed into a tools venv of its own when the running
interpreter lacks it, so the test runs rather than skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import taucg

ROOT = Path(__file__).resolve().parents[2]
PIP = ("-m", "pip", "--disable-pip-version-check", "-q")
LONG = 900  # seconds: a cold pip cache compiles systemd-python and cffi


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([os.fspath(a) for a in argv], capture_output=True, text=True,
                       timeout=LONG, check=False, cwd=cwd, env=env)
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}:\n" \
                              f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def build_python(tmp: Path) -> str | Path:
    probe = subprocess.run([sys.executable, "-c", "import build"], capture_output=True,
                           check=False)
    if probe.returncode == 0:
        return sys.executable
    python = venv(tmp / "tools")
    run(python, *PIP, "install", "build>=1.0")
    return python


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sdist")
    run(build_python(tmp), "-m", "build", "--sdist", "--outdir", tmp / "dist", ROOT)
    (found,) = (tmp / "dist").glob("taucg-*.tar.gz")
    return found


def test_sdist_carries_the_build_and_the_tests(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tracked = run("git", "-C", ROOT, "ls-files", "csrc", "units", "tests", "contrib").split()
    missing = sorted(set(tracked) - names)
    assert not missing, f"the sdist leaves out {missing}"
    assert {"LICENSE", "setup.py", "pyproject.toml", "README.md"} <= names
    assert not [n for n in names if n.endswith((".so", ".o"))], "built objects in the sdist"


def test_wheel_from_the_sdist_installs_and_samples(sdist: Path, tmp_path: Path) -> None:
    python = venv(tmp_path / "clean")
    run(python, *PIP, "wheel", "--no-deps", "-w", tmp_path / "wheels", sdist)
    (wheel,) = (tmp_path / "wheels").glob("taucg-*.whl")
    # One wheel for every CPython >= 3.11: the extension is built on the stable ABI.
    assert "-cp311-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        inside = set(z.namelist())
    assert any(n.startswith("taucg/readers/_sampler.abi3") for n in inside), sorted(inside)
    assert "taucg/faces/units.py" in inside and "taucg/config/default.toml" in inside
    assert any(n.endswith("licenses/LICENSE") for n in inside)

    run(python, *PIP, "install", wheel)
    bin_dir = python.parent
    # Run from elsewhere, so nothing of the checkout can be imported instead.
    where = run(python, "-c", "import taucg; print(taucg.__file__)", cwd=tmp_path)
    assert where.strip().startswith(str(tmp_path / "clean")), where
    version = run(bin_dir / "taucg", "--version", cwd=tmp_path)
    assert version.strip() == f"taucg, version {taucg.__version__}"

    out = json.loads(run(bin_dir / "taucg", "resources", "--format", "json", cwd=tmp_path))
    assert out["schema"] == "taucg.resources/1"
    assert 0.0 <= out["cpu"]["usage_percent"] <= 100.0
    assert out["memory"]["total_bytes"] > 0
    # The man pages and units come from the installed package, not the checkout.
    page = run(bin_dir / "taucg", "man", "--section", "1", cwd=tmp_path)
    assert page.startswith(".TH TAUCG 1")
    units = run(bin_dir / "taucg", "install", "--print-units", cwd=tmp_path)
    assert f"ExecStart={bin_dir / 'taucg'} daemon" in units
