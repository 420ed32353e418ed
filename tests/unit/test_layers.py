"""The package's layers, checked from its source.

Every module is declared in a layer by its folder: config (0) < readers (1)
< model (2) < actors (3) < faces (4). A module may import from its own
layer or lower ones, never from a higher one, so each layer can be read,
tested and reused without what sits on top of it. taucg/__init__.py holds
only the version (layer 0, importing nothing of ours); taucg/__main__.py
is an entry point at the faces level.

Some third-party libraries belong to one place, so that the rest of the
package does not grow a dependency on them (see OWNED).

Every import counts: at module level, inside functions, under
`if TYPE_CHECKING:`, in try/except, relative ones, and importlib calls with
a literal name."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "taucg"
LAYERS = {"config": 0, "readers": 1, "model": 2, "actors": 3, "faces": 4}

# Top-level module -> where it may be imported: a file, or a folder ending in "/".
OWNED: dict[str, tuple[str, ...]] = {
    "dbus_fast": ("taucg/actors/systemd_dbus.py", "taucg/actors/notify/desktop_send.py"),
    "click": ("taucg/faces/cli/",),
    "prometheus_client": ("taucg/faces/",),
    "sqlite3": ("taucg/actors/",),
    "systemd": ("taucg/actors/libsystemd.py",),
}


@dataclass(frozen=True)
class Layer:
    name: str
    rank: int


INIT = Layer(PACKAGE, 0)
MAIN = Layer("__main__", LAYERS["faces"])


@dataclass(frozen=True)
class Imported:
    line: int
    module: str  # absolute dotted name
    dynamic: bool = False  # only a prefix of the name is known (an f-string)


# -- where a module sits ------------------------------------------------------


def layer_of_file(relpath: str) -> Layer | None:
    """The layer a file under taucg/ is declared in; None when it is in none."""
    parts = relpath.split("/")
    if parts == [PACKAGE, "__init__.py"]:
        return INIT
    if parts == [PACKAGE, "__main__.py"]:
        return MAIN
    if len(parts) > 2 and parts[0] == PACKAGE and parts[1] in LAYERS:
        return Layer(parts[1], LAYERS[parts[1]])
    return None


def layer_of_module(module: str) -> Layer:
    """The layer of a module of ours (its name starts with "taucg")."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else None
    if head in LAYERS:
        return Layer(head, LAYERS[head])
    if head == "__main__":
        return MAIN
    # "taucg" itself, or a name of the package's own (from taucg import
    # __version__). A new top-level module is caught where it is defined:
    # layer_of_file puts it in no layer.
    return INIT


def module_of_file(relpath: str) -> tuple[str, str]:
    """(module name, package relative imports start from) of a file."""
    parts = relpath.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    name = ".".join(parts)
    return name, name.rpartition(".")[0]


# -- what a module imports ----------------------------------------------------


def resolve(name: str | None, level: int, package: str) -> str | None:
    """The absolute name of a (possibly relative) import; None when it
    climbs above the top-level package."""
    if level == 0:
        return name
    base = package.split(".")
    if level - 1 >= len(base):
        return None
    parts = base[: len(base) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def _from_targets(node: ast.ImportFrom, package: str) -> Iterator[str]:
    module = resolve(node.module, node.level, package)
    if module is None:
        yield "." * node.level + (node.module or "")
    elif module == PACKAGE:
        # `from taucg import faces` imports the module taucg.faces.
        for alias in node.names:
            yield PACKAGE if alias.name == "*" else f"{PACKAGE}.{alias.name}"
    else:
        yield module


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("import_module", "__import__")
    return (isinstance(func, ast.Attribute) and func.attr == "import_module"
            and isinstance(func.value, ast.Name) and func.value.id == "importlib")


def _literal_prefix(node: ast.expr) -> tuple[str, bool] | None:
    """(text, whole) of a string literal, or of an f-string's literal start."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value, False
    return None


def _call_target(node: ast.Call, package: str) -> Imported | None:
    if not node.args or not _is_import_call(node.func):
        return None
    literal = _literal_prefix(node.args[0])
    if literal is None:
        return None  # a name only known at run time: nothing to check
    text, whole = literal
    if not whole:
        text = text.rpartition(".")[0]  # the packages the name surely lies in
    level = len(text) - len(text.lstrip("."))
    anchor = node.args[1] if len(node.args) > 1 else next(
        (k.value for k in node.keywords if k.arg == "package"), None)
    if level and isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
        package = anchor.value
    module = resolve(text[level:] or None, level, package) or text
    return Imported(node.lineno, module, dynamic=not whole)


def imports(tree: ast.AST, package: str) -> Iterator[Imported]:
    """Every import in the tree, wherever it sits (ast.walk visits function
    bodies, `if TYPE_CHECKING:` blocks and try/except alike)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Imported(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            for module in _from_targets(node, package):
                yield Imported(node.lineno, module)
        elif isinstance(node, ast.Call) and (found := _call_target(node, package)):
            yield found


# -- the rules ----------------------------------------------------------------


def _owned_by(relpath: str, owners: tuple[str, ...]) -> bool:
    return any(relpath.startswith(o) if o.endswith("/") else relpath == o for o in owners)


def problems_of(relpath: str, here: Layer, imp: Imported) -> Iterator[str]:
    where = f"{relpath}:{imp.line}"
    top = imp.module.split(".")[0]
    if imp.module.startswith("."):
        yield f"{where} imports {imp.module}, above the top-level package"
    if top in OWNED and not _owned_by(relpath, OWNED[top]):
        yield f"{where} imports {imp.module}, which only {' or '.join(OWNED[top])} may import"
    if top != PACKAGE:
        return
    if here == INIT:
        yield (f"{where} imports {imp.module}: taucg/__init__.py is layer 0 "
               "and must import nothing from taucg")
        return
    if imp.dynamic and imp.module == PACKAGE:
        yield f"{where} imports taucg.<run-time name>: its layer cannot be checked"
        return
    there = layer_of_module(imp.module)
    if there.rank > here.rank:
        yield (f"{where} imports {imp.module} ({there.name}, layer {there.rank}) "
               f"from layer {here.name} ({here.rank})")


def check_source(source: str, relpath: str) -> list[str]:
    """Every layer violation of one module; relpath like "taucg/model/x.py"."""
    here = layer_of_file(relpath)
    if here is None:
        return [f"{relpath} is in no layer: put it under taucg/<{'|'.join(LAYERS)}>/"]
    _, package = module_of_file(relpath)
    found: list[str] = []
    for imp in imports(ast.parse(source, relpath), package):
        found.extend(p for p in problems_of(relpath, here, imp) if p not in found)
    return found


def modules(root: Path) -> list[Path]:
    return sorted(p for p in (root / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)


def check_tree(root: Path) -> list[str]:
    """Every layer violation under root/taucg, in file and line order."""
    found: list[str] = []
    for path in modules(root):
        relpath = path.relative_to(root).as_posix()
        found.extend(check_source(path.read_text(), relpath))
    return found


# -- the tests ----------------------------------------------------------------


def test_every_import_respects_the_layers() -> None:
    checked = {p.relative_to(ROOT).as_posix() for p in modules(ROOT)}
    assert {"taucg/__init__.py", "taucg/__main__.py", "taucg/model/rules.py"} <= checked
    violations = check_tree(ROOT)
    assert not violations, (f"{len(violations)} layer violation(s):\n"
                            + "\n".join(violations))


MODEL = "taucg/model/health.py"


@pytest.mark.parametrize(("relpath", "source", "expected"), [
    (MODEL, "from taucg.actors.systemd_dbus import Systemd\n",
     "taucg/model/health.py:1 imports taucg.actors.systemd_dbus (actors, layer 3) "
     "from layer model (2)"),
    (MODEL, "import taucg.faces.cli.main\n",
     "taucg/model/health.py:1 imports taucg.faces.cli.main (faces, layer 4) from layer model (2)"),
    (MODEL, "def f():\n    from taucg.actors import apply\n",
     "taucg/model/health.py:2 imports taucg.actors (actors, layer 3) from layer model (2)"),
    (MODEL, "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from taucg.actors.apply import Plan\n",
     "taucg/model/health.py:3 imports taucg.actors.apply (actors, layer 3) from layer model (2)"),
    (MODEL, "try:\n    import os\nexcept ImportError:\n    from taucg.faces import logs\n",
     "taucg/model/health.py:4 imports taucg.faces (faces, layer 4) from layer model (2)"),
    (MODEL, "from ..actors.records import audit\n",
     "taucg/model/health.py:1 imports taucg.actors.records (actors, layer 3) "
     "from layer model (2)"),
    (MODEL, "from .. import faces\n",
     "taucg/model/health.py:1 imports taucg.faces (faces, layer 4) from layer model (2)"),
    (MODEL, "from taucg import actors\n",
     "taucg/model/health.py:1 imports taucg.actors (actors, layer 3) from layer model (2)"),
    (MODEL, "import importlib\nm = importlib.import_module('taucg.faces.metrics')\n",
     "taucg/model/health.py:2 imports taucg.faces.metrics (faces, layer 4) from layer model (2)"),
    (MODEL, "from importlib import import_module\nm = import_module('..actors', 'taucg.model')\n",
     "taucg/model/health.py:2 imports taucg.actors (actors, layer 3) from layer model (2)"),
    (MODEL, "m = __import__(f'taucg.faces.{name}')\n",
     "taucg/model/health.py:1 imports taucg.faces (faces, layer 4) from layer model (2)"),
    (MODEL, "m = __import__(f'taucg.{name}')\n",
     "taucg/model/health.py:1 imports taucg.<run-time name>: its layer cannot be checked"),
    ("taucg/readers/procfs.py", "from taucg.model.rules import classify\n",
     "taucg/readers/procfs.py:1 imports taucg.model.rules (model, layer 2) "
     "from layer readers (1)"),
    ("taucg/config/values.py", "from taucg.readers import procfs\n",
     "taucg/config/values.py:1 imports taucg.readers (readers, layer 1) from layer config (0)"),
    ("taucg/faces/cli/main.py", "from taucg.__main__ import main\n", None),
    ("taucg/actors/apply.py", "from taucg.__main__ import main\n",
     "taucg/actors/apply.py:1 imports taucg.__main__ (__main__, layer 4) "
     "from layer actors (3)"),
    ("taucg/__init__.py", "from taucg.config import values\n",
     "taucg/__init__.py:1 imports taucg.config: taucg/__init__.py is layer 0 "
     "and must import nothing from taucg"),
    ("taucg/__init__.py", "from . import config\n",
     "taucg/__init__.py:1 imports taucg.config: taucg/__init__.py is layer 0 "
     "and must import nothing from taucg"),
    ("taucg/stray.py", "import os\n",
     "taucg/stray.py is in no layer: put it under taucg/<config|readers|model|actors|faces>/"),
    ("taucg/actors/apply.py", "import dbus_fast\n",
     "taucg/actors/apply.py:1 imports dbus_fast, which only taucg/actors/systemd_dbus.py "
     "or taucg/actors/notify/desktop_send.py may import"),
    ("taucg/faces/daemon.py", "from click import echo\n",
     "taucg/faces/daemon.py:1 imports click, which only taucg/faces/cli/ may import"),
    ("taucg/actors/records.py", "import prometheus_client\n",
     "taucg/actors/records.py:1 imports prometheus_client, which only taucg/faces/ may import"),
    ("taucg/model/monitor.py", "import sqlite3\n",
     "taucg/model/monitor.py:1 imports sqlite3, which only taucg/actors/ may import"),
])
def test_the_checker_reports_a_planted_violation(relpath: str, source: str,
                                                 expected: str | None) -> None:
    found = check_source(source, relpath)
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(("relpath", "source"), [
    ("taucg/model/health.py", "from taucg.model.monitor import cpu_percent\n"),  # own layer
    ("taucg/model/health.py", "from .monitor import cpu_percent\nfrom ..readers import procfs\n"),
    ("taucg/faces/cli/main.py", "import click\nfrom taucg import __version__\n"),
    ("taucg/faces/metrics.py", "from prometheus_client import Counter\n"),
    ("taucg/actors/systemd_dbus.py", "from dbus_fast.aio import MessageBus\n"),
    ("taucg/actors/sqlite_db.py", "import sqlite3\n"),
    ("taucg/__main__.py", "from taucg.faces.cli.main import main\n"),
    ("taucg/__init__.py", "import os\n__version__ = '1'\n"),
    ("taucg/config/loading.py", "import importlib\nm = importlib.import_module(name)\n"),
])
def test_the_checker_allows_what_the_layers_allow(relpath: str, source: str) -> None:
    assert check_source(source, relpath) == []


def test_an_upward_import_planted_in_a_copy_of_the_tree_is_reported(tmp_path: Path) -> None:
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.toml", "*.typed"))
    before = check_tree(tmp_path)
    assert before == check_tree(ROOT)  # the copy is the tree
    target = tmp_path / PACKAGE / "config" / "values.py"
    lines = len(target.read_text().splitlines())
    with target.open("a") as f:
        f.write("\n\ndef _planted() -> None:\n    from taucg.faces import render\n")
    planted = (f"taucg/config/values.py:{lines + 4} imports taucg.faces (faces, layer 4) "
               "from layer config (0)")
    after = check_tree(tmp_path)
    assert planted in after
    assert sorted(after) == sorted([*before, planted])
