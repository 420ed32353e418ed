"""The cdef is derived from csrc/sampler.h; check the derivation keeps the
whole C surface and that the built module exports all of it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from taucg.readers._sampler import lib

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _functions(text: str) -> set[str]:
    return set(re.findall(r"^\s*(?:(?:const|struct|unsigned)\s+)*\w+\s*\*?\s*(tau_\w+)\s*\(",
                          text, re.M))


def _defines(text: str) -> set[str]:
    return set(re.findall(r"^#define\s+(TAU_\w+)", text, re.M))


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_sampler", CSRC / "build_sampler.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cdef_is_the_header_and_the_module_has_it_all() -> None:
    mod = _builder()
    header = (CSRC / "sampler.h").read_text()
    functions, defines = _functions(header), _defines(header)
    assert len(functions) >= 20
    assert _functions(mod.CDEF) == functions
    assert _defines(mod.CDEF) == defines
    for name in functions | defines:
        assert hasattr(lib, name), f"taucg.readers._sampler lacks {name}: rebuild (scripts/setup)"
    assert "#define TAU_NAME_LEN 32" in mod.CDEF  # array sizes keep their values
    assert "#define TAU_UNLIMITED ..." in mod.CDEF  # the compiler fills the rest
    assert "tau_cg_file_name" in functions  # a const char * return is still found


def test_the_build_compiles_every_c_file_and_tracks_every_header() -> None:
    # A renamed or added file must not drop out of the build, or rebuild
    # without a changed header being noticed.
    mod = _builder()
    assert set(mod.SOURCES) == {p.name for p in CSRC.glob("*.c")}
    assert {"system.c", "syscalls.c"} <= set(mod.SOURCES)
    assert set(mod.HEADERS) == {p.name for p in CSRC.glob("*.h")}


def test_benchmarks_and_dead_bits_are_not_shipped() -> None:
    header = (CSRC / "sampler.h").read_text()
    assert not [f for f in _functions(header) if "bench" in f]
    assert not hasattr(lib, "tau_bench_pread_floor")
    assert not [d for d in _defines(header) if d.startswith("TAU_SYS_PSI")]


_IMPORTS_EXTENSION = re.compile(
    r"^\s*(?:(?:from|import)\s+taucg\.readers\._sampler\b"
    r"|from\s+taucg\.readers\s+import\s+.*\b_sampler\b)", re.M)


def test_only_readers_import_the_extension() -> None:
    # Layers above readers reach the kernel through typed faces
    # (sampler.py, syscalls.py), so an errno never escapes unexplained.
    package = CSRC.parent / "taucg"
    importers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if _IMPORTS_EXTENSION.search(path.read_text()))
    assert importers
    assert [p for p in importers if not p.startswith("readers/")] == []
