"""Crowd consensus into the archive: ``curate labels aggregate``.

Reads volunteer annotations of an acquisition (a folder of per-annotator mask folders,
or a polyline export ``.csv``/``.json``; see :mod:`curation.labels.annotations`),
checked against the image's slice shape and slice count, combines them with
:func:`curation.labels.consensus.aggregate` (``majority``, ``staple`` or ``cria``; cria's
envelope band width in nm is converted with the image's pixel size) and stores the
consensus as the next version of a layer, of kind ``consensus``. The lineage lists every
annotator with its agreement (Dice against the consensus; STAPLE's sensitivity and
specificity) and outlier flags, in the label group's ``curation`` attribute and in the
run record (``aggregation``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import number
from ..errors import LabelError
from ..provenance import AggregationDetails, ConsensusSummary, Extent
from ..records import Result
from ..repository.archive import now_iso, open_archive
from ..repository.transaction import file_stamps
from . import layers as L
from .store import LabelWrite, PlaneSource, WriteOptions, label_transaction, parse_names, smallest_dtype, store_label_version


def read_annotations(path: Path | str, n_slices: int, slice_shape: tuple[int, int], *,
                     image_sources: Sequence[str] | None = None, numbering: str | None = None):
    """An AnnotationSet from a folder of annotator folders or a polyline file.

    Mask file names are numbered; the numbers map to slices as for ``labels import``
    (matched to the image's source file numbers when ingest recorded them; see
    :func:`curation.labels.importer.resolve_slices`). Polyline files give z directly."""
    from .annotations import AnnotationSet, read_mask_folder, read_polylines
    from .importer import numbers_to_slices, ranges

    path = Path(path)
    if path.is_dir():
        raw = read_mask_folder(path, n_slices=None, slice_shape=slice_shape)
        numbers = raw.slices
        zs, how = numbers_to_slices(numbers, n_slices, image_sources=image_sources, numbering=numbering, path=path,
                                    files=f"slice numbers {ranges(numbers)}")
        to_z = dict(zip(numbers, zs))
        bad = [z for z in zs if not 0 <= z < n_slices]
        if bad:
            raise LabelError("annotated slice out of range", path=path, field=f"slice numbers ({how})",
                             expected=f"0..{n_slices - 1}", found=bad[0])
        return AnnotationSet(annotators=raw.annotators, slice_shape=raw.slice_shape, kind="masks",
                             masks={a: {to_z[n]: m for n, m in per.items()} for a, per in raw.masks.items()},
                             sources=raw.sources, n_slices=n_slices)
    if path.is_file():
        return read_polylines(path, slice_shape=slice_shape, n_slices=n_slices)
    raise LabelError("annotations not found", path=path,
                     expected="a folder of annotator folders, or a polyline .csv/.json")


def aggregate_labels(
    archive_path: Path | str,
    name: str,
    layer: str,
    annotations: Path | str,
    *,
    method: str = "majority",
    band_width_nm: float | None = None,
    polyline_mode: str | None = None,
    width_px: float | None = None,
    note: str = "",
    creator: str | None = None,
    names: Mapping[int, str] | Iterable[str] | None = None,
    parents: Sequence[str] | None = None,
    flag_options: Mapping[str, float] | None = None,
    numbering: str | None = None,
    options: WriteOptions | None = None,
) -> list[Result]:
    """Store the consensus of ``annotations`` as the next version of ``layer``.

    ``polyline_mode`` (``fill``/``trace``) and ``width_px`` turn polylines into masks
    for majority and staple; ``band_width_nm`` draws cria's consensus as an envelope
    band; ``flag_options`` (``dice_floor``, ``mad_k``, ``area_ratio_max``) tune the
    outlier flags.
    """
    from .consensus import METHODS, aggregate

    t0 = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    archive.require_acquisition(name)
    layer, version = L.parse_address(layer, "--layer")
    if version is not None:
        raise LabelError("aggregation creates the next version; give the layer only", field="--layer",
                         expected=layer, found=f"{layer}@v{version}")
    if method not in METHODS:
        raise LabelError("unknown consensus method", field="--method", expected=" | ".join(METHODS), found=method)
    if band_width_nm is not None and method != "cria":
        raise LabelError("--band-width-nm applies to cria only", field="--band-width-nm",
                         expected="--method cria", found=method)
    if band_width_nm is not None:
        band_width_nm = number(band_width_nm, field="--band-width-nm", maximum=1e6, error=LabelError)
    if width_px is not None:
        width_px = number(width_px, field="--width-px", maximum=1e4, error=LabelError)
    label_names = parse_names(names)
    view = archive.acquisition(name)
    nz, ny, nx = view.geometry.shape
    pixel_nm = float(view.geometry.voxel_size_nm[2])

    aset = read_annotations(annotations, nz, (ny, nx), image_sources=view.source_names(), numbering=numbering)
    opts: dict[str, Any] = dict(flag_options or {})
    if method == "cria":
        if band_width_nm is not None:
            opts.update(band_width_nm=float(band_width_nm), pixel_size_nm=pixel_nm)
    elif aset.kind == "polylines":
        if polyline_mode is not None:
            opts["polyline_mode"] = polyline_mode
        if width_px is not None:
            opts["width_px"] = float(width_px)
    res = aggregate(aset, method, **opts)  # type: ignore[arg-type]

    labels = res.labels
    max_label = int(labels.max(initial=0))
    dtype = smallest_dtype(max(max_label, max(label_names, default=0)), field="consensus")
    planes = {z: np.ascontiguousarray(labels[i].astype(dtype)) for i, z in enumerate(res.slices)}
    src = PlaneSource((nz, ny, nx), dtype, res.slices, planes=planes, paths=list(aset.sources))
    summary = res.to_dict()
    stats = summary["annotators"]
    details = AggregationDetails(
        method=method, parameters=summary["parameters"],
        input={"path": str(Path(annotations).resolve()), "format": aset.kind, "n_annotators": len(aset.annotators),
               "slices": list(res.slices)},
        annotators=stats, flagged=list(res.flagged), warnings=list(aset.warnings))
    values = sorted({int(v) for v in np.unique(labels).tolist()})
    job = {"layer": layer, "annotations": str(Path(annotations).resolve()), "stamps": file_stamps(aset.sources),
           "method": method, "options": {k: str(v) for k, v in sorted(opts.items())}, "note": note, "creator": creator,
           "names": {str(k): v for k, v in label_names.items()}, "parents": list(parents or []) or None}
    with label_transaction(archive, name, "labels-aggregate", job=job, options=options) as (tx, view):
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        # a consensus is computed from the annotations alone: it descends from an earlier
        # version only when --parent says so
        parent_list = [view.label(p, field="--parent").address for p in parents or []]
        w = LabelWrite(layer=layer, source=src, annotated=Extent(slices=list(res.slices)), kind="consensus",
                       parents=parent_list, sources=list(aset.sources), note=note, creator=creator, names=label_names,
                       label_values=values, action="labels-aggregate", started=started, details=details,
                       consensus=ConsensusSummary(method=method, parameters=summary["parameters"],
                                                  annotators=stats, flagged=list(res.flagged)))
        result = store_label_version(tx, view, w, options)
    data = dict(result.data)
    data.update(method=method, annotators=stats, flagged=list(res.flagged), parameters=summary["parameters"],
                seconds=round(time.monotonic() - t0, 3), warnings=list(aset.warnings))
    flagged = ", ".join(res.flagged) or "none"
    message = f"{result.message}; {method} consensus of {len(aset.annotators)} annotator(s), flagged: {flagged}"
    if aset.warnings:
        message += "; warning: " + "; ".join(aset.warnings)
    return [*tx.recovered, result.model_copy(update={"data": data, "message": message})]
