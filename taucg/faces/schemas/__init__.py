"""The JSON Schema of each command's -o json document, shipped as package
data: taucg.<name>/1 is described by <name>.schema.json here."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def names() -> list[str]:
    return sorted(p.name.removesuffix(".schema.json") for p in files(__name__).iterdir()
                  if p.name.endswith(".schema.json"))


def load(name: str) -> dict[str, Any]:
    """The schema of the document whose ``schema`` is taucg.<name>/1."""
    schema: dict[str, Any] = json.loads((files(__name__) / f"{name}.schema.json").read_text())
    return schema
