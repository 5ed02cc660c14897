"""Every JSON Schema curation publishes, generated from its pydantic models.

``curate schemas export DIR`` (``make schemas``) writes them; a test fails when a file in
``schemas/`` differs from what the models generate. Each schema carries ``$id`` and
``schema_version``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .records import Result, notneeded, ok


def generators() -> dict[str, Callable[[], dict[str, Any]]]:
    """File name -> a function returning that schema."""
    from .metadata.export import SCHEMA_FILENAME, schema_dict
    from .provenance.schema import RECORD_SCHEMAS, record_schema

    out: dict[str, Callable[[], dict[str, Any]]] = {SCHEMA_FILENAME: schema_dict}
    for name in RECORD_SCHEMAS:
        out[name] = lambda name=name: record_schema(name)
    from .segmentation.schemas import SCHEMAS as SEGMENTATION_SCHEMAS
    from .segmentation.schemas import schema_dict as segmentation_schema

    for name in SEGMENTATION_SCHEMAS:
        out[name] = lambda name=name: segmentation_schema(name)
    return out


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_all(directory: Path | str) -> list[Result]:
    """Write every schema into ``directory``; notneeded for those unchanged."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in generators().items():
        schema = make()
        target = folder / name
        text = schema_text(schema)
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            out.append(notneeded("export-schema", target, "schema unchanged", schema_id=schema.get("$id")))
            continue
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        out.append(ok("export-schema", target, "schema written", schema_id=schema.get("$id")))
    return out
