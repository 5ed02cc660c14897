"""Records written before schema 2.0.0, upgraded on read.

Version 1.0.0 (curation 0.1) wrote hand-built dictionaries: ``IngestProvenance``
(``provenance/ingest.json``), ``LabelVersionProvenance`` (``provenance/labels/*.json``)
and the label lineage in a group's ``curation`` attribute (no key, no version). Each
function here maps one of them onto its 2.0.0 model; fields the old form did not have
are left at their defaults, and nothing the old form had is dropped.
"""

from __future__ import annotations

from typing import Any

from .base import Agent, EngineInfo, Extent, FileRef, LabelRef, OutputRef, StorageInfo, ToolInfo
from .ingest import HeaderRecord, ImageRecord, IngestRecord, MetadataSource, PlanRecord
from .labels import ConsensusSummary, LabelLineage, LabelVersionRecord
from .runs import AggregationDetails, GenericDetails, ImportDetails

V1 = "1.0.0"


def _file(d: dict[str, Any], role: str) -> FileRef:
    extra = {k: d[k] for k in ("checksum", "n_files") if d.get(k) is not None}
    return FileRef(path=str(d["path"]), name=str(d.get("name") or d["path"]), size=int(d["size"]),
                   sha256=str(d["sha256"]), role=role, **extra)


def ingest_v1(d: dict[str, Any]) -> IngestRecord:
    name = d["acquisition"]
    img = d["image"]
    outputs = [OutputRef(kind="image", path=img["path"], tree_sha256=img["tree_sha256"], n_files=img["n_files"],
                         bytes=img["bytes"]), OutputRef(kind="file", path="metadata.json")]
    if d.get("raw_copy"):
        outputs.append(OutputRef(kind="raw-copy", path=str(d["raw_copy"]).rstrip("/")))
    return IngestRecord(
        id="ingest", action="ingest", acquisition=name, started=d["started"], finished=d["finished"],
        tool=ToolInfo(**d["tool"]), libraries=dict(d.get("libraries") or {}),
        inputs=[_file(s, "source") for s in d.get("sources", [])], outputs=outputs,
        engine=EngineInfo(**d["engine"]) if d.get("engine") else None,
        reader=d["reader"], raw_copy=d.get("raw_copy"), header=HeaderRecord(**d["header"]),
        metadata=MetadataSource(**d["metadata"]),
        image=ImageRecord(path=img["path"], ngff_version=img.get("ngff_version", "0.5"),
                          zarr_format=img.get("zarr_format", 3), codec=img["codec"],
                          plan=PlanRecord.model_validate(img["plan"]), tree_sha256=img["tree_sha256"],
                          n_files=img["n_files"], bytes=img["bytes"], n_shards=img["n_shards"]),
        resumed_shards=int(d.get("resumed_shards") or 0), write_seconds=d.get("write_seconds"),
    )


def _consensus(d: dict[str, Any]) -> ConsensusSummary | None:
    agg = d.get("aggregation")
    if not agg:
        return None
    return ConsensusSummary(method=agg["method"], parameters=dict(agg.get("parameters") or {}),
                            annotators=list(d.get("annotators") or agg.get("annotators") or []),
                            flagged=list(d.get("flagged") or agg.get("flagged") or []))


def lineage_v1(d: dict[str, Any], acquisition: str | None = None) -> LabelLineage:
    return LabelLineage(
        acquisition=acquisition, layer=d["layer"], version=d["version"], address=d["address"], kind=d["kind"],
        parents=list(d.get("parents") or []), creator=d["creator"], created=d["created"],
        tool_version=d["tool_version"], sources=[_file(s, "source") for s in d.get("sources", [])],
        annotated=Extent.model_validate(d.get("annotated") or {}), note=d.get("note") or "",
        unlabeled_value=d["unlabeled_value"], dtype=d["dtype"], label_values=list(d.get("label_values") or []),
        consensus=_consensus(d),
    )


def label_record_v1(d: dict[str, Any]) -> LabelVersionRecord:
    out = d.get("outputs") or {}
    acquisition = d["acquisition"]
    sources = [_file(s, "source") for s in (d.get("inputs") or {}).get("sources", [])]
    parents = list(d.get("parents") or [])
    lineage = LabelLineage(
        acquisition=acquisition, layer=d["layer"], version=d["version"], address=d["address"], kind=d["kind"],
        parents=parents, creator=d["creator"], created=d["finished"], tool_version=d["tool"]["version"],
        sources=sources, annotated=Extent.model_validate(d.get("annotated") or {}), note=d.get("note") or "",
        unlabeled_value=out["unlabeled_value"], dtype=out["dtype"], label_values=list(out.get("label_values") or []),
        consensus=_consensus({"aggregation": d.get("aggregation"), **(d.get("aggregation") or {})}),
    )
    details: Any = None
    if d.get("import"):
        imp = d["import"]
        details = ImportDetails(source=imp["source"], format=imp["format"], slice_map=imp.get("slice_map") or [],
                                value_counts=imp.get("value_counts") or {},
                                source_unlabeled_value=imp.get("source_unlabeled_value"),
                                base=parents[0] if parents else None)
    elif d.get("aggregation"):
        agg = d["aggregation"]
        details = AggregationDetails(method=agg["method"], parameters=agg.get("parameters") or {},
                                     input=agg["input"], annotators=agg.get("annotators") or [],
                                     flagged=agg.get("flagged") or [])
    agent = d.get("agent") or {}
    tree = d["tree_sha256"]
    return LabelVersionRecord(
        id=f"labels/{d['layer']}_v{d['version']}", action=d["action"], acquisition=acquisition,
        started=d["started"], finished=d["finished"],
        agent=Agent(name=agent.get("name") or d["creator"], user=agent.get("user")),
        tool=ToolInfo(**d["tool"]),
        inputs=[*sources, *(LabelRef(address=p, acquisition=acquisition) for p in parents)],
        outputs=[OutputRef(kind="label", path=out.get("group") or d["group"], address=d["address"],
                           tree_sha256=tree, n_files=d["n_files"], bytes=d["bytes"])],
        details=details, note=d.get("note") or "",
        layer=d["layer"], version=d["version"], address=d["address"], group=d["group"], lineage=lineage,
        storage=StorageInfo(tree_sha256=tree, n_files=d["n_files"], bytes=d["bytes"], n_shards=d["n_shards"],
                            stored_shards=d["stored_shards"]),
    )


def generic_v1(d: dict[str, Any]) -> GenericDetails:
    return GenericDetails(values={k: v for k, v in d.items()})


#: v1 schemaKey -> upgrade
BY_KEY = {"IngestProvenance": ingest_v1, "LabelVersionProvenance": label_record_v1}
