"""Painted ground truth: strokes on any plane become the next version of a label layer.

An *edit* is one JSON document, the same from the browser and from
``curate labels paint ARCHIVE NAME EDIT.json``::

    {"base": "envelope@v2",              # the version painted over (its parent); optional
     "layer": "envelope",                # where to save (default: the base's layer)
     "note": "closed a gap at the pore", "creator": "A. Tracer",   # optional
     "strokes": [{"plane": "xz", "index": 120, "value": 1, "radius": 2.5,
                  "points": [[row, col], ...]}, ...],
     "complete": [{"plane": "xy", "index": 16}]}

Coordinates are level-0 voxel indices: ``index`` along the plane's normal, points as
(row, col) in the plane (rows y and columns x in xy; rows z in xz and yz), fractions
allowed (a point between voxels). A stroke paints
every voxel within ``radius`` of its polyline with ``value``; the eraser is value 0
(background). A *complete* plane was checked whole: its voxels still unlabeled become
background.

What the new version records as annotated: the base's extent, plus each complete xy
plane as a whole slice and each other complete plane as a one-voxel-thick region, plus
each painted plane's bounding box of painted voxels as a region. Inside such a box,
voxels never painted keep the base's value (unlabeled stays unlabeled): the voxel
values are authoritative, the regions say where to look. The lineage gets ``painted``
(strokes, planes touched with painted voxel counts, complete planes, the tool), and the
run record the whole edit, so it can be replayed exactly.

The version is written by :meth:`Catalog.write_version` (the ``labels import`` write)
from :class:`PaintSource`, which reads the base lazily shard by shard: painting on a
terabyte volume holds only the painted blocks in memory.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelError
from ..readers.base import HeaderMetadata, Source
from ..safeload import read_json
from .catalog import Catalog
from .render import PLANES

BLOCK = 256
MAX_STROKES = 2000
MAX_POINTS = 20000  # over all strokes
MAX_RADIUS = 128.0
MAX_BLOCKS = 512  # painted 256 x 256 blocks over the whole edit (33 M voxels)
MAX_COMPLETE = 256


@dataclass
class Layer:
    """Painted voxels of one plane, block-sparse: (block row, block col) -> (values, mask)."""

    plane: str
    index: int
    blocks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def voxels(self) -> int:
        return int(sum(m.sum() for _, m in self.blocks.values()))

    def bbox(self) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of painted voxels, stops exclusive."""
        r0 = c0 = math.inf
        r1 = c1 = -1
        for (br, bc), (_, m) in self.blocks.items():
            rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            if rows.size:
                r0, r1 = min(r0, br * BLOCK + rows[0]), max(r1, br * BLOCK + rows[-1] + 1)
                c0, c1 = min(c0, bc * BLOCK + cols[0]), max(c1, bc * BLOCK + cols[-1] + 1)
        return int(r0), int(r1), int(c0), int(c1)


def _plane_shape(shape: tuple[int, int, int], plane: str) -> tuple[int, int]:
    _, r, c = PLANES[plane]
    return shape[r], shape[c]


def rasterize(strokes: Sequence[Mapping[str, Any]], shape: tuple[int, int, int], dtype: np.dtype,
              budget: list[int] | None = None) -> list[Layer]:
    """Layers of painted voxels, in stroke order (consecutive strokes on one plane share one)."""
    layers: list[Layer] = []
    budget = budget if budget is not None else [MAX_BLOCKS]
    for k, s in enumerate(strokes):
        plane, index = s["plane"], int(s["index"])
        if not layers or (layers[-1].plane, layers[-1].index) != (plane, index):
            layers.append(Layer(plane, index))
        _stroke(layers[-1], s, _plane_shape(shape, plane), dtype, budget, k)
    return layers


def _stroke(layer: Layer, s: Mapping[str, Any], pshape: tuple[int, int], dtype: np.dtype, budget: list[int],
            k: int) -> None:
    pts = np.asarray(s["points"], dtype=np.float64).reshape(-1, 2)
    radius = float(s["radius"])
    value = int(s["value"])
    segs = [(pts[i], pts[i + 1]) for i in range(len(pts) - 1)] or [(pts[0], pts[0])]
    for a, b in segs:
        lo = np.floor(np.minimum(a, b) - radius).astype(int)
        hi = np.ceil(np.maximum(a, b) + radius).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, pshape)
        if np.any(hi <= lo):
            continue
        for br in range(lo[0] // BLOCK, (hi[0] - 1) // BLOCK + 1):
            for bc in range(lo[1] // BLOCK, (hi[1] - 1) // BLOCK + 1):
                r0, r1 = max(lo[0], br * BLOCK), min(hi[0], (br + 1) * BLOCK)
                c0, c1 = max(lo[1], bc * BLOCK), min(hi[1], (bc + 1) * BLOCK)
                rr, cc = np.mgrid[r0:r1, c0:c1]
                hit = _distance(rr, cc, a, b) <= radius
                if not hit.any():
                    continue
                blk = layer.blocks.get((br, bc))
                if blk is None:
                    budget[0] -= 1
                    if budget[0] < 0:
                        raise LabelError("the edit paints too large an area at once", field=f"strokes[{k}]",
                                         expected=f"at most {MAX_BLOCKS} blocks of {BLOCK} x {BLOCK} voxels",
                                         found="more", hint="save in several edits")
                    blk = (np.zeros((BLOCK, BLOCK), dtype), np.zeros((BLOCK, BLOCK), bool))
                    layer.blocks[(br, bc)] = blk
                vals, mask = blk
                sub = (slice(r0 - br * BLOCK, r1 - br * BLOCK), slice(c0 - bc * BLOCK, c1 - bc * BLOCK))
                vals[sub][hit] = value
                mask[sub] |= hit


def _distance(rr: np.ndarray, cc: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of voxels (indices) to the segment a-b (points as (row, col) indices)."""
    d = b - a
    n = float(d @ d)
    if n == 0:
        return np.hypot(rr - a[0], cc - a[1])
    t = np.clip(((rr - a[0]) * d[0] + (cc - a[1]) * d[1]) / n, 0, 1)
    return np.hypot(rr - (a[0] + t * d[0]), cc - (a[1] + t * d[1]))


# --- the source ---------------------------------------------------------------------------


class PaintSource(Source):
    """The base version (or nothing: all unlabeled) with complete planes and painted layers
    applied, read region by region (picklable: the base is reopened from its path)."""

    reader = "label-paint"

    def __init__(self, shape: tuple[int, int, int], dtype: Any, base_path: str | None,
                 base_shards: set[tuple[int, ...]] | None, base_shard_shape: tuple[int, ...] | None,
                 layers: list[Layer], complete: list[tuple[str, int]]) -> None:
        self._shape = tuple(int(n) for n in shape)
        self._dtype = np.dtype(dtype)
        self.fill = int(np.iinfo(self._dtype).max)
        self.base_path = base_path
        self.base_shards = base_shards or set()
        self.base_shard_shape = base_shard_shape
        self.layers = layers
        self.complete = complete
        self._base = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_base"] = None
        return d

    @property
    def paths(self) -> list[Path]:
        return []

    @property
    def header(self) -> HeaderMetadata:
        return HeaderMetadata(shape=self._shape, dtype=self._dtype.name)  # type: ignore[arg-type]

    def _base_array(self):
        if self._base is None:
            import zarr

            self._base = zarr.open_array(self.base_path, mode="r", zarr_format=3)
        return self._base

    def _touches(self, region: tuple[slice, slice, slice], plane: str, index: int) -> bool:
        s = region[PLANES[plane][0]]
        return s.start <= index < s.stop

    def _base_stored(self, region: tuple[slice, slice, slice]) -> bool:
        if self.base_path is None or not self.base_shards:
            return False
        ss = self.base_shard_shape
        ranges = [range(s.start // n, (s.stop - 1) // n + 1) for s, n in zip(region, ss)]
        return any(idx in self.base_shards for idx in _product(ranges))

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        return not (self._base_stored(region) or any(self._touches(region, ly.plane, ly.index) for ly in self.layers)
                    or any(self._touches(region, p, i) for p, i in self.complete))

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        shape = tuple(s.stop - s.start for s in region)
        if self._base_stored(region):
            out = np.asarray(self._base_array()[region]).astype(self._dtype, copy=True)
        else:
            out = np.full(shape, self.fill, self._dtype)
        for plane, index in self.complete:
            if self._touches(region, plane, index):
                view = _plane_view(out, region, plane, index)
                view[view == self.fill] = 0
        for ly in self.layers:
            if not self._touches(region, ly.plane, ly.index):
                continue
            view = _plane_view(out, region, ly.plane, ly.index)
            _, r, c = PLANES[ly.plane]
            rs, cs = region[r], region[c]
            for (br, bc), (vals, mask) in ly.blocks.items():
                r0, r1 = max(rs.start, br * BLOCK), min(rs.stop, (br + 1) * BLOCK)
                c0, c1 = max(cs.start, bc * BLOCK), min(cs.stop, (bc + 1) * BLOCK)
                if r1 <= r0 or c1 <= c0:
                    continue
                src = (slice(r0 - br * BLOCK, r1 - br * BLOCK), slice(c0 - bc * BLOCK, c1 - bc * BLOCK))
                dst = view[r0 - rs.start:r1 - rs.start, c0 - cs.start:c1 - cs.start]
                m = mask[src]
                dst[m] = vals[src][m]
        return out


def _plane_view(out: np.ndarray, region: tuple[slice, slice, slice], plane: str, index: int) -> np.ndarray:
    """The 2D (rows, cols) view of ``out`` at ``index`` along the plane's normal."""
    normal = PLANES[plane][0]
    return out[(slice(None),) * normal + (index - region[normal].start,)]


def _product(ranges):
    return itertools.product(*ranges)


# --- checking an edit ---------------------------------------------------------------------------


def load_edit(path: Path | str) -> dict[str, Any]:
    """An edit document from a JSON file."""
    p = Path(path)
    doc = read_json(p, error=LabelError, max_bytes=64 * 1024 * 1024)
    if not isinstance(doc, dict):
        raise LabelError("the edit is not a JSON object", path=p, expected='{"base": ..., "strokes": [...]}')
    return doc


def check_edit(doc: Mapping[str, Any], shape: tuple[int, int, int]) -> dict[str, Any]:
    """The edit normalised (types, bounds, sizes), or LabelError naming the field."""
    unknown = sorted(set(doc) - {"base", "layer", "note", "creator", "strokes", "complete"})
    if unknown:
        raise LabelError("unknown key in the edit", field="edit", expected="base, layer, note, creator, strokes, "
                         "complete", found=unknown)
    strokes = doc.get("strokes") or []
    complete = doc.get("complete") or []
    if not isinstance(strokes, list) or not isinstance(complete, list):
        raise LabelError("strokes and complete are lists", field="edit", found=type(strokes).__name__)
    if not strokes and not complete:
        raise LabelError("nothing painted", field="strokes", expected="at least one stroke or complete plane",
                         found="none")
    if len(strokes) > MAX_STROKES or len(complete) > MAX_COMPLETE:
        raise LabelError("too many strokes in one edit", field="strokes",
                         expected=f"at most {MAX_STROKES} strokes and {MAX_COMPLETE} complete planes",
                         found=len(strokes), hint="save in several edits")
    out_strokes, n_points = [], 0
    for k, s in enumerate(strokes):
        where = f"strokes[{k}]"
        if not isinstance(s, Mapping):
            raise LabelError("a stroke is an object", field=where, found=type(s).__name__)
        plane, index = _plane_index(s, shape, where)
        try:
            value = int(s["value"])
            radius = float(s.get("radius", 1.0))
            pts = [[float(p[0]), float(p[1])] for p in s["points"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise LabelError("a stroke needs value, radius and points [[row, col], ...]", field=where,
                             found=json.dumps(s)[:120]) from None
        if value < 0:
            raise LabelError("label values are not negative", field=f"{where}.value", expected=">= 0", found=value)
        if not 0.5 <= radius <= MAX_RADIUS or not all(math.isfinite(v) for p in pts for v in p):
            raise LabelError("brush radius out of bounds or a point is not a number", field=f"{where}.radius",
                             expected=f"0.5..{MAX_RADIUS:g} voxels", found=radius)
        if not pts:
            raise LabelError("a stroke needs at least one point", field=f"{where}.points", found=0)
        n_points += len(pts)
        out_strokes.append({"plane": plane, "index": index, "value": value, "radius": radius, "points": pts})
    if n_points > MAX_POINTS:
        raise LabelError("too many stroke points in one edit", field="strokes", expected=f"at most {MAX_POINTS}",
                         found=n_points, hint="save in several edits")
    out_complete = sorted({_plane_index(c, shape, f"complete[{k}]") for k, c in enumerate(complete)})
    out: dict[str, Any] = {"strokes": out_strokes, "complete": [{"plane": p, "index": i} for p, i in out_complete]}
    for key in ("base", "layer", "note", "creator"):
        if doc.get(key) not in (None, ""):
            out[key] = str(doc[key])
    return out


def _plane_index(s: Any, shape: tuple[int, int, int], where: str) -> tuple[str, int]:
    if not isinstance(s, Mapping) or s.get("plane") not in PLANES:
        raise LabelError("unknown plane", field=f"{where}.plane", expected="xy | xz | yz",
                         found=s.get("plane") if isinstance(s, Mapping) else s)
    normal = PLANES[s["plane"]][0]
    try:
        index = int(s["index"])
    except (KeyError, TypeError, ValueError):
        raise LabelError("a plane needs its index", field=f"{where}.index", found=s.get("index")) from None
    if not 0 <= index < shape[normal]:
        raise LabelError("plane index outside the volume", field=f"{where}.index",
                         expected=f"0..{shape[normal] - 1}", found=index)
    return s["plane"], index


# --- saving -----------------------------------------------------------------------------------


def annotated_after(base: Mapping[str, Any], layers: list[Layer], complete: list[tuple[str, int]],
                    shape: tuple[int, int, int]) -> dict[str, Any]:
    """The base's annotated extent plus what this edit annotated (see the module docstring)."""
    slices = {int(z) for z in base.get("slices", [])}
    regions = [dict(r) for r in base.get("regions", [])]
    full = {"z": [0, shape[0]], "y": [0, shape[1]], "x": [0, shape[2]]}
    for plane, index in complete:
        if plane == "xy":
            slices.add(index)
        else:
            box = dict(full)
            box["zyx"[PLANES[plane][0]]] = [index, index + 1]
            regions.append(box)
    for ly in layers:
        if ly.plane == "xy" and ly.index in slices or not ly.blocks:
            continue
        r0, r1, c0, c1 = ly.bbox()
        if r1 <= r0:
            continue
        normal, r, c = PLANES[ly.plane]
        box = {}
        for ax, rng in ((normal, [ly.index, ly.index + 1]), (r, [r0, r1]), (c, [c0, c1])):
            box["zyx"[ax]] = rng
        regions.append({k: box[k] for k in "zyx"})
    out: dict[str, Any] = {}
    if slices:
        out["slices"] = sorted(slices)
    unique = []
    for box in regions:
        if box not in unique:
            unique.append(box)
    if unique:
        out["regions"] = unique
    return out


def paint(catalog: Catalog, name: str, edit: Mapping[str, Any], *, tool: str, lock_timeout: float = 0,
          scheduler: str | None = None):
    """Store ``edit`` as a new ground-truth version (see the module docstring); returns the
    write's Result. Raises LockedError at once when another writer holds the archive."""
    from ..labels.store import MAX_LISTED_VALUES, smallest_dtype

    geo = catalog.geometry(name)
    shape = geo.shape
    doc = check_edit(edit, shape)
    base = catalog.version(name, doc["base"]) if doc.get("base") else None
    layer = doc.get("layer") or (base.layer if base else None)
    if not layer:
        raise LabelError("name the layer to save into", field="layer", expected="a layer name or a base version",
                         found="neither")
    values = sorted({s["value"] for s in doc["strokes"]} | ({0} if doc["complete"] else set()))
    if base is not None:
        dtype = np.dtype(base.dtype)
    else:
        dtype = smallest_dtype(max(values, default=1))
    unl = int(np.iinfo(dtype).max)
    too_big = [v for v in values if v >= unl]
    if too_big:
        raise LabelError("a painted value does not fit the layer's dtype", field="strokes.value",
                         expected=f"0..{unl - 1} ({unl} means unlabeled in {dtype.name})", found=too_big[0])
    layers = rasterize(doc["strokes"], shape, dtype)
    complete = [(c["plane"], c["index"]) for c in doc["complete"]]
    if base is not None:
        arr = catalog.label_array(name, base.address, 0)
        source = PaintSource(shape, dtype, catalog.label_level0(name, base.address),
                             catalog.stored_label_shards(name, base.address), tuple(arr.shards or arr.chunks),
                             layers, complete)
    else:
        source = PaintSource(shape, dtype, None, None, None, layers, complete)
    annotated = annotated_after(base.annotated if base else {}, layers, complete, shape)
    if base is not None and len(base.label_values) < MAX_LISTED_VALUES:
        label_values: list[int] | None = sorted(set(base.label_values) | set(values))
    else:
        label_values = None if base is not None else values
    names = {v: n for v, n in (base.names.items() if base else []) if v != unl}
    painted = {
        "tool": tool, "strokes": len(doc["strokes"]),
        "planes": [{"plane": ly.plane, "index": ly.index, "voxels": ly.voxels()} for ly in layers],
        "complete": doc["complete"],
    }
    return catalog.write_version(
        name, layer, source, parents=[base.address] if base else [], annotated=annotated,
        note=doc.get("note", ""), creator=doc.get("creator"), names=names, label_values=label_values,
        painted=painted, edit=doc, tool=tool,
        lock_timeout=lock_timeout, scheduler=scheduler)
