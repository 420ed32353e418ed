"""csrc/build_sampler.py's cdef must declare exactly the functions and
constants that csrc/sampler.h exports."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _functions(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:struct\s+)?\w+\s*\*?\s*(tau_\w+)\s*\(", text, re.M))


def _defines(text: str) -> set[str]:
    return set(re.findall(r"^#define\s+(TAU_\w+)", text, re.M))


def test_cdef_matches_header() -> None:
    spec = importlib.util.spec_from_file_location("build_sampler", CSRC / "build_sampler.py")
    assert spec
    assert spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    header = (CSRC / "sampler.h").read_text()
    assert _functions(mod.CDEF) == _functions(header)
    assert _defines(mod.CDEF) == _defines(header) - {"TAUCG_SAMPLER_H"}
    assert len(_functions(header)) >= 7
