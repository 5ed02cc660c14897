"""Writing one label version into the archive: the path shared by import, aggregation,
painting and (later) predictions.

A label version is written in one transaction (:mod:`curation.repository.transaction`):

1. under the archive lock, after finishing any interrupted write: the layer name, kind,
   shape and dtype are checked against the image (the read model,
   :mod:`curation.repository.view`), the version is resolved (one more than any version
   ever stored or tagged) with its parents, and the acquisition must be clean;
2. build: the label pyramid is written into ``.curation/staging/labels-ACQ-LAYER/`` by
   :func:`~curation.repository.pyramid.write_pyramid` (mode downsampling, the image's
   levels, chunks and shards; unannotated shards are skipped through the source's
   ``is_fill`` and never stored, as the unlabeled value is the arrays' fill value),
   with its lineage (:class:`~curation.provenance.LabelLineage`) in the group's
   ``curation`` attribute, validated as an NGFF 0.5 label image; its checksums and run
   record (:class:`~curation.provenance.LabelVersionRecord`) are written beside it;
3. apply, journaled: move the group to ``ACQ.ome.zarr/labels/LAYER_vN``, list it in
   ``labels/zarr.json``, move the records to ``provenance/labels/``, annex the shards,
   commit the acquisition's dataset and then the archive, tag both ``ACQ/LAYER/vN``.

Callers that must look at the archive before they can build their source (an import
that builds on the previous version) open the transaction themselves with
:func:`label_transaction` and call :func:`store_label_version` inside it;
:func:`write_label_version` does both for a ready source.
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ImmutableError, LabelError
from ..omezarr import checksum as cks
from ..omezarr.layout import plan_pyramid
from ..omezarr.ngff import multiscales
from ..provenance import Extent, FileRef, LabelLineage, LabelRef, LabelVersionRecord, OutputRef, StorageInfo, ToolInfo
from ..provenance import record_json, write_record, write_text_atomic
from ..provenance.journal import AnnexKnown
from ..provenance.labels import ConsensusSummary
from ..readers.base import HeaderMetadata, Source
from ..records import Result, notneeded, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, now_iso, open_archive
from ..repository.ingest import current_agent
from ..repository.pyramid import WriteOptions, finish_group, write_pyramid
from ..repository.transaction import Changes, Transaction, checkpoint, job_fingerprint, transaction
from ..repository.view import LABEL_PROVENANCE, AcquisitionView
from . import layers as L

#: label dtypes, smallest first; the maximum of each is its unlabeled value
LABEL_DTYPES = ("uint8", "uint16", "uint32")
#: above this many label values, colours and properties list only background, unlabeled
#: and named values (an instance segmentation would otherwise bloat zarr.json)
MAX_LISTED_VALUES = 1024
#: planes kept in memory between the check and the write when they fit in this
IN_MEMORY_BYTES = 256 * 1024**2


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
    out: dict[int, str] = {}
    for k, v in items:
        try:
            key = int(k)
        except (TypeError, ValueError, OverflowError):
            raise LabelError("a label value is an integer", field=field, expected="VALUE=NAME", found=k) from None
        if key < 0:
            raise LabelError("label values are not negative", field=field, expected=">= 0", found=key)
        if key in out:
            raise LabelError(f"label value {key} is named twice", field=field, expected="each value once",
                             found=f"{key}={out[key]} and {key}={v}")
        if not str(v).isprintable():
            raise LabelError("a label name holds control characters", field=field, expected="printable text",
                             found=f"{key}={v}")  # shown through repr: escaped
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




class LayeredSource(Source):
    """A new label version built on a stored one: the base version's voxels, with whole
    slices given anew laid over it (a slice given again replaces the base's).

    ``base``: a level-0 array (zarr) of the base version, its unlabeled value and the z
    planes it annotates; its values are converted to ``dtype`` (its unlabeled value to
    ours). ``planes`` and ``load`` as in :class:`PlaneSource`.
    """

    reader = "label-layers"

    def __init__(self, top: PlaneSource, base: Any = None, base_unlabeled: int | None = None,
                 base_z: Sequence[int] = ()) -> None:
        self.top = top
        self.base = base
        self.base_unlabeled = base_unlabeled
        self._base_z = sorted(int(z) for z in base_z)
        self.fill = top.fill

    @property
    def paths(self) -> list[Path]:
        return self.top.paths

    @property
    def header(self) -> HeaderMetadata:
        return self.top.header

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = region
        if self.base is None or not any(zs.start <= z < zs.stop for z in self._base_z):
            return self.top.read(region)
        base = np.asarray(self.base[zs, ys, xs])
        out = base.astype(self.top.dtype)
        if self.base_unlabeled is not None and self.base_unlabeled != self.fill:
            out[base == self.base_unlabeled] = self.fill
        for z in range(zs.start, zs.stop):
            if z in self.top._set:
                out[z - zs.start] = self.top.plane(z)[ys, xs]
        return out

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        zs = region[0]
        return self.top.is_fill(region) and not any(zs.start <= z < zs.stop for z in self._base_z)


# --- the write -------------------------------------------------------------------------------


def check_annotated(annotated: Extent | Mapping[str, Any], shape: tuple[int, int, int]) -> Extent:
    """``annotated`` as an :class:`~curation.provenance.Extent`, checked against the
    volume: slices inside it, boxes ``{"z": [start, stop], "y": [...], "x": [...]}``
    inside it and not empty."""
    if isinstance(annotated, Mapping):
        unknown = sorted(set(annotated) - {"slices", "regions"})
        if unknown:
            raise LabelError("unknown key in the annotated record", field="annotated", expected="slices, regions",
                             found=unknown)
        regions = []
        for k, box in enumerate(annotated.get("regions", []) or []):
            regions.append({ax: list(box.get(ax, [0, n])) for ax, n in zip("zyx", shape)})
        try:
            annotated = Extent(slices=[int(z) for z in annotated.get("slices", []) or []], regions=regions)
        except (ValueError, TypeError) as exc:
            raise LabelError(f"not an annotated record: {exc}", field="annotated") from exc
    bad = [z for z in annotated.slices if not 0 <= z < shape[0]]
    if bad:
        raise LabelError("annotated slice outside the volume", field="annotated.slices",
                         expected=f"0..{shape[0] - 1}", found=bad[0])
    for k, box in enumerate(annotated.regions):
        for ax, n in zip("zyx", shape):
            lo, hi = getattr(box, ax)
            if not 0 <= lo < hi <= n:
                raise LabelError("annotated region outside the volume or empty", field=f"annotated.regions[{k}].{ax}",
                                 expected=f"[start, stop] within 0..{n}", found=[lo, hi])
    if annotated.is_empty():
        raise LabelError("nothing annotated", field="annotated", expected="slices and/or regions", found="none")
    return annotated


@contextlib.contextmanager
def label_transaction(archive: Archive | Path | str, name: str, action: str, *, job: Mapping[str, Any],
                      options: WriteOptions | None = None) -> Iterator[tuple[Transaction, AcquisitionView]]:
    """The transaction of one label write (lock held, interrupted writes finished) and a
    fresh read model of the acquisition, which must be clean."""
    opts = options or WriteOptions()
    archive = archive if isinstance(archive, Archive) else open_archive(archive)
    archive.require_acquisition(name)
    fingerprint = job_fingerprint(action, acquisition=name, **job)
    with transaction(archive, action, job=fingerprint, acquisition=name, lock_timeout=opts.lock_timeout,
                     purpose=f"{action} {name}") as tx:
        view = archive.acquisition(name)
        if tx.finished is None:
            view.require_clean(f"write a label version into {name}")
        yield tx, view


@dataclass(frozen=True)
class LabelWrite:
    """What to store as the next version of ``layer`` (see :func:`store_label_version`)."""

    layer: str
    source: Source
    annotated: Extent | Mapping[str, Any]
    kind: str = "ground-truth"
    #: addresses; None: the layer's previous version
    parents: Sequence[str] | None = None
    #: input files (hashed while writing) or ready references
    sources: Sequence[Path | str | FileRef] = ()
    note: str = ""
    creator: str | None = None
    names: Mapping[int, str] | None = None
    #: the label values present (else found by reading level 0 back)
    label_values: Iterable[int] | None = None
    #: refused unless it is the next version (existing versions are immutable)
    version: int | None = None
    action: str = "labels-write"
    started: str | None = None
    details: Any = None
    consensus: ConsensusSummary | None = None
    painted: Any = None  # a PaintSummary
    #: more inputs for the run record (labels read, images)
    inputs: Sequence[Any] = ()
    #: identifies the content for a resume of the build (e.g. the base version's tree)
    content_key: Mapping[str, Any] | None = None
    #: id of the run record that computed the version (``runs/analysis-1``), kept in its lineage
    run: str | None = None


@dataclass(frozen=True)
class StagedLabel:
    """A label version built in staging: what committing it changes, and its result record."""

    changes: Changes
    result: Result
    address: str
    record: LabelVersionRecord


def store_label_version(tx: Transaction, view: AcquisitionView, w: LabelWrite,
                        options: WriteOptions | None = None) -> Result:
    """Build and commit ``w`` as the next version of its layer, inside ``tx``; ``notneeded``
    when the layer's latest version was made by this very job (the same command again)."""
    done = same_job_version(tx, view, w.layer)
    if done is not None:
        return done
    staged = stage_label_version(tx, view, w, options)
    tx.apply(staged.changes.steps(), staged.result)
    data = dict(staged.result.data)
    data.update(archive_commit=dlo.head(view.archive.root), dataset_commit=dlo.head(view.path))
    return staged.result.model_copy(update={"data": data})


def same_job_version(tx: Transaction, view: AcquisitionView, layer: str) -> Result | None:
    """A notneeded record when the latest version of ``layer`` was written by ``tx``'s job."""
    prev = view.layer(layer)
    if not prev or not prev[-1].record_path.exists():
        return None
    if prev[-1].record().job != tx.job:
        return None
    lv = prev[-1]
    return notneeded(tx.action, view.archive.relative(lv.path),
                     f"{lv.address} was already made by this same command (at {lv.lineage.created})",
                     acquisition=view.name, layer=lv.layer, address=lv.address, version=lv.version)


def stage_label_version(tx: Transaction, view: AcquisitionView, w: LabelWrite,
                        options: WriteOptions | None = None, *, stage_key: str | None = None,
                        version: int | None = None) -> StagedLabel:
    """Build ``w`` in staging (resumable) and say what committing it changes; a caller
    that commits more (a run record, other versions) merges the changes and applies once.
    ``version``: the number to give it (when several versions of one layer are staged in
    one transaction); default the next one."""
    t0 = time.monotonic()
    opts = options or WriteOptions()
    archive, name = view.archive, view.name
    started = w.started or now_iso()
    layer = L.check_layer(w.layer)
    kind = L.check_kind(w.kind)
    geo = view.geometry
    if tuple(w.source.shape) != geo.shape:
        raise LabelError("the label volume's shape differs from the image's", path=archive.relative(view.path),
                         field="shape", expected=geo.shape, found=tuple(w.source.shape))
    dtype = np.dtype(w.source.dtype)
    unl = unlabeled_value(dtype)
    names = dict(w.names or {})
    if unl in names or any(k > unl for k in names):
        raise LabelError("a label name is given for a value the dtype reserves or cannot hold", field="--names",
                         expected=f"values 0..{unl - 1} ({unl} is unlabeled in {dtype.name})", found=sorted(names))
    annotated = check_annotated(w.annotated, geo.shape)
    creator = w.creator or dlo.git_identity(archive.root) or current_agent(archive.root).name

    n = version or L.next_version(view, layer)
    if w.version is not None and w.version != n:
        existing = [v.version for v in view.layer(layer)] + L.tagged_versions(archive, name, layer)
        if w.version in existing or w.version < n:
            raise ImmutableError(f"{L.address_of(layer, w.version)} exists and versions are immutable",
                                 path=archive.relative(view.labels_dir / L.group_name(layer, w.version)),
                                 field="--layer", expected=f"a new version, {L.address_of(layer, n)}",
                                 found=L.address_of(layer, w.version))
        raise LabelError("versions are numbered in order", field="--layer", expected=L.address_of(layer, n),
                         found=L.address_of(layer, w.version))
    if w.parents is None:
        prev = view.layer(layer)
        parents = [prev[-1].address] if prev else []
    else:
        parents = [view.label(p, field="--parent").address for p in w.parents]
    group, address = L.group_name(layer, n), L.address_of(layer, n)
    target = view.labels_dir / group
    if target.exists():  # a stray folder: never written into
        raise ImmutableError("a label group with this name is already there", path=archive.relative(target),
                             expected="a new group", found=group)

    stage = tx.staging(stage_key or f"labels-{name}-{layer}")
    zroot = stage / "group"
    plan = plan_pyramid(geo.shape, geo.voxel_size_nm, dtype.name, chunk=geo.chunk, shard=geo.shard,
                        max_levels=len(geo.levels))
    hash_paths = [str(Path(s).resolve()) for s in w.sources if not isinstance(s, FileRef)]
    given = [s for s in w.sources if isinstance(s, FileRef)]
    fingerprint = {"label": f"{name}/{layer}", "dtype": dtype.name, "job": tx.job, "plan": plan.to_dict(),
                   "content": dict(w.content_key or {})}
    written = write_pyramid(stage=stage, zroot=zroot, plan=plan, source=w.source, kind="label",
                            group_attrs=multiscales(plan, address, kind="label"), fingerprint=fingerprint,
                            options=opts, fill_value=unl, hash_paths=hash_paths, source_label=f"{address}")
    source_refs = given + [written.file_ref(p) for p in hash_paths]
    values = (sorted({int(v) for v in w.label_values}) if w.label_values is not None
              else _values_on_disk(zroot, plan, written.result))
    listed = [v for v in values if v != unl][:MAX_LISTED_VALUES]
    lineage = LabelLineage(
        acquisition=name, layer=layer, version=n, address=address, kind=kind, parents=parents, creator=creator,
        created=now_iso(), tool_version=__version__, sources=source_refs, annotated=annotated, note=w.note or "",
        unlabeled_value=unl, dtype=dtype.name, label_values=listed,
        names={k: v for k, v in sorted(names.items()) if k not in (0, unl)}, consensus=w.consensus,
        painted=w.painted, run=w.run,
    )
    attrs = multiscales(plan, address, kind="label", extra={"image-label": image_label(values, unl, names)})
    attrs["curation"] = record_json(lineage)
    _put_group_attrs(zroot, attrs)
    prefix = f"{L.LABELS}/{group}/"
    written = finish_group(written, zroot, kind="label", checksum_prefix=prefix)
    image = view.image_path.name
    storage = StorageInfo(tree_sha256=written.tree_sha256, n_files=len(written.entries), bytes=written.bytes,
                          n_shards=len(written.result.shards), stored_shards=written.stored_shards)
    record = LabelVersionRecord(
        id=f"labels/{group}", action=w.action, acquisition=name, started=started, finished=now_iso(), job=tx.job,
        agent=current_agent(archive.root), tool=ToolInfo(version=__version__),
        inputs=[*source_refs, *(LabelRef(address=p, acquisition=name) for p in parents), *w.inputs],
        outputs=[OutputRef(kind="label", path=f"{image}/{L.LABELS}/{group}", address=address,
                           tree_sha256=storage.tree_sha256, n_files=storage.n_files, bytes=storage.bytes)],
        details=w.details, engine=written.engine, seconds=round(time.monotonic() - t0, 3), note=w.note or "",
        layer=layer, version=n, address=address, group=f"{L.LABELS}/{group}", lineage=lineage, storage=storage,
    )
    cks.write_tsv(stage / "checksums.tsv", written.entries)
    write_record(stage / "record.json", record)
    listing = _listing_doc(view.labels_dir / "zarr.json")
    ome = listing.setdefault("attributes", {}).setdefault("ome", {"version": "0.5"})
    ome.setdefault("version", "0.5")
    ome["labels"] = [e for e in ome.get("labels", []) if e != group] + [group]
    write_text_atomic(stage / "labels.zarr.json", json.dumps(listing, indent=2) + "\n")
    checkpoint("labels-records")

    message = (f"Label {name}: {address} ({kind}, {_describe(annotated)})"
               + (f" from {', '.join(parents)}" if parents else ""))
    tag = L.tag_name(name, layer, n)
    acq, st = tx.rel(view.path), tx.rel(stage)
    image_rel = f"{acq}/{image}"
    prov = f"{acq}/{LABEL_PROVENANCE}"
    changes = Changes(dataset=acq, message=message, paths=[f"{image}/{L.LABELS}", LABEL_PROVENANCE], tags=[tag],
                      cleanup=[st])
    changes.move(f"{st}/group", f"{image_rel}/{L.LABELS}/{group}")
    changes.move(f"{st}/labels.zarr.json", f"{image_rel}/{L.LABELS}/zarr.json",
                 replace=(view.labels_dir / "zarr.json").exists())
    changes.move(f"{st}/record.json", f"{prov}/{group}.json")
    changes.move(f"{st}/checksums.tsv", f"{prov}/{group}.checksums.tsv")
    changes.annex.append(AnnexKnown(repo=acq, checksums=f"{prov}/{group}.checksums.tsv", prefix=f"{image}/"))
    result = ok(
        w.action, f"{image_rel}/{L.LABELS}/{group}",
        f"stored {address} ({kind}) in {name}: {_describe(annotated)}, {dtype.name}, "
        f"{storage.stored_shards} of {storage.n_shards} shards stored, tag {tag}",
        acquisition=name, layer=layer, version=n, address=address, kind=kind, group=f"{L.LABELS}/{group}",
        parents=parents, creator=creator, dtype=dtype.name, unlabeled_value=unl, label_values=listed,
        annotated=annotated.model_dump(mode="json", exclude_defaults=True), tag=tag, tree_sha256=storage.tree_sha256,
        n_files=storage.n_files, bytes=storage.bytes, n_shards=storage.n_shards,
        stored_shards=storage.stored_shards, provenance=f"{prov}/{group}.json",
    )
    data = dict(result.data)
    data["seconds"] = round(time.monotonic() - t0, 3)
    return StagedLabel(changes, result.model_copy(update={"data": data}), address, record)


def write_label_version(archive: Archive | Path | str, name: str, layer: str, source: Source, *,
                        annotated: Extent | Mapping[str, Any], options: WriteOptions | None = None,
                        job: Mapping[str, Any] | None = None, **fields: Any) -> Result:
    """Store a ready ``source`` as the next version of ``layer`` (fields: see :class:`LabelWrite`).

    ``job`` identifies the request for a re-run after a crash (default: the layer, the
    annotated extent, the parameters and a digest of the source's slices)."""
    w = LabelWrite(layer=layer, source=source, annotated=annotated, **fields)
    key = dict(job) if job is not None else _default_job(w)
    with label_transaction(archive, name, w.action, job=key, options=options) as (tx, view):
        if tx.finished is not None:
            return tx.finished
        return store_label_version(tx, view, w, options)


def _default_job(w: LabelWrite) -> dict[str, Any]:
    ext = w.annotated.model_dump(mode="json") if isinstance(w.annotated, Extent) else dict(w.annotated)
    digest = ""
    if isinstance(w.source, PlaneSource) and w.source.planes:
        import hashlib

        h = hashlib.sha256()
        for z in sorted(w.source.planes):
            h.update(np.ascontiguousarray(w.source.planes[z]).tobytes())
        digest = h.hexdigest()
    return {"layer": w.layer, "kind": w.kind, "annotated": ext, "parents": list(w.parents or []) or None,
            "note": w.note, "names": {str(k): v for k, v in (w.names or {}).items()}, "version": w.version,
            "sources": [str(s) for s in w.sources], "planes": digest, "created": now_iso()
            if not digest and not w.sources else None}


def _describe(annotated: Extent) -> str:
    parts = []
    if annotated.slices:
        parts.append(f"{len(annotated.slices)} annotated slice(s)")
    if annotated.regions:
        parts.append(f"{len(annotated.regions)} annotated region(s)")
    return ", ".join(parts) or "nothing annotated"


def _put_group_attrs(zroot: Path, attrs: dict) -> None:
    """Replace the group's attributes (zarr.json written whole, then renamed)."""
    path = zroot / "zarr.json"
    doc = json.loads(path.read_text())
    doc["attributes"] = attrs
    write_text_atomic(path, json.dumps(doc, indent=2))


def _values_on_disk(zroot: Path, plan, result) -> list[int]:
    """Label values present in the stored level-0 shards."""
    import zarr

    arr = zarr.open_array(str(zroot / plan.levels[0].path), mode="r")
    found: set[int] = set()
    for s in result.shards:
        if s.level == 0 and s.nbytes:
            found.update(int(v) for v in np.unique(arr[plan.region(0, s.index)]).tolist())
    return sorted(found)


def _listing_doc(labels_json: Path) -> dict:
    if labels_json.exists():
        return json.loads(labels_json.read_text())
    return {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "labels": []}}}


__all__ = [
    "LABEL_DTYPES",
    "LabelWrite",
    "StagedLabel",
    "LayeredSource",
    "PlaneSource",
    "WriteOptions",
    "check_annotated",
    "image_label",
    "label_transaction",
    "parse_names",
    "smallest_dtype",
    "stage_label_version",
    "store_label_version",
    "unlabeled_value",
    "write_label_version",
]
