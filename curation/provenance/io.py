"""Reading and writing records: any version in, the current model out; atomic writes.

``read_record(path, IngestRecord)`` reads ``provenance/ingest.json`` whatever curation
wrote it: a 1.0.0 document is upgraded by :mod:`.migrate`, a 2.0.0 one validated as it
is. Every failure is a :class:`~curation.errors.RecordError` naming the file and the
field. ``write_record`` writes a temporary file, fsyncs it and renames it into place,
so a record is either whole or absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import RecordError
from . import migrate
from .base import SCHEMA_VERSION, Record
from .ingest import IngestRecord
from .journal import Journal
from .labels import LabelLineage, LabelVersionRecord
from .package import PackageRecord
from .runs import RunRecord

R = TypeVar("R", bound=Record)

#: records are small; anything larger is not one of ours
MAX_RECORD_BYTES = 64 * 1024**2

MODELS: dict[str, type[Record]] = {m.model_fields["schema_key"].default: m for m in
                                   (RunRecord, IngestRecord, LabelVersionRecord, LabelLineage, Journal,
                                                                     PackageRecord)}


def _field_of(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ())) or "(document)"


def parse_record(doc: Any, expect: type[R], *, path: Path | str | None = None,
                 acquisition: str | None = None) -> R:
    """``doc`` (parsed JSON) as ``expect``, upgraded from an older schema when needed."""
    if not isinstance(doc, dict):
        raise RecordError("a record is a JSON object", path=path, expected=expect.__name__,
                          found=type(doc).__name__)
    key = doc.get("schema_key")
    version = doc.get("schema_version")
    try:
        if key is None and version in (None, migrate.V1):
            old = doc.get("schemaKey")
            if old in migrate.BY_KEY:
                record: Any = migrate.BY_KEY[old](doc)
            elif expect is LabelLineage and "layer" in doc:
                record = migrate.lineage_v1(doc, acquisition)
            else:
                raise RecordError("not a curation record", path=path, field="schema_key",
                                  expected=expect.__name__, found=old or "no schema_key")
        else:
            if version != SCHEMA_VERSION:
                raise RecordError("a record of a schema version this curation does not know", path=path,
                                  field="schema_version", expected=SCHEMA_VERSION, found=version,
                                  hint="upgrade curation to read it")
            model = MODELS.get(str(key))
            if model is None:
                raise RecordError("unknown record kind", path=path, field="schema_key",
                                  expected=" | ".join(MODELS), found=key)
            record = model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RecordError(f"the record does not match its model: {err['msg']}", path=path, field=_field_of(err),
                          expected=expect.__name__, found=_short(err.get("input"))) from exc
    except (KeyError, TypeError) as exc:
        raise RecordError(f"an old record lacks a field: {exc}", path=path, expected=expect.__name__) from exc
    if not isinstance(record, expect):
        raise RecordError("the record is of another kind", path=path, field="schema_key",
                          expected=expect.__name__, found=type(record).__name__)
    return record


def read_json(path: Path | str) -> Any:
    """A JSON document from a file, with size and syntax errors named."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_RECORD_BYTES:
            raise RecordError("the record is too large to be one of curation's", path=p,
                              expected=f"at most {MAX_RECORD_BYTES // 1024**2} MiB", found=f"{size} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError("the record is missing", path=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"the record cannot be read: {exc}", path=p) from exc
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise RecordError(f"the record is not valid JSON: {' '.join(str(exc).split())[:200]}", path=p) from exc


def read_record(path: Path | str, expect: type[R], *, acquisition: str | None = None) -> R:
    return parse_record(read_json(path), expect, path=path, acquisition=acquisition)


def record_json(record: BaseModel) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude_none=True)


def record_text(record: BaseModel) -> str:
    return json.dumps(record_json(record), indent=2, ensure_ascii=False) + "\n"


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: temporary file, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def write_record(path: Path | str, record: BaseModel) -> None:
    write_text_atomic(path, record_text(record))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
