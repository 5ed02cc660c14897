"""JSON Schemas of the segmentation records: ``pipeline.schema.json`` (a segmentation
pipeline, ``pipelines/*.yaml``), ``model_card.schema.json`` (the ``config.curation``
section of a model package's ``rdf.yaml``), ``prediction_parameters.schema.json`` (what a
prediction's lineage records) and ``reproduction.schema.json`` (a reproduction check)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

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
