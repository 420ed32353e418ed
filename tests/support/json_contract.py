"""The JSON contract's checks, shared by the host and VM tiers: a command's
stdout is exactly one document (or one per line), named by its ``schema``
and valid against the shipped taucg/faces/schemas/<name>.schema.json."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from jsonschema.validators import validator_for

from taucg.faces import schemas

UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def validate(doc: Any, name: str) -> dict[str, Any]:
    """doc is a taucg.<name>/1 document that its schema accepts."""
    assert isinstance(doc, dict), doc
    assert doc.get("schema") == f"taucg.{name}/1", doc.get("schema")
    schema = schemas.load(name)
    cls = validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    return doc


def one_document(r: subprocess.CompletedProcess[str], name: str) -> dict[str, Any]:
    """The one document a command printed; json.loads refuses anything after it."""
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not one JSON document ({exc}):\n{r.stdout}\n{r.stderr}"
                             ) from None
    return validate(doc, name)


def error_document(r: subprocess.CompletedProcess[str], exit_code: int) -> dict[str, Any]:
    """A failure under -o json: the taucg.error/1 document with the exit status."""
    assert r.returncode == exit_code, (r.returncode, r.stdout, r.stderr)
    doc = one_document(r, "error")
    assert doc["error"]["exit_code"] == exit_code
    assert "Traceback" not in r.stdout + r.stderr
    return doc
