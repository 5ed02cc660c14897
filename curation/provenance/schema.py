"""JSON Schemas of the records, generated from their models (``schemas/*.schema.json``)."""

from __future__ import annotations

from typing import Any

from .base import SCHEMA_BASE, SCHEMA_VERSION
from .ingest import IngestRecord
from .journal import Journal
from .labels import LabelLineage, LabelVersionRecord
from .package import PackageRecord
from .runs import RunRecord

#: file name -> (model, title)
RECORD_SCHEMAS: dict[str, tuple[type, str]] = {
    "run-record.schema.json": (RunRecord, "Run record of any operation that computes something"),
    "ingest-record.schema.json": (IngestRecord, "Ingest record (provenance/ingest.json)"),
    "label-lineage.schema.json": (LabelLineage, "Lineage of a label version (its group's curation attribute)"),
    "label-version-record.schema.json": (LabelVersionRecord, "Label version record (provenance/labels/*.json)"),
    "package-record.schema.json": (PackageRecord, "Package record (.curation-package.json at a package's root)"),
    "journal.schema.json": (Journal, "Journal of a write transaction (.curation/staging/journal/*.json)"),
    "checksum-manifest.schema.json": (None, "Checksum manifest (provenance/checksums.tsv, one row per file)"),
}


def record_schema(filename: str) -> dict[str, Any]:
    model, title = RECORD_SCHEMAS[filename]
    stem = filename.removesuffix(".schema.json")
    head = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{SCHEMA_BASE}/{stem}/{SCHEMA_VERSION}/{filename}", "title": title,
            "schema_version": SCHEMA_VERSION}
    if model is None:
        from ..omezarr.checksum import ChecksumRow

        body = ChecksumRow.model_json_schema()
        body["description"] = ("One row of a tab-separated checksum manifest with the header line "
                               "`path<TAB>size<TAB>sha256`; the tree checksum is the sha256 of the rows, sorted, each "
                               "followed by a newline.")
    else:
        body = model.model_json_schema()
    return {**head, **{k: v for k, v in body.items() if k != "title"}}
