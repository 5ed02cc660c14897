"""JSON Schemas of the segmentation records: ``pipeline.schema.json`` (a segmentation
pipeline, ``pipelines/*.yaml``), ``model_card.schema.json`` (the ``config.curation``
section of a model package's ``rdf.yaml``), ``prediction_parameters.schema.json`` (what a
prediction's lineage records) and ``reproduction.schema.json`` (a reproduction check)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..records import Result, notneeded, ok
from .card import CARD_SCHEMA_VERSION, ModelCard
from .pipeline import SCHEMA_VERSION as PIPELINE_SCHEMA_VERSION
from .pipeline import SegmentationPipeline
from .reproduce import PARAMETERS_SCHEMA_VERSION, Comparison, PredictionParameters

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE = "https://curation.example.org/schemas"

#: file name -> (model, version, title)
SCHEMAS: dict[str, tuple[type[BaseModel], str, str]] = {
    "pipeline.schema.json": (SegmentationPipeline, PIPELINE_SCHEMA_VERSION, "Segmentation pipeline"),
    "model_card.schema.json": (ModelCard, CARD_SCHEMA_VERSION, "Segmentation model card"),
    "prediction_parameters.schema.json": (PredictionParameters, PARAMETERS_SCHEMA_VERSION,
                                          "Parameters of a segmentation prediction"),
    "reproduction.schema.json": (Comparison, "1.0.0", "Comparison of a recomputed prediction with the stored one"),
}


def schema_dict(filename: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) written as ``filename``."""
    model, version, title = SCHEMAS[filename]
    schema = model.model_json_schema()
    stem = filename.removesuffix(".schema.json")
    return {"$schema": DIALECT, "$id": f"{BASE}/{stem}/{version}/{filename}", "title": title,
            "schema_version": version, **{k: v for k, v in schema.items() if k != "title"}}


def schema_text(filename: str) -> str:
    return json.dumps(schema_dict(filename), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: str | os.PathLike[str]) -> list[Result]:
    """Write each schema into ``directory``; notneeded for those unchanged."""
    folder = Path(directory)
    out = []
    for filename in SCHEMAS:
        target = folder / filename
        text = schema_text(filename)
        sid = schema_dict(filename)["$id"]
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            out.append(notneeded("export-schema", target, "schema unchanged", schema_id=sid))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        out.append(ok("export-schema", target, "schema written", schema_id=sid))
    return out
