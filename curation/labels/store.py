"""Writing one label version into the archive: the path shared by import, aggregation
and model predictions.

:func:`write_label_version` takes any :class:`~curation.readers.base.Source` of the
image's shape and an unsigned integer dtype whose maximum means *unlabeled*, and:

1. checks the layer name, kind, shape and dtype, and resolves the version (one more
   than any version ever stored or tagged) and its parents, under the archive lock;
2. writes the label pyramid with the Dask engine into ``.curation/staging/`` (mode
   downsampling, the same levels, chunks and shards as the image; unannotated shards
   are skipped through the source's ``is_fill`` and never stored, as the unlabeled value
   is the arrays' fill value), validates it as an NGFF 0.5 label image and records its
   checksums;
3. moves it to ``ACQ.ome.zarr/labels/LAYER_vN``, lists it in ``labels/zarr.json``,
   writes ``provenance/labels/LAYER_vN.json`` and ``.checksums.tsv``, commits the
   acquisition's dataset, then the archive, and tags both ``ACQ/LAYER/vN``.

Any failure leaves the archive exactly as it was: no new files, commits or tags.
"""

from __future__ import annotations

import colorsys
import getpass
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..engine import Engine, default_memory_limit, parse_bytes, plan_concurrency
from ..errors import ImmutableError, LabelError, NotFoundError
from ..omezarr import checksum as cks
from ..omezarr.layout import plan_pyramid
from ..omezarr.ngff import multiscales, validate_label
from ..omezarr.writer import ArraySpec, Manifest, build_pyramid, create_arrays, forget_stores, remove_tree
from ..readers.base import HeaderMetadata, Source
from ..records import Result, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, now_iso, open_archive
from . import layers as L

#: label dtypes, smallest first; the maximum of each is its unlabeled value
LABEL_DTYPES = ("uint8", "uint16", "uint32")
#: above this many label values, colours and properties list only background, unlabeled
#: and named values (an instance segmentation would otherwise bloat zarr.json)
MAX_LISTED_VALUES = 1024
#: planes kept in memory between the check and the write when they fit in this
IN_MEMORY_BYTES = 256 * 1024**2


#: keys of the ``curation`` attribute and of the run record that callers cannot replace
LINEAGE_KEYS = frozenset({"layer", "version", "address", "kind", "parents", "creator", "created", "tool_version",
                          "sources", "annotated", "note", "unlabeled_value", "dtype", "label_values"})
PROVENANCE_KEYS = frozenset({"schema_version", "schemaKey", "action", "acquisition", "layer", "version", "address",
                             "group", "kind", "parents", "creator", "agent", "started", "finished", "tool", "inputs",
                             "outputs", "annotated", "note", "tree_sha256", "n_files", "bytes", "n_shards",
                             "stored_shards"})


@dataclass(frozen=True)
class WriteOptions:
    scheduler: str | None = None
    client: Any = None
    memory_limit: int | str | None = None
    lock_timeout: float = 0


# --- dtypes, colours, names --------------------------------------------------------------


def smallest_dtype(max_label: int, *, path: Any = None, field: str | None = None) -> np.dtype:
    """The smallest unsigned dtype holding ``max_label + 1`` (its maximum is unlabeled)."""
    for name in LABEL_DTYPES:
        if int(max_label) < np.iinfo(name).max:
            return np.dtype(name)
    raise LabelError("label values do not fit in uint32 with room for the unlabeled value", path=path,
                     field=field, expected=f"labels 0..{np.iinfo('uint32').max - 1}", found=int(max_label))


def unlabeled_value(dtype: Any) -> int:
    dt = np.dtype(dtype)
    if dt.kind != "u" or dt.name not in LABEL_DTYPES:
        raise LabelError("a label layer needs an unsigned integer dtype", field="dtype",
                         expected=" | ".join(LABEL_DTYPES), found=dt.name)
    return int(np.iinfo(dt).max)


def parse_names(names: Mapping[int, str] | Iterable[str] | None, field: str = "--names") -> dict[int, str]:
    """``{1: "mitochondrion"}`` from a mapping or from ``["1=mitochondrion", ...]``."""
    if not names:
        return {}
    if isinstance(names, Mapping):
        items = list(names.items())
    else:
        items = []
        for text in names:
            m = re.fullmatch(r"\s*(\d+)\s*=\s*(.*\S)\s*", str(text))
            if not m:
                raise LabelError("not a label name", field=field, expected="VALUE=NAME, e.g. 1=mitochondrion",
                                 found=text)
            items.append((m.group(1), m.group(2)))
    out = {}
    for k, v in items:
        try:
            key = int(k)
        except (TypeError, ValueError):
            raise LabelError("a label value is an integer", field=field, expected="VALUE=NAME", found=k) from None
        if key < 0:
            raise LabelError("label values are not negative", field=field, expected=">= 0", found=key)
        out[key] = str(v)
    return dict(sorted(out.items()))


def _rgba(value: int) -> list[int]:
    """A distinct, bright colour per label value (golden-ratio hues)."""
    h = (value * 0.618033988749895) % 1.0
    s = 0.65 + 0.3 * ((value * 0.38196601125) % 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, 0.95)
    return [int(round(r * 255)), int(round(g * 255)), int(round(b * 255)), 255]


def image_label(values: Iterable[int], unlabeled: int, names: Mapping[int, str]) -> dict[str, Any]:
    """NGFF ``image-label``: a colour and a property per label value, background (0) and
    unlabeled (transparent) included, and ``source`` the image two levels up."""
    listed = sorted({int(v) for v in values if int(v) != unlabeled} | {0})
    if len(listed) > MAX_LISTED_VALUES:
        listed = sorted({0} | {k for k in names if k != unlabeled})
    colors, props = [], []
    for v in listed:
        colors.append({"label-value": v, "rgba": [0, 0, 0, 0] if v == 0 else _rgba(v)})
        props.append({"label-value": v, "name": names.get(v, "background" if v == 0 else f"label {v}")})
    colors.append({"label-value": unlabeled, "rgba": [255, 255, 255, 0]})
    props.append({"label-value": unlabeled, "name": "unlabeled"})
    return {"colors": colors, "properties": props, "source": {"image": "../../"}}


def default_creator(repo: Path) -> str:
    """The git identity (``Name <email>``) committing in ``repo``, else the login name."""
    ident = dlo.git(repo, "var", "GIT_AUTHOR_IDENT", check=False).strip()
    m = re.match(r"^(.*?)\s+\d+\s+[+-]\d{4}$", ident)
    if m and m.group(1).strip():
        return m.group(1).strip()
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no login name in some containers
        return "unknown"


# --- a source of label planes --------------------------------------------------------------


class PlaneSource(Source):
    """A label volume given as whole annotated slices; every other voxel is unlabeled.

    ``planes`` maps a slice index to its 2D array (already in ``dtype``); a slice listed
    in ``slices`` but not in ``planes`` is read on demand by ``load(z)``. ``is_fill`` tells
    the writer which shards hold no annotated slice, so they are never stored.
    """

    reader = "label-planes"

    def __init__(
        self,
        shape: tuple[int, int, int],
        dtype: Any,
        slices: Sequence[int],
        planes: Mapping[int, np.ndarray] | None = None,
        load: Callable[[int], np.ndarray] | None = None,
        paths: Sequence[Path] = (),
    ) -> None:
        self._shape = tuple(int(n) for n in shape)
        self._dtype = np.dtype(dtype)
        self.fill = unlabeled_value(self._dtype)
        self.slices = sorted(int(z) for z in slices)
        self._set = frozenset(self.slices)
        self.planes = dict(planes or {})
        self.load = load
        self._paths = [Path(p) for p in paths]
        for z, p in self.planes.items():
            if tuple(p.shape) != self._shape[1:] or p.dtype != self._dtype:
                raise LabelError("a label plane has the wrong shape or dtype", field=f"slice {z}",
                                 expected=f"{self._shape[1:]} {self._dtype.name}", found=f"{tuple(p.shape)} {p.dtype}")
        missing = [z for z in self.slices if z not in self.planes]
        if missing and load is None:
            raise LabelError("no data for annotated slices", field="slices", expected="a plane per slice",
                             found=missing[:5])

    @property
    def paths(self) -> list[Path]:
        return self._paths

    @property
    def header(self) -> HeaderMetadata:
        return HeaderMetadata(shape=self._shape, dtype=self._dtype.name)  # type: ignore[arg-type]

    def plane(self, z: int) -> np.ndarray:
        p = self.planes.get(z)
        if p is None:
            assert self.load is not None
            p = self.load(z)
        return p

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = region
        out = np.full((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.fill, self._dtype)
        for z in range(zs.start, zs.stop):
            if z in self._set:
                out[z - zs.start] = self.plane(z)[ys, xs]
        return out

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        zs = region[0]
        return not any(zs.start <= z < zs.stop for z in self.slices)


# --- the image this layer labels --------------------------------------------------------------


def image_geometry(archive: Archive, name: str) -> dict[str, Any]:
    """Shape, voxel size (nm), chunk, shard and number of levels of the acquisition's image."""
    acq = archive.require_acquisition(name)
    path = acq / "provenance" / "ingest.json"
    try:
        plan = json.loads(path.read_text())["image"]["plan"]
        return {"shape": tuple(plan["shape"]), "voxel_size_nm": tuple(plan["levels"][0]["scale_nm"]),
                "chunk": tuple(plan["chunk"]), "shard": tuple(plan["shard"]), "levels": len(plan["levels"])}
    except (OSError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise NotFoundError("the acquisition's ingest record has no image plan", path=path,
                            field="image.plan", expected="provenance of `curate ingest`",
                            found=type(exc).__name__) from exc


# --- the write -------------------------------------------------------------------------------


def check_annotated(annotated: Mapping[str, Any], shape: tuple[int, int, int]) -> dict[str, Any]:
    """``annotated`` checked against the volume: slices inside it, regions as
    ``{"z": [start, stop], "y": [...], "x": [...]}`` inside it and not empty."""
    out: dict[str, Any] = {}
    unknown = sorted(set(annotated) - {"slices", "regions"})
    if unknown:
        raise LabelError("unknown key in the annotated record", field="annotated", expected="slices, regions",
                         found=unknown)
    if "slices" in annotated:
        zs = sorted({int(z) for z in annotated["slices"]})
        bad = [z for z in zs if not 0 <= z < shape[0]]
        if bad:
            raise LabelError("annotated slice outside the volume", field="annotated.slices",
                             expected=f"0..{shape[0] - 1}", found=bad[0])
        out["slices"] = zs
    if "regions" in annotated:
        regions = []
        for k, box in enumerate(annotated["regions"]):
            clean = {}
            for ax, n in zip("zyx", shape):
                lo, hi = (int(v) for v in box.get(ax, [0, n]))
                if not 0 <= lo < hi <= n:
                    raise LabelError("annotated region outside the volume or empty", field=f"annotated.regions[{k}].{ax}",
                                     expected=f"[start, stop] within 0..{n}", found=[lo, hi])
                clean[ax] = [lo, hi]
            regions.append(clean)
        out["regions"] = regions
    if not out.get("slices") and not out.get("regions"):
        raise LabelError("nothing annotated", field="annotated", expected="slices and/or regions", found="none")
    return out


def _check_clean(archive: Archive, name: str) -> None:
    """Refuse to write while stored label versions have uncommitted changes: saving them
    would alter an immutable version."""
    acq = archive.acquisition_path(name)
    rel = [f"{archive.image_path(name).name}/{L.LABELS}", L.PROVENANCE]
    out = dlo.git(acq, "status", "--porcelain", "--untracked-files=all", "--", *rel, check=False).strip()
    if out:
        first = out.splitlines()[0][3:]
        raise ImmutableError("stored label versions have uncommitted changes", path=archive.relative(acq / first),
                             expected="a clean labels/ folder", found=f"{len(out.splitlines())} changed file(s)",
                             hint=f"restore them: git -C {acq} checkout -- . && git -C {acq} clean -fd -- {' '.join(rel)}")


def _resolve_parents(archive: Archive, name: str, layer: str, parents: Sequence[str] | None) -> list[str]:
    if parents is None:  # default: the previous version of the same layer
        prev = L.versions(archive, name, layer)
        return [prev[-1].address] if prev else []
    return [L.resolve(archive, name, p, field="--parent").address for p in parents]


def _hash_sources(sources: Sequence[Path | str | Mapping[str, Any]]) -> tuple[list[str], list[dict]]:
    paths, given = [], []
    for s in sources:
        if isinstance(s, Mapping):
            given.append(dict(s))
        else:
            paths.append(str(Path(s).resolve()))
    return paths, given


def write_label_version(
    archive: Archive | Path | str,
    name: str,
    layer: str,
    source: Source,
    *,
    kind: str = "ground-truth",
    parents: Sequence[str] | None = None,
    annotated: Mapping[str, Any],
    sources: Sequence[Path | str | Mapping[str, Any]] = (),
    note: str = "",
    creator: str | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
    names: Mapping[int, str] | None = None,
    label_values: Iterable[int] | None = None,
    version: int | None = None,
    action: str = "labels-write",
    started: str | None = None,
    options: WriteOptions | None = None,
) -> Result:
    """Store ``source`` as the next version of ``layer`` (see the module docstring).

    ``annotated``: ``{"slices": [...]}`` and/or ``{"regions": [{"z": [z0, z1], "y": [..],
    "x": [..]}]}`` (stops exclusive). ``parents``: addresses; None means the previous
    version of ``layer``. ``sources``: input files (hashed here) or ready records
    ``{path, name, size, sha256}``. ``label_values``: the values present (else found by
    reading level 0 back). ``version``: refused unless it is the next one (an existing
    version is immutable). ``extra_attrs`` join the ``curation`` attribute and
    ``extra_provenance`` the run record.
    """
    t0 = time.monotonic()
    started = started or now_iso()
    opts = options or WriteOptions()
    archive = archive if isinstance(archive, Archive) else open_archive(archive)
    acq = archive.require_acquisition(name)
    L.check_layer(layer)
    L.check_kind(kind)
    geo = image_geometry(archive, name)
    if tuple(source.shape) != tuple(geo["shape"]):
        raise LabelError("the label volume's shape differs from the image's", path=archive.relative(acq),
                         field="shape", expected=tuple(geo["shape"]), found=tuple(source.shape))
    dtype = np.dtype(source.dtype)
    unl = unlabeled_value(dtype)
    names = dict(names or {})
    if unl in names or any(k > unl for k in names):
        raise LabelError("a label name is given for a value the dtype reserves or cannot hold", field="--names",
                         expected=f"values 0..{unl - 1} ({unl} is unlabeled in {dtype.name})",
                         found=sorted(names))
    annotated = check_annotated(annotated, tuple(geo["shape"]))
    for what, extra, core in (("extra_attrs", extra_attrs, LINEAGE_KEYS), ("extra_provenance", extra_provenance,
                                                                          PROVENANCE_KEYS)):
        clash = sorted(set(extra or {}) & core)
        if clash:
            raise LabelError("extra keys would replace recorded ones", field=what,
                             expected=f"keys other than {', '.join(sorted(core))}", found=clash)
    creator = creator or default_creator(archive.root)
    memory_limit = parse_bytes(opts.memory_limit) or default_memory_limit()

    with archive.lock(opts.lock_timeout, purpose=f"label {name} {layer}"):
        _check_clean(archive, name)
        n = L.next_version(archive, name, layer)
        if version is not None and version != n:
            existing = [v.version for v in L.versions(archive, name, layer)] + L.tagged_versions(archive, name, layer)
            if version in existing or version < n:
                raise ImmutableError(f"{L.address_of(layer, version)} exists and versions are immutable",
                                     path=archive.relative(L.labels_dir(archive, name) / L.group_name(layer, version)),
                                     field="--layer", expected=f"a new version, {L.address_of(layer, n)}",
                                     found=L.address_of(layer, version))
            raise LabelError("versions are numbered in order", field="--layer",
                             expected=L.address_of(layer, n), found=L.address_of(layer, version))
        parent_list = _resolve_parents(archive, name, layer, parents)
        group = L.group_name(layer, n)
        address = L.address_of(layer, n)
        target = L.labels_dir(archive, name) / group
        if target.exists():  # a stray folder: never written into
            raise ImmutableError("a label group with this name is already there", path=archive.relative(target),
                                 expected="a new group", found=group)

        stage = archive.staging_root / f"labels-{name}-{group}"
        zroot = stage / group
        forget_stores(str(zroot))
        remove_tree(stage)
        stage.mkdir(parents=True)
        try:
            plan = plan_pyramid(geo["shape"], geo["voxel_size_nm"], dtype.name, chunk=geo["chunk"],
                                shard=geo["shard"], max_levels=geo["levels"])
            spec = ArraySpec(str(zroot), plan, str(stage), source, kind="label", prefix="", fill_value=unl)
            create_arrays(spec, multiscales(plan, address, kind="label"))
            manifest = Manifest(stage / "manifest.jsonl", {"label": address, "started": started})
            manifest.start()
            hash_paths, given = _hash_sources(sources)
            try:
                with Engine(opts.scheduler, client=opts.client, memory_limit=memory_limit,
                            concurrency=plan_concurrency(memory_limit, plan.shard_bytes())) as engine:
                    result = build_pyramid(spec, engine, manifest, hash_paths=hash_paths)
            finally:
                manifest.close()
                forget_stores(str(zroot))
            files = {f["path"]: f for f in result.files}
            source_records = given + [
                {"path": p, "name": Path(p).name, "size": files[p]["size"], "sha256": files[p]["sha256"]}
                for p in hash_paths]
            values = sorted({int(v) for v in label_values}) if label_values is not None else _values_on_disk(zroot, plan, result)
            created = now_iso()
            lineage = {
                "layer": layer, "version": n, "address": address, "kind": kind, "parents": parent_list,
                "creator": creator, "created": created, "tool_version": __version__,
                "sources": source_records, "annotated": dict(annotated), "note": note or "",
                "unlabeled_value": unl, "dtype": dtype.name,
                "label_values": [v for v in values if v != unl][:MAX_LISTED_VALUES],
                **dict(extra_attrs or {}),
            }
            attrs = multiscales(plan, address, kind="label", extra={"image-label": image_label(values, unl, names)})
            attrs["curation"] = lineage
            _put_group_attrs(zroot, attrs)
            validate_label(zroot, "")
            prefix = f"{L.LABELS}/{group}/"
            entries = cks.entries_from_records(zroot, result.shards, prefix=prefix)
            tree = cks.tree_checksum(entries)
            prov = {
                "schema_version": "1.0.0", "schemaKey": "LabelVersionProvenance", "action": action,
                "acquisition": name, "layer": layer, "version": n, "address": address,
                "group": f"{L.LABELS}/{group}", "kind": kind, "parents": parent_list,
                "creator": creator, "agent": {"name": creator, "software": f"curation {__version__}",
                                              "user": _login()},
                "started": started, "finished": now_iso(),
                "tool": {"name": "curation", "version": __version__},
                "inputs": {"sources": source_records, "parents": parent_list},
                "outputs": {"group": f"{archive.image_path(name).name}/{L.LABELS}/{group}",
                            "dtype": dtype.name, "unlabeled_value": unl, "label_values": lineage["label_values"],
                            "levels": len(plan.levels)},
                "annotated": dict(annotated), "note": note or "",
                "tree_sha256": tree, "n_files": len(entries), "bytes": sum(e.size for e in entries),
                "n_shards": len(result.shards),
                "stored_shards": sum(1 for s in result.shards if s.nbytes),
                **dict(extra_provenance or {}),
            }
            message = (f"Label {name}: {address} ({kind}, {_describe(annotated)})"
                       + (f" from {', '.join(parent_list)}" if parent_list else ""))
            tag = L.tag_name(name, layer, n)
            commits = _register(archive, name, zroot, target, group, prov, entries, message, tag)
        finally:
            forget_stores(str(zroot))
            remove_tree(stage)

    seconds = time.monotonic() - t0
    return ok(
        action, archive.relative(target),
        f"stored {address} ({kind}) in {name}: {_describe(annotated)}, {dtype.name}, "
        f"{prov['stored_shards']} of {prov['n_shards']} shards stored, tag {tag}",
        acquisition=name, layer=layer, version=n, address=address, kind=kind, group=f"{L.LABELS}/{group}",
        parents=parent_list, creator=creator, dtype=dtype.name, unlabeled_value=unl,
        label_values=lineage["label_values"], annotated=dict(annotated), tag=tag,
        tree_sha256=tree, n_files=len(entries), bytes=prov["bytes"], n_shards=prov["n_shards"],
        stored_shards=prov["stored_shards"], seconds=round(seconds, 3),
        provenance=archive.relative(acq / L.PROVENANCE / f"{group}.json"), **commits,
    )


def _login() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover
        return None


def _describe(annotated: Mapping[str, Any]) -> str:
    parts = []
    zs = L.annotated_slices(dict(annotated))
    if zs:
        parts.append(f"{len(zs)} annotated slice(s)")
    if annotated.get("regions"):
        parts.append(f"{len(annotated['regions'])} annotated region(s)")
    return ", ".join(parts) or "nothing annotated"


def _put_group_attrs(zroot: Path, attrs: dict) -> None:
    """Replace the group's attributes (zarr.json written whole, then renamed)."""
    path = zroot / "zarr.json"
    doc = json.loads(path.read_text())
    doc["attributes"] = attrs
    tmp = path.with_name("zarr.json.partial")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


def _values_on_disk(zroot: Path, plan, result) -> list[int]:
    """Label values present in the stored level-0 shards."""
    import zarr

    arr = zarr.open_array(str(zroot / plan.levels[0].path), mode="r")
    found: set[int] = set()
    for s in result.shards:
        if s.level == 0 and s.nbytes:
            found.update(int(v) for v in np.unique(arr[plan.region(0, s.index)]).tolist())
    return sorted(found)


# --- registering, atomically -----------------------------------------------------------------


def _listing_doc(labels_json: Path) -> dict:
    if labels_json.exists():
        return json.loads(labels_json.read_text())
    return {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "labels": []}}}


def _register(archive: Archive, name: str, zroot: Path, target: Path, group: str, prov: dict,
              entries: list, message: str, tag: str) -> dict[str, Any]:
    """Move the staged group into place, record it and commit + tag both repositories;
    on any failure put everything back as it was."""
    acq = archive.acquisition_path(name)
    labels = target.parent
    labels_json = labels / "zarr.json"
    prov_dir = acq / L.PROVENANCE
    prov_json = prov_dir / f"{group}.json"
    prov_tsv = prov_dir / f"{group}.checksums.tsv"
    before = {"acq": dlo.head(acq), "root": dlo.head(archive.root)}
    old_listing = labels_json.read_bytes() if labels_json.exists() else None
    made_labels = not labels.exists()
    made_prov = [p for p in (acq / "provenance", prov_dir) if not p.exists()]
    tagged: list[Path] = []
    try:
        labels.mkdir(exist_ok=True)
        os.rename(zroot, target)
        doc = _listing_doc(labels_json)
        ome = doc.setdefault("attributes", {}).setdefault("ome", {"version": "0.5"})
        ome.setdefault("version", "0.5")
        ome["labels"] = [e for e in ome.get("labels", []) if e != group] + [group]
        labels_json.write_text(json.dumps(doc, indent=2) + "\n")
        prov_dir.mkdir(parents=True, exist_ok=True)
        cks.write_tsv(prov_tsv, entries)
        prov_json.write_text(json.dumps(prov, indent=2, default=str) + "\n")
        image = archive.image_path(name).name
        dlo.annex_known(acq, [(f"{image}/{e.path}", e.size, e.sha256) for e in entries])
        dlo.save(acq, message, [labels, prov_dir])
        dlo.tag(acq, tag, message)
        tagged.append(acq)
        dlo.save(archive.root, message, [acq])
        dlo.tag(archive.root, tag, message)
        tagged.append(archive.root)
    except BaseException:
        _rollback(archive, acq, tag, tagged, before, target, (prov_json, prov_tsv), labels_json, old_listing,
                  labels if made_labels else None, made_prov)
        raise
    return {"commit": dlo.head(archive.root), "dataset_commit": dlo.head(acq)}


def _rollback(archive: Archive, acq: Path, tag: str, tagged: list[Path], before: dict, target: Path,
              files: tuple[Path, ...], labels_json: Path, old_listing: bytes | None, new_labels: Path | None,
              made_prov: list[Path]) -> None:
    """Put both repositories and the working trees back as they were (best effort: every
    step runs even when one fails, and the original error is what the caller sees)."""
    steps: list[Callable[[], Any]] = [lambda r=r: dlo.git(r, "tag", "-d", tag, check=False) for r in tagged]
    steps += [lambda r=r, c=c: dlo.reset_hard(r, c) for r, c in ((archive.root, before["root"]), (acq, before["acq"])) if c]
    steps.append(lambda: remove_tree(target))
    steps += [lambda p=p: p.unlink(missing_ok=True) for p in files]
    if old_listing is not None:
        steps.append(lambda: labels_json.write_bytes(old_listing))
    else:
        steps.append(lambda: labels_json.unlink(missing_ok=True))
    for d in ([new_labels] if new_labels else []) + list(reversed(made_prov)):
        steps.append(lambda d=d: d.rmdir() if d.exists() and not any(d.iterdir()) else None)
    for step in steps:
        try:
            step()
        except Exception:  # keep going: the rest of the rollback still matters
            pass


__all__ = [
    "LABEL_DTYPES",
    "check_annotated",
    "PlaneSource",
    "WriteOptions",
    "default_creator",
    "image_geometry",
    "image_label",
    "parse_names",
    "smallest_dtype",
    "unlabeled_value",
    "write_label_version",
]
