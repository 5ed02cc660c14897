"""Every run record of an acquisition, normalised into one shape.

An acquisition keeps one JSON record per run that wrote into it:

* ``provenance/ingest.json`` (schemaKey ``IngestProvenance``): the ingest;
* ``provenance/labels/<layer>_v<N>.json`` (``LabelVersionProvenance``): a label version
  (import, aggregation ...);
* ``provenance/runs/*.json``: any later run (training, segmentation ...).

:func:`read_run_records` turns each into a :class:`RunRecord` with the same fields,
whatever wrote it, so consumers (RO-Crate ``CreateAction``s, reports) have one converter.
Records of future runs join unchanged as long as they use the common keys::

    {"action": "...", "started": ISO, "finished": ISO, "agent": "Name" | {name, orcid, email},
     "tool": {"name", "version"}, "inputs": [path | {path, sha256, size, kind}],
     "outputs": [...], "parameters": {...}}

``creator`` is read as ``agent``; ``parents`` (label addresses such as ``mito@v1``)
become inputs of kind ``label``. A record without an agent takes the author of the git
commit that added it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..repository import datalad_ops as dlo

RUNS_DIR = "provenance/runs"
LABELS_DIR = "provenance/labels"
_ADDRESS = re.compile(r"^(?P<layer>[A-Za-z0-9][A-Za-z0-9._-]*)@v(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class RunRecord:
    """One run, in the shape every consumer reads."""

    id: str  # stable within the acquisition: "ingest", "labels/mito_v1", "runs/train-2024"
    action: str
    record: str  # the record file, relative to the acquisition root
    schema_key: str | None = None
    started: str | None = None
    finished: str | None = None
    agent: dict[str, Any] | None = None  # {"name", "orcid", "email"}
    tool: dict[str, Any] = field(default_factory=dict)  # {"name", "version"}
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_run_records(acq: Path, name: str, *, git_agents: bool = True) -> list[RunRecord]:
    """All run records of the acquisition at ``acq``, oldest first."""
    acq = Path(acq)
    out: list[RunRecord] = []
    ingest = acq / "provenance" / "ingest.json"
    if ingest.is_file():
        out.append(_from_ingest(_load(ingest), name))
    for path in sorted((acq / LABELS_DIR).glob("*.json")):
        out.append(_from_label(_load(path), name, path.stem))
    for path in sorted((acq / RUNS_DIR).glob("*.json")):
        out.append(normalise(_load(path), record=f"{RUNS_DIR}/{path.name}", id=f"runs/{path.stem}", name=name))
    if git_agents:
        out = [r if r.agent else _with_git_agent(acq, r) for r in out]
    return sorted(out, key=lambda r: (r.started or "", r.id))


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"action": "unreadable-record"}
    return data if isinstance(data, dict) else {"action": "unreadable-record"}


# --- the generic normaliser ----------------------------------------------------------------


def normalise(rec: dict[str, Any], *, record: str, id: str, name: str,
              default_action: str = "run") -> RunRecord:
    """A :class:`RunRecord` from any record using the common keys."""
    inputs, in_params = _items(rec.get("inputs"), name)
    known = {i.get("address") for i in inputs if i.get("kind") == "label"}
    inputs += [_label_item(p, name) for p in _as_list(rec.get("parents")) if p not in known]
    outputs, out_params = _items(rec.get("outputs"), name)
    params = dict(rec.get("parameters")) if isinstance(rec.get("parameters"), dict) else {}
    for k, v in {**in_params, **out_params}.items():
        params.setdefault(k, v)
    return RunRecord(
        id=id,
        action=str(rec.get("action") or default_action),
        record=record,
        schema_key=rec.get("schemaKey"),
        started=_text(rec.get("started")),
        finished=_text(rec.get("finished")),
        agent=_agent(rec.get("agent") or rec.get("creator")),
        tool=_tool(rec.get("tool")),
        inputs=[i for i in inputs if i],
        outputs=[o for o in outputs if o],
        parameters=params,
        description=_text(rec.get("description") or rec.get("note")),
    )


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _items(value: Any, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Items from a list, or from a dict keyed by role (``{"sources": [...], "parents": [...],
    "group": "..."}``); scalar values of such a dict that are not paths become parameters."""
    if not isinstance(value, dict):
        return [i for i in (_item(x) for x in _as_list(value)) if i], {}
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    for role, val in value.items():
        if role == "parents":
            items += [i for i in (_label_item(p, name) for p in _as_list(val)) if i]
        elif isinstance(val, list) and all(isinstance(x, (str, dict)) for x in val):
            items += [{**i, "role": role} for i in (_item(x) for x in val) if i]
        elif role in ("group", "path", "image", "model", "file") and isinstance(val, str):
            items.append({"path": val, "kind": "label" if role == "group" else "file", "role": role})
        elif isinstance(val, dict) and ("path" in val or "sha256" in val):
            item = _item(val)
            if item:
                items.append({**item, "role": role})
        else:
            params[role] = val
    return items, params


def _text(v: Any) -> str | None:
    return None if v in (None, "") else str(v)


def _item(x: Any) -> dict[str, Any] | None:
    if x is None:
        return None
    if isinstance(x, str):
        m = _ADDRESS.match(x)
        if m:
            return {"kind": "label", "address": x}
        return {"path": x, "kind": "file"}
    if isinstance(x, dict):
        item = {k: x[k] for k in ("path", "name", "sha256", "size", "kind", "address", "tree_sha256",
                                  "n_files", "bytes", "role") if x.get(k) is not None}
        item.setdefault("kind", "label" if "address" in item else "file")
        return item or None
    return {"path": str(x), "kind": "file"}


def _label_item(address: Any, name: str) -> dict[str, Any] | None:
    if not address:
        return None
    text = str(address)
    m = _ADDRESS.match(text)
    item: dict[str, Any] = {"kind": "label", "address": text}
    if m:
        item["path"] = f"{name}.ome.zarr/labels/{m.group('layer')}_v{m.group('version')}"
    return item


def _agent(v: Any) -> dict[str, Any] | None:
    if not v:
        return None
    if isinstance(v, str):
        return {"name": v}
    if isinstance(v, dict):
        out = {k: v[k] for k in ("name", "orcid", "email", "type", "affiliation") if v.get(k)}
        if "name" not in out:
            given, family = v.get("given_name"), v.get("family_name")
            if given or family:
                out["name"] = " ".join(p for p in (given, family) if p)
        return out or None
    return {"name": str(v)}


def _tool(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return {k: v[k] for k in ("name", "version", "url") if v.get(k)}
    if isinstance(v, str):
        return {"name": v}
    return {}


# --- the known record kinds -----------------------------------------------------------------


def _from_ingest(rec: dict[str, Any], name: str) -> RunRecord:
    raw_copy = rec.get("raw_copy")
    inputs = []
    for s in rec.get("sources", []):
        item = {"path": s.get("path"), "name": s.get("name"), "size": s.get("size"),
                "sha256": s.get("sha256"), "kind": "file", "role": "raw"}
        if raw_copy and s.get("name"):
            item["copy"] = f"{raw_copy.rstrip('/')}/{s['name']}"
        inputs.append({k: v for k, v in item.items() if v is not None})
    image = rec.get("image", {})
    outputs = [{"path": image.get("path", f"{name}.ome.zarr"), "kind": "image",
                "tree_sha256": image.get("tree_sha256"), "n_files": image.get("n_files"),
                "bytes": image.get("bytes")}]
    if raw_copy:
        outputs.append({"path": raw_copy.rstrip("/"), "kind": "raw-copy"})
    outputs.append({"path": "metadata.json", "kind": "file"})
    params = {"reader": rec.get("reader"), "plan": image.get("plan"), "codec": image.get("codec"),
              "engine": rec.get("engine")}
    base = normalise(rec, record="provenance/ingest.json", id="ingest", name=name, default_action="ingest")
    return RunRecord(
        id=base.id, action=base.action, record=base.record, schema_key=base.schema_key or "IngestProvenance",
        started=base.started, finished=base.finished, agent=base.agent, tool=base.tool or {"name": "curation"},
        inputs=inputs, outputs=[{k: v for k, v in o.items() if v is not None} for o in outputs],
        parameters={k: v for k, v in params.items() if v is not None},
        description=f"ingest of {len(inputs)} source file(s) with the {rec.get('reader')} reader into OME-Zarr",
    )


def _from_label(rec: dict[str, Any], name: str, group: str) -> RunRecord:
    base = normalise(rec, record=f"{LABELS_DIR}/{group}.json", id=f"labels/{group}", name=name,
                     default_action="label")
    address = rec.get("address") or group
    out_path = f"{name}.ome.zarr/labels/{group}"
    extra = {"address": address, **({"tree_sha256": rec["tree_sha256"]} if rec.get("tree_sha256") else {})}
    outputs = [o for o in base.outputs if o.get("path") != out_path]
    outputs.insert(0, {"path": out_path, "kind": "label", **extra})
    params = dict(base.parameters)
    for key in ("kind", "method", "annotated", "import", "aggregation"):
        if rec.get(key) is not None and key not in params:
            params[key] = rec[key]
    return RunRecord(
        id=base.id, action=base.action, record=base.record,
        schema_key=base.schema_key or "LabelVersionProvenance", started=base.started, finished=base.finished,
        agent=base.agent, tool=base.tool, inputs=base.inputs, outputs=outputs, parameters=params,
        description=base.description or f"label version {address}",
    )


def _with_git_agent(acq: Path, r: RunRecord) -> RunRecord:
    from dataclasses import replace

    try:
        commits = dlo.log(acq, path=r.record)
    except ToolError:  # not a git repository (a copy): keep it as it is
        return r
    if not commits:
        return r
    first = commits[-1]
    agent = {"name": first["author"], "email": first["email"], "source": "git commit " + first["commit"][:12]}
    return replace(r, agent={k: v for k, v in agent.items() if v})
