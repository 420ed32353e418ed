"""The cdef is derived from csrc/sampler.h; check the derivation keeps the
whole C surface and that the built module exports all of it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from taucg.readers._sampler import lib

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _functions(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:struct\s+)?\w+\s*\*?\s*(tau_\w+)\s*\(", text, re.M))


def _defines(text: str) -> set[str]:
    return set(re.findall(r"^#define\s+(TAU_\w+)", text, re.M))


def test_cdef_is_the_header_and_the_module_has_it_all() -> None:
    spec = importlib.util.spec_from_file_location("build_sampler", CSRC / "build_sampler.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    header = (CSRC / "sampler.h").read_text()
    functions, defines = _functions(header), _defines(header)
    assert len(functions) >= 20
    assert _functions(mod.CDEF) == functions
    assert _defines(mod.CDEF) == defines
    for name in functions | defines:
        assert hasattr(lib, name), f"taucg.readers._sampler lacks {name}: rebuild (scripts/setup)"
    assert "#define TAU_NAME_LEN 32" in mod.CDEF  # array sizes keep their values
    assert "#define TAU_UNLIMITED ..." in mod.CDEF  # the compiler fills the rest
