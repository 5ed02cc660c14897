"""Label layers of an acquisition: addresses, listing, lineage, reading.

A *layer* (``mito``) is a series of immutable *versions*, each its own OME-NGFF 0.5 label
image under the image's ``labels/`` group::

    acquisitions/ACQ/ACQ.ome.zarr/labels/zarr.json      ome.labels lists every version
    acquisitions/ACQ/ACQ.ome.zarr/labels/mito_v1/       a label image (multiscales +
                                                         image-label + curation lineage)
    acquisitions/ACQ/provenance/labels/mito_v1.json     the run record
    acquisitions/ACQ/provenance/labels/mito_v1.checksums.tsv

``LAYER@vN`` addresses a version everywhere (``mito@v2``); ``LAYER`` alone means the
latest. Each version is a commit in the acquisition's dataset and the archive, tagged
``ACQ/LAYER/vN`` in both. The lineage lives in the label group's ``curation`` attribute
(:class:`~curation.provenance.LabelLineage`); the read model
(:class:`~curation.repository.view.AcquisitionView`) lists and resolves versions.

Unannotated voxels are *unlabeled*, distinct from background (0): they hold the dtype's
maximum (the arrays' fill value), declared in ``image-label.properties``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidNameError, LabelError, NotFoundError
from ..provenance import Extent
from ..provenance.labels import KINDS
from ..records import Result, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, open_archive
from ..repository.names import check_case, check_name
from ..repository.view import LABELS, AcquisitionView, LabelVersion

__all__ = ["KINDS", "LABELS", "LabelVersion", "address_of", "ancestry", "annotated_planes", "check_kind",
           "check_layer", "group_name", "list_labels", "next_version", "parse_address", "read_label_version",
           "resolve", "show_labels", "tag_name", "tagged_versions", "tags_of", "value_counts", "versions"]

_ADDRESS = re.compile(r"^(?P<layer>[^@]+?)(?:@v?(?P<version>\d+))?$")


# --- names and addresses -----------------------------------------------------------------


def check_layer(name: str, field: str = "--layer") -> str:
    """A layer name: a plain folder name, usable in a git tag (no ``.lock`` ending)."""
    check_name(name, what="layer name", field=field)
    if name.lower().endswith(".lock") or re.search(r"_v\d+$", name):
        raise InvalidNameError("the layer name may not end in '.lock' or '_v<number>'", field=field,
                               expected="a layer name such as mito", found=name,
                               hint="version numbers are added by curate: name the layer only")
    return name


def check_kind(kind: str, field: str = "--kind") -> str:
    if kind not in KINDS:
        raise LabelError("unknown label kind", field=field, expected=" | ".join(KINDS), found=kind)
    return kind


def parse_address(text: str, field: str = "LAYER") -> tuple[str, int | None]:
    """``mito@v2`` → ("mito", 2); ``mito`` → ("mito", None) (the latest)."""
    m = _ADDRESS.match(str(text or "").strip())
    if not m:
        raise InvalidNameError("not a label address", field=field, expected="LAYER or LAYER@vN", found=text)
    layer = check_layer(m.group("layer"), field)
    version = m.group("version")
    if version is not None and int(version) < 1:
        raise InvalidNameError("versions count from 1", field=field, expected="LAYER@v1, @v2, ...", found=text)
    return layer, (int(version) if version is not None else None)


def group_name(layer: str, version: int) -> str:
    return f"{layer}_v{version}"


def address_of(layer: str, version: int) -> str:
    return f"{layer}@v{version}"


def tag_name(acquisition: str, layer: str, version: int) -> str:
    return f"{acquisition}/{layer}/v{version}"


# --- what is there -------------------------------------------------------------------------


def labels_dir(archive: Archive, name: str) -> Path:
    return archive.image_path(name) / LABELS


def versions(archive: Archive, name: str, layer: str | None = None) -> list[LabelVersion]:
    """Every label version of acquisition ``name`` (of ``layer`` when given), by layer and
    version. Groups without curation lineage (written by other tools) are skipped."""
    view = archive.acquisition(name)
    return view.labels if layer is None else view.layer(layer)


def resolve(archive: Archive, name: str, address: str, field: str = "LAYER") -> LabelVersion:
    """The version ``address`` names (``LAYER`` alone: the latest); NotFoundError lists
    what exists."""
    return archive.acquisition(name).label(address, field)


def tagged_versions(archive: Archive, name: str, layer: str) -> list[int]:
    """Versions of ``layer`` with a tag in the acquisition's dataset or the archive."""
    out: set[int] = set()
    prefix = f"{name}/{layer}/v"
    for repo in (archive.acquisition_path(name), archive.root):
        for line in dlo.git(repo, "tag", "-l", f"{prefix}*", check=False).splitlines():
            tail = line.strip()[len(prefix):]
            if tail.isdigit():
                out.add(int(tail))
    return sorted(out)


def next_version(view: AcquisitionView, layer: str) -> int:
    """One more than any version ever stored or tagged: version numbers are never reused."""
    check_case(layer, {v.layer for v in view.labels}, what="layer name", field="--layer")
    used = [v.version for v in view.layer(layer)] + tagged_versions(view.archive, view.name, layer)
    if view.labels_dir.is_dir():
        for p in view.labels_dir.glob(f"{layer}_v*"):
            tail = p.name[len(layer) + 2:]
            if tail.isdigit():
                used.append(int(tail))
    return max(used, default=0) + 1


def tags_of(archive: Archive, lv: LabelVersion) -> dict[str, list[str]]:
    """The version's tag in each repository where it exists: {"dataset": [...], "archive": [...]}."""
    tag = tag_name(lv.acquisition, lv.layer, lv.version)
    out = {}
    for key, repo in (("dataset", archive.acquisition_path(lv.acquisition)), ("archive", archive.root)):
        out[key] = [t for t in dlo.git(repo, "tag", "-l", tag, check=False).split() if t]
    return out


# --- reading -------------------------------------------------------------------------------


def read_label_version(archive: Archive | Path | str, name: str, address: str):
    """``(level-0 zarr array, group attributes)`` of the version ``address`` names.

    The attributes hold ``ome`` (multiscales, image-label) and ``curation`` (the lineage);
    voxels equal to the unlabeled value were not annotated.
    """
    archive = archive if isinstance(archive, Archive) else open_archive(archive)
    lv = resolve(archive, name, address)
    return lv.array(0), lv.attrs


def annotated_planes(annotated: Extent, shape: tuple[int, int, int]) -> dict[int, np.ndarray | None]:
    """Per annotated slice: None when annotated whole, else a 2D bool mask of the annotated
    regions (boxes, stops exclusive)."""
    out: dict[int, np.ndarray | None] = {z: None for z in annotated.slices}
    for box in annotated.regions:
        (z0, z1), (y0, y1), (x0, x1) = box.z, box.y, box.x
        for z in range(max(0, z0), min(shape[0], z1)):
            if z in out and out[z] is None:
                continue
            mask = out.get(z)
            if mask is None:
                mask = np.zeros(shape[1:], bool)
            mask[y0:y1, x0:x1] = True
            out[z] = mask
    return dict(sorted(out.items()))


def value_counts(array, lv: LabelVersion) -> dict[int, int]:
    """Voxels per label value on level 0, over the annotated slices and regions."""
    counts: dict[int, int] = {}
    unl = lv.unlabeled_value
    for z, mask in annotated_planes(lv.lineage.annotated, tuple(array.shape)).items():
        plane = np.asarray(array[z])
        values = plane if mask is None else plane[mask]
        vals, n = np.unique(values, return_counts=True)
        for v, c in zip(vals.tolist(), n.tolist()):
            if v != unl:
                counts[int(v)] = counts.get(int(v), 0) + int(c)
    return dict(sorted(counts.items()))


# --- lineage -------------------------------------------------------------------------------


def ancestry(view: AcquisitionView, lv: LabelVersion) -> list[dict[str, Any]]:
    """Every ancestor of ``lv`` (parents, their parents ...), nearest first, each once."""
    out: list[dict[str, Any]] = []
    seen = {lv.address}
    queue = list(lv.parents)
    while queue:
        addr = queue.pop(0)
        if addr in seen:
            continue
        seen.add(addr)
        try:
            p = view.label(addr)
        except (NotFoundError, InvalidNameError):
            out.append({"address": addr, "missing": True})
            continue
        out.append({"address": p.address, "kind": p.kind, "created": p.lineage.created,
                    "creator": p.lineage.creator, "parents": p.parents})
        queue.extend(p.parents)
    return out


def _summary(view: AcquisitionView, lv: LabelVersion, latest: bool) -> dict[str, Any]:
    cur = lv.lineage
    return {
        "acquisition": lv.acquisition,
        "layer": lv.layer,
        "version": lv.version,
        "address": lv.address,
        "latest": latest,
        "kind": cur.kind,
        "path": view.archive.relative(lv.path),
        "group": f"{LABELS}/{lv.group}",
        "parents": list(cur.parents),
        "creator": cur.creator,
        "created": cur.created,
        "note": cur.note,
        "dtype": cur.dtype,
        "unlabeled_value": cur.unlabeled_value,
        "annotated": cur.annotated.model_dump(mode="json", exclude_defaults=True),
        "n_annotated_slices": len(cur.annotated.z_planes()),
    }


def list_labels(archive_path: Path | str, name: str) -> list[Result]:
    """One record per label version of acquisition ``name``."""
    view = open_archive(archive_path).acquisition(name)
    found = view.labels
    last = {v.layer: v.version for v in found}
    out = []
    for lv in found:
        d = _summary(view, lv, last[lv.layer] == lv.version)
        out.append(ok("labels-list", d["path"],
                      f"{lv.address}  {d['kind']}  {d['n_annotated_slices']} annotated slice(s)"
                      + (f"  parents {', '.join(d['parents'])}" if d["parents"] else "")
                      + ("  (latest)" if d["latest"] else ""), **d))
    return out


def show_labels(archive_path: Path | str, name: str, address: str) -> list[Result]:
    """Lineage, annotated slices (as z and as the image's source files), label value
    counts (level 0) and tags of one version."""
    from ..provenance import record_json

    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    lv = view.label(address)
    array = lv.array(0)
    counts = value_counts(array, lv)
    names = lv.names
    sources = view.source_names()
    d = _summary(view, lv, lv.version == view.layer(lv.layer)[-1].version)
    d.update(
        lineage=record_json(lv.lineage),
        ancestry=ancestry(view, lv),
        annotated_slices=list(lv.lineage.annotated.slices),
        annotated_sources=[{"z": z, "source": sources[z] if sources else None} for z in lv.lineage.annotated.slices],
        value_counts={str(k): v for k, v in counts.items()},
        label_names={str(k): v for k, v in names.items()},
        shape=list(array.shape),
        levels=len(lv.attrs["ome"]["multiscales"][0]["datasets"]),
        tags=tags_of(archive, lv),
        provenance=archive.relative(lv.record_path) if lv.record_path.exists() else None,
        archive_commit=_commit_of(archive.root, lv),
        dataset_commit=_commit_of(view.path, lv),
    )
    counts_text = ", ".join(f"{names.get(k) or k}={v}" for k, v in counts.items()) or "none"
    return [ok("labels-show", d["path"], f"{lv.address} ({d['kind']}): {counts_text}", **d)]


def _commit_of(repo: Path, lv: LabelVersion) -> str | None:
    """The commit the version's tag points at in ``repo``."""
    tag = tag_name(lv.acquisition, lv.layer, lv.version)
    out = dlo.git(repo, "rev-list", "-n1", tag, check=False).strip()
    return out or None
