"""Typed, versioned records of everything written into an archive.

* :mod:`.base`: the frozen base model and the parts records share (references, storage);
* :mod:`.runs`: :class:`RunRecord`, the record of any operation that computes something;
* :mod:`.analysis`: the details of analysis and evaluation runs;
* :mod:`.ingest`: :class:`IngestRecord` (``provenance/ingest.json``);
* :mod:`.labels`: :class:`LabelLineage` (a label group's ``curation`` attribute) and
  :class:`LabelVersionRecord` (``provenance/labels/LAYER_vN.json``);
* :mod:`.journal`: :class:`Journal`, the write transaction's journal;
* :mod:`.io`: read any version (older ones migrated by :mod:`.migrate`), write atomically.

Their JSON Schemas are exported to ``schemas/`` (``curate schemas export``).
"""

from .analysis import AnalysisDetails, EvaluationDetails
from .base import (
    SCHEMA_VERSION,
    Agent,
    EngineInfo,
    Extent,
    FileRef,
    ImageRef,
    LabelRef,
    OutputRef,
    Record,
    StorageInfo,
    ToolInfo,
)
from .ingest import HeaderRecord, ImageRecord, IngestRecord, MetadataSource, PlanRecord
from .io import parse_record, read_json, read_record, record_json, record_text, write_record, write_text_atomic
from .journal import Journal
from .labels import KINDS, ConsensusSummary, LabelLineage, LabelVersionRecord
from .runs import AggregationDetails, ImportDetails, MetadataUpdateDetails, RunRecord

__all__ = [
    "KINDS", "SCHEMA_VERSION", "Agent", "AggregationDetails", "AnalysisDetails", "EvaluationDetails", "EngineInfo", "ConsensusSummary", "Extent", "FileRef", "HeaderRecord",
    "ImageRecord", "ImageRef", "ImportDetails", "IngestRecord", "Journal", "LabelLineage", "LabelRef",
    "LabelVersionRecord", "MetadataSource", "MetadataUpdateDetails", "OutputRef", "PlanRecord", "Record", "RunRecord",
    "StorageInfo", "ToolInfo", "parse_record", "read_json", "read_record", "record_json", "record_text",
    "write_record", "write_text_atomic",
]
