"""Every run record of an acquisition, in the shape packages describe them.

An acquisition keeps one typed run record per run that wrote into it (see
:mod:`curation.provenance`): ``provenance/ingest.json`` (an
:class:`~curation.provenance.IngestRecord`), ``provenance/labels/LAYER_vN.json``
(:class:`~curation.provenance.LabelVersionRecord`) and ``provenance/runs/*.json`` (any
other :class:`~curation.provenance.RunRecord`: metadata updates, training, prediction,
analysis). :func:`read_run_records` turns each into a :class:`RunSummary`: plain items
for inputs and outputs (path, name, size, sha256, kind, address, role) and one
``parameters`` mapping, which the RO-Crate ``CreateAction`` converter reads. A record
without an agent (written before 2.0.0) takes the author of the git commit that added it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import ToolError
from ..provenance import FileRef, ImageRef, IngestRecord, LabelRef, LabelVersionRecord, RunRecord
from ..repository import datalad_ops as dlo
from ..repository.view import AcquisitionView


@dataclass(frozen=True)
class RunSummary:
    """One run, in the shape every package reads."""

    id: str  # "ingest", "labels/mito_v1", "runs/metadata-update-2"
    action: str
    record: str  # the record file, relative to the acquisition root
    schema_key: str
    started: str | None = None
    finished: str | None = None
    agent: dict[str, Any] | None = None  # {"name", "email", "user", "host"}
    tool: dict[str, Any] = field(default_factory=dict)  # {"name", "version"}
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_file(run: RunRecord) -> str:
    """Where a run record lives in its acquisition."""
    return f"provenance/{run.id}.json"


def _input(item: Any, raw_copy: str | None) -> dict[str, Any]:
    if isinstance(item, FileRef):
        out: dict[str, Any] = {"kind": "file", "path": item.path, "name": item.name, "size": item.size,
                               "sha256": item.sha256, "role": item.role}
        if raw_copy and item.role == "source":
            out["copy"] = f"{raw_copy.rstrip('/')}/{item.name}"
        return out
    if isinstance(item, LabelRef):
        return {"kind": "label", "address": item.address, "role": item.role}
    if isinstance(item, ImageRef):
        return {"kind": "image", "path": item.path, "role": item.role}
    return {"kind": "file", "path": str(item)}


def summarise(run: RunRecord, name: str) -> RunSummary:
    raw_copy = run.raw_copy if isinstance(run, IngestRecord) else None
    params: dict[str, Any] = {}
    if run.details is not None:
        params.update(run.details.model_dump(mode="json", exclude={"kind"}, exclude_none=True))
    if run.engine is not None:
        params["engine"] = run.engine.model_dump(mode="json")
    description = run.note or None
    if isinstance(run, IngestRecord):
        params.update(reader=run.reader, plan=run.image.plan.model_dump(mode="json"), codec=run.image.codec)
        description = f"ingest of {len(run.sources)} source file(s) with the {run.reader} reader into OME-Zarr"
    elif isinstance(run, LabelVersionRecord):
        params.update(kind=run.lineage.kind, annotated=run.lineage.annotated.model_dump(mode="json"))
        description = description or f"label version {run.address}"
    outputs = [{k: v for k, v in o.model_dump(mode="json").items() if v is not None} for o in run.outputs]
    return RunSummary(
        id=run.id, action=run.action, record=record_file(run), schema_key=run.schema_key, started=run.started,
        finished=run.finished, agent=run.agent.model_dump(mode="json", exclude_none=True) if run.agent else None,
        tool=run.tool.model_dump(mode="json"), inputs=[_input(i, raw_copy) for i in run.inputs], outputs=outputs,
        parameters=params, description=description,
    )


def read_run_records(view: AcquisitionView, *, git_agents: bool = True) -> list[RunSummary]:
    """All run records of the acquisition, oldest first."""
    out = [summarise(r, view.name) for r in view.runs()]
    if git_agents:
        out = [r if r.agent else _with_git_agent(view, r) for r in out]
    return out


def _with_git_agent(view: AcquisitionView, r: RunSummary) -> RunSummary:
    try:
        commits = dlo.log(view.path, path=r.record)
    except ToolError:  # not a git repository (a copy): keep it as it is
        return r
    if not commits:
        return r
    first = commits[-1]
    agent = {"name": first["author"], "email": first["email"], "source": "git commit " + first["commit"][:12]}
    return replace(r, agent={k: v for k, v in agent.items() if v})
