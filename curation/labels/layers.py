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
``ACQ/LAYER/vN`` in both. The lineage lives in the label group's ``curation`` attribute:
``layer``, ``version``, ``address``, ``kind``, ``parents``, ``creator``, ``created``,
``tool_version``, ``sources``, ``annotated``, ``note``, ``unlabeled_value``.

Unannotated voxels are *unlabeled*, distinct from background (0): they hold the dtype's
maximum (the arrays' fill value), declared in ``image-label.properties``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidNameError, LabelError, NotFoundError
from ..records import Result, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, open_archive
from ..repository.names import check_name

LABELS = "labels"
PROVENANCE = "provenance/labels"
#: ``instances``: one id per object, made by connected components (``curate analyze``)
KINDS = ("ground-truth", "prediction", "consensus", "instances")
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


@dataclass(frozen=True)
class LabelVersion:
    """One stored label version."""

    acquisition: str
    layer: str
    version: int
    group: str  # folder name under labels/, e.g. mito_v1
    path: Path  # the label group folder
    attrs: dict[str, Any] = field(default_factory=dict, repr=False)  # the group's attributes

    @property
    def address(self) -> str:
        return address_of(self.layer, self.version)

    @property
    def lineage(self) -> dict[str, Any]:
        return dict(self.attrs.get("curation", {}))

    @property
    def image_label(self) -> dict[str, Any]:
        return dict(self.attrs.get("ome", {}).get("image-label", {}))

    @property
    def unlabeled_value(self) -> int | None:
        return self.lineage.get("unlabeled_value")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def labels_dir(archive: Archive, name: str) -> Path:
    return archive.image_path(name) / LABELS


def listing(archive: Archive, name: str) -> list[str]:
    """The entries of ``labels/zarr.json`` (``ome.labels``), in order."""
    doc = _read_json(labels_dir(archive, name) / "zarr.json")
    return list(doc.get("attributes", {}).get("ome", {}).get("labels", []))


def versions(archive: Archive, name: str, layer: str | None = None) -> list[LabelVersion]:
    """Every label version of acquisition ``name`` (of ``layer`` when given), by layer and
    version. Groups without curation lineage (written by other tools) are skipped."""
    archive.require_acquisition(name)
    out = []
    base = labels_dir(archive, name)
    for entry in listing(archive, name):
        attrs = _read_json(base / entry / "zarr.json").get("attributes", {})
        cur = attrs.get("curation", {})
        if not isinstance(cur.get("version"), int) or not cur.get("layer"):
            continue
        if layer is not None and cur["layer"] != layer:
            continue
        out.append(LabelVersion(name, cur["layer"], cur["version"], entry, base / entry, attrs))
    return sorted(out, key=lambda v: (v.layer, v.version))




def _known(archive: Archive, name: str) -> str:
    found = versions(archive, name)
    if not found:
        return "no label layers yet"
    by: dict[str, list[int]] = {}
    for v in found:
        by.setdefault(v.layer, []).append(v.version)
    return "; ".join(f"{layer}@v{', v'.join(map(str, vs))}" for layer, vs in sorted(by.items()))


def resolve(archive: Archive, name: str, address: str, field: str = "LAYER") -> LabelVersion:
    """The version ``address`` names (``LAYER`` alone: the latest); NotFoundError lists
    what exists."""
    layer, version = parse_address(address, field)
    found = versions(archive, name, layer)
    if not found:
        raise NotFoundError(f"no label layer {layer!r} in acquisition {name!r}", field=field,
                            expected=_known(archive, name), found=address)
    if version is None:
        return found[-1]
    for v in found:
        if v.version == version:
            return v
    raise NotFoundError(f"layer {layer!r} has no version {version}", field=field,
                        expected=_known(archive, name), found=address)


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


def next_version(archive: Archive, name: str, layer: str) -> int:
    """One more than any version ever stored or tagged: version numbers are never reused."""
    used = [v.version for v in versions(archive, name, layer)] + tagged_versions(archive, name, layer)
    base = labels_dir(archive, name)
    if base.is_dir():
        for p in base.glob(f"{layer}_v*"):
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

    The attributes hold ``ome`` (multiscales, image-label) and ``curation`` (lineage,
    ``annotated``, ``unlabeled_value``); voxels equal to the unlabeled value were not
    annotated.
    """
    import zarr

    archive = archive if isinstance(archive, Archive) else open_archive(archive)
    lv = resolve(archive, name, address)
    group = zarr.open_group(str(lv.path), mode="r", zarr_format=3)
    path = lv.attrs["ome"]["multiscales"][0]["datasets"][0]["path"]
    return group[path], lv.attrs


def annotated_slices(annotated: dict[str, Any]) -> list[int]:
    """Slices annotated whole."""
    return sorted(int(z) for z in annotated.get("slices", []))


def annotated_z(annotated: dict[str, Any]) -> list[int]:
    """Every slice with some annotation: whole slices and slices crossed by a region."""
    zs = set(annotated_slices(annotated))
    for box in annotated.get("regions", []):
        z0, z1 = box.get("z", [0, 0])
        zs.update(range(int(z0), int(z1)))
    return sorted(zs)


def annotated_planes(annotated: dict[str, Any], shape: tuple[int, int, int]) -> dict[int, np.ndarray | None]:
    """Per annotated slice: None when annotated whole, else a 2D bool mask of the annotated
    regions (bounding boxes ``{"z": [z0, z1], "y": [...], "x": [...]}``, stops exclusive)."""
    out: dict[int, np.ndarray | None] = {z: None for z in annotated_slices(annotated)}
    for box in annotated.get("regions", []):
        z0, z1 = box.get("z", [0, shape[0]])
        y0, y1 = box.get("y", [0, shape[1]])
        x0, x1 = box.get("x", [0, shape[2]])
        for z in range(max(0, int(z0)), min(shape[0], int(z1))):
            if z in out and out[z] is None:
                continue
            mask = out.get(z)
            if mask is None:
                mask = np.zeros(shape[1:], bool)
            mask[int(y0):int(y1), int(x0):int(x1)] = True
            out[z] = mask
    return dict(sorted(out.items()))


def value_counts(array, lv: LabelVersion) -> dict[int, int]:
    """Voxels per label value on level 0, over the annotated slices and regions."""
    counts: dict[int, int] = {}
    unl = lv.unlabeled_value
    for z, mask in annotated_planes(lv.lineage.get("annotated", {}), tuple(array.shape)).items():
        plane = np.asarray(array[z])
        values = plane if mask is None else plane[mask]
        vals, n = np.unique(values, return_counts=True)
        for v, c in zip(vals.tolist(), n.tolist()):
            if v != unl:
                counts[int(v)] = counts.get(int(v), 0) + int(c)
    return dict(sorted(counts.items()))


# --- lineage -------------------------------------------------------------------------------


def ancestry(archive: Archive, name: str, lv: LabelVersion) -> list[dict[str, Any]]:
    """Every ancestor of ``lv`` (parents, their parents ...), nearest first, each once."""
    out: list[dict[str, Any]] = []
    seen = {lv.address}
    queue = list(lv.lineage.get("parents", []))
    while queue:
        addr = queue.pop(0)
        if addr in seen:
            continue
        seen.add(addr)
        try:
            p = resolve(archive, name, addr)
        except (NotFoundError, InvalidNameError):
            out.append({"address": addr, "missing": True})
            continue
        out.append({"address": p.address, "kind": p.lineage.get("kind"), "created": p.lineage.get("created"),
                    "creator": p.lineage.get("creator"), "parents": p.lineage.get("parents", [])})
        queue.extend(p.lineage.get("parents", []))
    return out


def _summary(archive: Archive, lv: LabelVersion, latest: bool) -> dict[str, Any]:
    cur = lv.lineage
    return {
        "acquisition": lv.acquisition,
        "layer": lv.layer,
        "version": lv.version,
        "address": lv.address,
        "latest": latest,
        "kind": cur.get("kind"),
        "path": archive.relative(lv.path),
        "group": f"{LABELS}/{lv.group}",
        "parents": cur.get("parents", []),
        "creator": cur.get("creator"),
        "created": cur.get("created"),
        "note": cur.get("note", ""),
        "dtype": cur.get("dtype"),
        "unlabeled_value": cur.get("unlabeled_value"),
        "annotated": cur.get("annotated", {}),
        "n_annotated_slices": len(annotated_z(cur.get("annotated", {}))),
    }


def list_labels(archive_path: Path | str, name: str) -> list[Result]:
    """One record per label version of acquisition ``name``."""
    archive = open_archive(archive_path)
    found = versions(archive, name)
    last = {v.layer: v.version for v in found}
    out = []
    for lv in found:
        d = _summary(archive, lv, last[lv.layer] == lv.version)
        out.append(ok("labels-list", d["path"],
                      f"{lv.address}  {d['kind']}  {d['n_annotated_slices']} annotated slice(s)"
                      + (f"  parents {', '.join(d['parents'])}" if d["parents"] else "")
                      + ("  (latest)" if d["latest"] else ""), **d))
    return out


def show_labels(archive_path: Path | str, name: str, address: str) -> list[Result]:
    """Lineage, annotated slices, label value counts (level 0) and tags of one version."""
    archive = open_archive(archive_path)
    lv = resolve(archive, name, address)
    versions_of = [v.version for v in versions(archive, name, lv.layer)]
    array, attrs = read_label_version(archive, name, lv.address)
    counts = value_counts(array, lv)
    names = {p.get("label-value"): p.get("name") for p in lv.image_label.get("properties", [])}
    prov_path = archive.acquisition_path(name) / PROVENANCE / f"{lv.group}.json"
    d = _summary(archive, lv, lv.version == max(versions_of))
    d.update(
        lineage=lv.lineage,
        ancestry=ancestry(archive, name, lv),
        annotated_slices=annotated_slices(lv.lineage.get("annotated", {})),
        value_counts={str(k): v for k, v in counts.items()},
        label_names={str(k): v for k, v in names.items() if k is not None},
        shape=list(array.shape),
        levels=len(attrs["ome"]["multiscales"][0]["datasets"]),
        tags=tags_of(archive, lv),
        provenance=archive.relative(prov_path) if prov_path.exists() else None,
        commit=_commit_of(archive.root, lv),
        dataset_commit=_commit_of(archive.acquisition_path(name), lv),
    )
    counts_text = ", ".join(f"{names.get(k) or k}={v}" for k, v in counts.items()) or "none"
    return [ok("labels-show", d["path"], f"{lv.address} ({d['kind']}): {counts_text}", **d)]


def _commit_of(repo: Path, lv: LabelVersion) -> str | None:
    """The commit the version's tag points at in ``repo``."""
    tag = tag_name(lv.acquisition, lv.layer, lv.version)
    out = dlo.git(repo, "rev-list", "-n1", tag, check=False).strip()
    return out or None
