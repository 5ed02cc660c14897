"""The JSON Schema of the metadata document, generated from the models, and its export."""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from curation.metadata.base import SHARED_DEF_KEY, SHARED_DEFS
from curation.metadata.models import SCHEMA_VERSION, AcquisitionMetadata
from curation.records import Result, notneeded, ok

SCHEMA_ID = f"https://curation.example.org/schemas/acquisition/{SCHEMA_VERSION}/acquisition.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILENAME = "acquisition.schema.json"


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema = AcquisitionMetadata.model_json_schema()
    # long code lists appear once, under $defs; the fields refer to them (see base.py)
    schema = _link_shared(schema)
    schema["$defs"].update(copy.deepcopy(SHARED_DEFS))
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "Volume EM acquisition metadata",
        "schema_version": SCHEMA_VERSION,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _link_shared(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _link_shared(v) for k, v in node.items() if k != SHARED_DEF_KEY}
        if SHARED_DEF_KEY in node:
            out["$ref"] = f"#/$defs/{node[SHARED_DEF_KEY]}"
        return out
    if isinstance(node, list):
        return [_link_shared(v) for v in node]
    return node


def schema_dict() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`AcquisitionMetadata` (a fresh copy)."""
    return copy.deepcopy(_schema())


def schema_text() -> str:
    """The schema as written to disk: sorted keys, indent 2, trailing newline."""
    return json.dumps(_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: str | os.PathLike[str]) -> list[Result]:
    """Write ``acquisition.schema.json`` into ``directory``; notneeded when it is unchanged."""
    folder = Path(directory)
    target = folder / SCHEMA_FILENAME
    text = schema_text()
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return [notneeded("export-schema", target, "schema unchanged", schema_id=SCHEMA_ID)]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return [ok("export-schema", target, "schema written", schema_id=SCHEMA_ID)]


@lru_cache(maxsize=1)
def schema_validator() -> Any:
    """A jsonschema validator for the schema, checking formats (dates).

    The schema is generated from the models; tests/metadata/test_metadata_schema.py checks
    it against the 2020-12 meta-schema, which here cost a third of a second per command.
    """
    from jsonschema import Draft202012Validator

    schema = _schema()
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
