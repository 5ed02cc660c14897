"""Correcting an acquisition's metadata after ingest: ``curate metadata update`` and
``curate metadata show``.

An update validates the new document, cross-checks it against the stored image (shape
and dtype can never change: they are the data; the voxel size can, with
``allow_geometry_change``, which also rewrites the scale of the image and of every label
image, and their checksum lists), and commits ``metadata.json`` with a run record
(``provenance/runs/metadata-update-N.json``) whose details list every changed field.
The commit message lists them too. It is one write transaction, like every write.

A ``metadata.json`` edited by hand is replaced by the update (that is how such an edit
is undone or made official); any other uncommitted change refuses the update.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import MetadataError, MismatchError
from ..omezarr import checksum as cks
from ..provenance import FileRef, OutputRef, RunRecord, ToolInfo, record_json, write_record, write_text_atomic
from ..provenance.runs import FieldChange, MetadataUpdateDetails
from ..records import Result, notneeded, ok
from . import datalad_ops as dlo
from .archive import now_iso, open_archive
from .ingest import VOXEL_RTOL, current_agent, library_versions
from .pyramid import WriteOptions
from .transaction import Changes, job_fingerprint, transaction
from .view import CHECKSUMS, RUNS, AcquisitionView

AXES = ("z", "y", "x")


def show_metadata(archive_path: Path | str, name: str) -> list[Result]:
    """The acquisition's current metadata document, as YAML (and as data for --json)."""
    from ..metadata import dump_text

    view = open_archive(archive_path).acquisition(name)
    doc = view.document
    return [ok("metadata-show", view.archive.relative(view.path / "metadata.json"), dump_text(doc), document=doc,
               dataset_commit=view.commit)]


def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2]}`` -> ``{"a.b": 1, "c[0]": 2}``."""
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(flatten(v, f"{prefix}[{i}]"))
        if not doc:
            out[prefix] = []
    else:
        out[prefix] = doc
    return out


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    a, b = flatten(old), flatten(new)
    return [FieldChange(field=k, old=a.get(k), new=b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _check_geometry(view: AcquisitionView, md, file: Path, allow: bool) -> tuple[float, float, float] | None:
    """The new voxel size when it differs from the image's (and that is allowed), else None."""
    geo = view.geometry
    dims = md.shape_zyx()
    if dims is not None and tuple(dims) != geo.shape:
        raise MismatchError("the image dimensions cannot change: they are the stored data", path=file,
                            field="image_data.dimensions", expected=f"(z, y, x) = {geo.shape}", found=tuple(dims))
    dtype = md.image_data.dtype.value if md.image_data.dtype else None
    if dtype and dtype != geo.dtype:
        raise MismatchError("the data type cannot change: it is the stored data", path=file, field="image_data.dtype",
                            expected=geo.dtype, found=dtype)
    new = md.voxel_size_nm()
    changed = False
    final = []
    for ax, mine, cur in zip(AXES, new, geo.voxel_size_nm):
        if mine is None:
            raise MetadataError(f"the voxel size along {ax} is missing", path=file, field=f"image_data.voxel_size.{ax}",
                                expected=f"{cur:g} nm (the image's)", found="nothing")
        if abs(mine - cur) > VOXEL_RTOL * max(abs(mine), abs(cur)):
            if not allow:
                raise MismatchError("the voxel size differs from the image's; changing it rewrites the scale of the "
                                    "image and of every label version", path=file,
                                    field=f"image_data.voxel_size.{ax}", expected=f"{cur:g} nm",
                                    found=f"{mine:g} nm", hint="pass --allow-geometry-change if the image was "
                                    "calibrated wrongly")
            changed = True
        final.append(float(mine))
    return tuple(final) if changed else None  # type: ignore[return-value]


def _rescaled(zarr_json: Path, ratio: tuple[float, float, float]) -> str:
    """The group's zarr.json with every scale and translation multiplied by ``ratio``."""
    doc = json.loads(zarr_json.read_text())
    for ms in doc["attributes"]["ome"]["multiscales"]:
        for ds in ms["datasets"]:
            for t in ds["coordinateTransformations"]:
                key = t["type"]
                if key in ("scale", "translation"):
                    t[key] = [float(f"{v * r:.10g}") for v, r in zip(t[key], ratio)]
    return json.dumps(doc, indent=2)


def update_metadata(archive_path: Path | str, name: str, file: Path | str, *, allow_geometry_change: bool = False,
                    note: str = "", options: WriteOptions | None = None) -> list[Result]:
    """Replace acquisition ``name``'s metadata with ``file`` (see the module docstring)."""
    from ..metadata import load_metadata

    t0 = time.monotonic()
    started = now_iso()
    opts = options or WriteOptions()
    file = Path(file)
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    md = load_metadata(file)
    new_json = md.model_dump_json(indent=2, exclude_none=True) + "\n"
    file_sha = cks.sha256_file(file)
    job = job_fingerprint("metadata-update", acquisition=name, file=str(file.resolve()), sha256=file_sha,
                          allow=allow_geometry_change, note=note)
    with transaction(archive, "metadata-update", job=job, acquisition=name, lock_timeout=opts.lock_timeout,
                     purpose=f"metadata update {name}") as tx:
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        view = archive.acquisition(name)
        others = [c for c in view.dirty() if c[3:] != "metadata.json"]
        if others:
            view.require_clean(f"update the metadata of {name}")
        stored = (view.path / "metadata.json").read_text()
        committed = dlo.git(view.path, "show", "HEAD:metadata.json")
        old_doc = json.loads(committed)
        new_doc = json.loads(new_json)
        voxel = _check_geometry(view, md, file, allow_geometry_change)
        changes = field_changes(old_doc, new_doc)
        if not changes:
            if stored != committed:  # only a hand edit to undo
                dlo.git(view.path, "checkout", "--", "metadata.json")
            return [*tx.recovered, notneeded("metadata-update", archive.relative(view.path / "metadata.json"),
                                             f"{name}: the metadata is already as {file.name} says")]
        stage = tx.staging(f"metadata-{name}")
        acq = tx.rel(view.path)
        st = tx.rel(stage)
        delta = Changes(dataset=acq, cleanup=[st])
        write_text_atomic(stage / "metadata.json", new_json)
        delta.move(f"{st}/metadata.json", f"{acq}/metadata.json", replace=True)
        trees: dict[str, str] = {}
        if voxel is not None:
            ratio = tuple(n / o for n, o in zip(voxel, view.geometry.voxel_size_nm))
            groups = [("image", view.image_path, view.path / CHECKSUMS, "")]
            groups += [(f"labels/{lv.group}", lv.path, lv.checksums_path, f"labels/{lv.group}/") for lv in view.labels]
            for key, gpath, tsv, prefix in groups:
                text = _rescaled(gpath / "zarr.json", ratio)  # type: ignore[arg-type]
                safe = key.replace("/", "-")
                write_text_atomic(stage / f"{safe}.zarr.json", text)
                delta.move(f"{st}/{safe}.zarr.json", tx.rel(gpath / "zarr.json"), replace=True)
                data = text.encode()
                entries = [e if e.path != f"{prefix}zarr.json" else
                           cks.Entry(e.path, len(data), hashlib.sha256(data).hexdigest()) for e in cks.read_tsv(tsv)]
                cks.write_tsv(stage / f"{safe}.checksums.tsv", entries)
                delta.move(f"{st}/{safe}.checksums.tsv", tx.rel(tsv), replace=True)
                trees[key] = cks.tree_checksum(entries)
        n = len(list((view.path / RUNS).glob("metadata-update-*.json"))) + 1 if (view.path / RUNS).is_dir() else 1
        run_id = f"runs/metadata-update-{n}"
        record = RunRecord(
            id=run_id, action="metadata-update", acquisition=name, started=started, finished=now_iso(),
            agent=current_agent(archive.root), tool=ToolInfo(version=__version__), libraries=library_versions(),
            inputs=[FileRef(path=str(file.resolve()), name=file.name, size=file.stat().st_size, sha256=file_sha,
                            role="metadata")],
            outputs=[OutputRef(kind="file", path="metadata.json")],
            details=MetadataUpdateDetails(changes=changes, geometry_changed=voxel is not None,
                                          previous_sha256=hashlib.sha256(committed.encode()).hexdigest(),
                                          sha256=hashlib.sha256(new_json.encode()).hexdigest(), trees=trees),
            seconds=round(time.monotonic() - t0, 3), note=note,
        )
        write_record(stage / "record.json", record)
        delta.move(f"{st}/record.json", f"{acq}/provenance/{run_id}.json")
        summary = "; ".join(f"{c.field}: {_short(c.old)} -> {_short(c.new)}" for c in changes[:3])
        more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
        subject = f"Update metadata of {name}: {summary}{more}"
        body = "\n".join(f"{c.field}: {json.dumps(c.old)} -> {json.dumps(c.new)}" for c in changes)
        delta.message = f"{subject}\n\n{body}\n" + (f"\n{note}\n" if note else "")
        result = ok("metadata-update", f"{acq}/metadata.json",
                    f"{name}: {len(changes)} field(s) changed" + (", voxel size rewritten in the image and "
                                                                  f"{len(view.labels)} label version(s)"
                                                                  if voxel else ""),
                    acquisition=name, changes=[record_json(c) for c in changes], geometry_changed=voxel is not None,
                    record=f"{acq}/provenance/{run_id}.json", trees=trees)
        tx.apply(delta.steps(), result)
        data = dict(result.data)
        data.update(archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(view.path))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
