"""Blockwise connected components, identical to cc3d on the whole volume.

Two passes over the blocks of :mod:`curation.blocks`, then a small merge:

1. **Label** (one task per block, no halo): cc3d labels the block; the task writes the
   block-local labels (uint32) into a scratch zarr, the six boundary planes of the block
   into six small face arrays, and returns per-component statistics: label value,
   voxel count, exact integer coordinate sums, bounding box, the first voxel in C order
   (global linear index) and, optionally, second moments. Component ``k`` of block ``b``
   gets the provisional id ``offset[b] + k``.
2. **Merge faces** (one task per block): for each axis, the block's high boundary plane
   against the low boundary plane of the next layer of blocks, shifted by the in-plane
   offsets the connectivity allows (1 for 6, 5 for 18, 9 for 26). Every pair of adjacent
   voxels in different blocks is seen at least once (from the block below it along an
   axis where their blocks differ). Only face voxels are compared; the task returns the
   pairs of provisional ids that touch.
3. **Union-find** (driver): pairs of equal label value are joined (scipy's
   ``connected_components`` on the sparse pair graph), the statistics are summed per
   object, and objects are numbered 1..K in the **canonical order: by first voxel in C
   order**. cc3d numbers components in that same order, so the labelled volume is
   byte-identical to ``cc3d.connected_components(volume, connectivity=c)``, and so is
   the table, whatever the block shape.

Semantics are cc3d's: 0 is background, and voxels connect when they are neighbours
with the same nonzero value (a multi-valued volume gives components per value).
``select`` keeps only some values (others become background); ``unlabeled`` (a label
layer's dtype maximum) is background for the components and stays *unlabeled* in the
labelled volume, so partial annotations keep their meaning.

The labelled volume is :class:`InstanceSource`, a lazily read
:class:`curation.readers.base.Source`: ``read(region)`` maps the stored block-local
labels through the provisional-to-final table, so the label writer can stream it into
a label layer of kind ``instances`` shard by shard.

Memory: a task holds one block, its uint32 labels and cc3d's working arrays (about
``10 x`` the block's voxels in bytes for a uint8 input); the driver holds per-component
rows (about 100 bytes per provisional component, 150 with moments) and the touching
pairs. Nothing scales with the volume except the scratch on disk (uint32 labels,
zstd-compressed). Exact: voxel counts, coordinate sums (int64), bounding boxes, first
voxels. Second moments are float64 sums (reproducible in one grid; across block shapes
they agree to about 1e-12 relative).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..blocks import DEFAULT_MAX_BLOCK_VOXELS, Block, BlockGrid, grid_for, map_blocks
from ..errors import AnalysisError
from ..readers.base import HeaderMetadata, Source, normalize_region

CONNECTIVITIES = (6, 18, 26)
#: marks, in the scratch labels, voxels the input leaves unlabeled
UNLABELED_LOCAL = np.uint32(0xFFFFFFFF)
SCRATCH_FORMAT = 1
#: scratch chunks are at most this deep, so a slab read decompresses little more than it needs
SCRATCH_CHUNK_DEPTH = 64
MOMENT_KEYS = ("zz", "yy", "xx", "zy", "zx", "yx")


# --- per-object statistics ------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectStats:
    """Per-object arrays; row ``k`` is object id ``k + 1``. Coordinates are voxels
    (z, y, x) of level 0; ``bbox_stop`` is exclusive; ``first_voxel`` is the C-order
    linear index of the object's first voxel; ``moments`` (when computed) are central
    second moments per voxel, columns :data:`MOMENT_KEYS`, in voxel² units."""

    value: np.ndarray
    voxels: np.ndarray
    coord_sums: np.ndarray
    bbox_start: np.ndarray
    bbox_stop: np.ndarray
    first_voxel: np.ndarray
    shape: tuple[int, int, int]
    moments: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.voxels)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(1, len(self) + 1, dtype=np.int64)

    @property
    def centroid(self) -> np.ndarray:
        n = np.maximum(self.voxels, 1).astype(np.float64)[:, None]
        return self.coord_sums.astype(np.float64) / n

    @property
    def touches_border(self) -> np.ndarray:
        upper = np.asarray(self.shape, dtype=np.int64)[None, :]
        return np.any(self.bbox_start == 0, axis=1) | np.any(self.bbox_stop == upper, axis=1)

    def bbox(self, k: int) -> tuple[slice, slice, slice]:
        """Bounding box of object id ``k`` as slices."""
        a, b = self.bbox_start[k - 1], self.bbox_stop[k - 1]
        return tuple(slice(int(s), int(e)) for s, e in zip(a, b))  # type: ignore[return-value]

    def equal(self, other: "ObjectStats") -> bool:
        """Exact equality of every exact column (moments are float sums: compare them with a
        tolerance)."""
        cols = ("value", "voxels", "coord_sums", "bbox_start", "bbox_stop", "first_voxel")
        same = self.shape == other.shape and all(np.array_equal(getattr(self, c), getattr(other, c)) for c in cols)
        return same


# --- the result -----------------------------------------------------------------------------


@dataclass
class Components:
    """Connected components of a volume: statistics and a lazily readable labelled volume.

    The scratch folder holds the labels; :meth:`close` removes it when this object made it
    (``scratch=None``). Use as a context manager.
    """

    shape: tuple[int, int, int]
    connectivity: int
    stats: ObjectStats
    grid: BlockGrid
    scratch: Path
    dtype: np.dtype
    owns_scratch: bool = False
    provisional: int = 0
    merged_pairs: int = 0

    @property
    def n_objects(self) -> int:
        return len(self.stats)

    def labels(self, keep: np.ndarray | None = None) -> "InstanceSource":
        """The labelled volume; with ``keep`` (a boolean per object) only the kept objects,
        renumbered 1..K' in the same (canonical) order, the others background."""
        if keep is None:
            return InstanceSource(self.scratch)
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_objects,):
            raise AnalysisError("keep needs one flag per object", field="keep", expected=self.n_objects,
                                found=keep.shape)
        import hashlib

        name = "mapping-" + hashlib.sha256(np.packbits(keep).tobytes() + str(len(keep)).encode()).hexdigest()[:16]
        if not (self.scratch / f"{name}.json").exists():
            renumber = np.zeros(self.n_objects + 1, dtype=np.int64)
            renumber[1:][keep] = np.arange(1, int(keep.sum()) + 1)
            base = np.load(self.scratch / "mapping.npy", mmap_mode="r")
            dtype = _label_dtype(int(keep.sum()))
            np.save(self.scratch / f"{name}.npy", renumber[np.asarray(base, dtype=np.int64)].astype(dtype))
            (self.scratch / f"{name}.json").write_text(json.dumps({"n_objects": int(keep.sum()), "dtype": dtype.name}))
        return InstanceSource(self.scratch, mapping=name)

    def close(self) -> None:
        if self.owns_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> "Components":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connected_components(
    array: Any,
    *,
    connectivity: int = 26,
    select: int | Sequence[int] | None = None,
    unlabeled: int | None = None,
    scratch: Path | str | None = None,
    block_shape: Sequence[int] | int | None = None,
    max_block_voxels: int = DEFAULT_MAX_BLOCK_VOXELS,
    moments: bool = False,
    executor: Any = "threads",
    workers: int | None = None,
) -> Components:
    """Label the connected components of ``array`` blockwise (see the module docstring).

    ``array``: a 3D integer or boolean array-like or Source. ``scratch``: a folder to
    create for the labels (default: a temporary folder, removed by ``close``).
    ``executor``: ``"inline"``, ``"threads"`` or an entered Engine.
    """
    if connectivity not in CONNECTIVITIES:
        raise AnalysisError("unknown connectivity", field="connectivity", expected="6, 18 or 26", found=connectivity)
    shape = tuple(int(n) for n in array.shape)
    if len(shape) != 3:
        raise AnalysisError("connected components need a 3D volume (z, y, x)", field="shape", expected=3,
                            found=len(shape))
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "uib":
        raise AnalysisError("connected components need integer labels", field="dtype",
                            expected="an integer or boolean dtype", found=dtype.name)
    values = None if select is None else np.unique(np.atleast_1d(np.asarray(select, dtype=np.int64)))
    grid = grid_for([array], block_shape=block_shape, halo=0, max_block_voxels=max_block_voxels)
    owns = scratch is None
    root = Path(tempfile.mkdtemp(prefix="components-")) if owns else Path(scratch)  # type: ignore[arg-type]
    try:
        _create_scratch(root, owns)
        label = partial(_label_block, root=str(root), grid=grid, connectivity=connectivity, select=values,
                        unlabeled=unlabeled, moments=moments)
        parts: list[dict[str, Any]] = [None] * len(grid)  # type: ignore[list-item]
        for block, part in map_blocks(label, array, grid=grid, executor=executor, workers=workers):
            parts[grid.linear(block.index)] = part
        counts = np.array([p["n"] for p in parts], dtype=np.int64)
        if counts.sum() >= _PAIR_BASE:
            raise AnalysisError("too many provisional components for one run", field="block_shape",
                                expected=f"fewer than {int(_PAIR_BASE):,}", found=int(counts.sum()),
                                hint="use larger blocks")
        offsets = np.zeros(len(grid), dtype=np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        fill = np.array([p["fill"] for p in parts], dtype=bool)
        rows = _concat(parts, moments)
        del parts
        merge = partial(_merge_block, root=str(root), grid=grid, connectivity=connectivity, offsets=offsets)
        pairs = [p for _b, p in map_blocks(merge, grid=grid, executor=executor, workers=workers) if len(p)]
        stats, mapping, n_pairs = _union(rows, pairs, shape, moments)
        out_dtype = _label_dtype(len(stats))
        np.save(root / "mapping.npy", mapping.astype(out_dtype))
        np.save(root / "offsets.npy", offsets)
        np.save(root / "fill.npy", fill)
        meta = {"format": SCRATCH_FORMAT, "shape": list(shape), "block_shape": list(grid.block_shape),
                "connectivity": connectivity, "n_objects": len(stats), "dtype": out_dtype.name,
                "unlabeled_input": unlabeled, "select": None if values is None else values.tolist()}
        (root / "components.json").write_text(json.dumps(meta, indent=1))
    except BaseException:
        if owns:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return Components(shape, connectivity, stats, grid, root, out_dtype, owns, int(counts.sum()), n_pairs)


def warm_up() -> None:
    """Import what a run imports lazily (cc3d, numcodecs, scipy.sparse, the label dtypes),
    so a benchmark or a server times the work, not the imports."""
    import cc3d  # noqa: F401
    import numcodecs  # noqa: F401
    from scipy.sparse import csgraph  # noqa: F401

    _label_dtype(1)
    _codec()


def _label_dtype(n_objects: int) -> np.dtype:
    from ..labels.store import smallest_dtype

    return smallest_dtype(n_objects, field="components")


# --- scratch -------------------------------------------------------------------------------
#
# Plain files, not zarr: the labels are written once and read back by block, and zarr's
# per-call machinery cost three times the labelling itself. Layout under ROOT:
#   labels/B.K   block B (C-order position), z-slab K (SCRATCH_CHUNK_DEPTH planes), uint32
#   faces/B      block B's six boundary planes, one after the other: axis z, y, x, each
#                low then high (see _face_layout)
# each zstd-compressed raw C-order bytes; a missing file is all zeros.


def _codec():
    from numcodecs import Zstd

    return Zstd(level=1)


def _create_scratch(root: Path, fresh: bool) -> None:
    if root.exists() and not fresh and any(root.iterdir()):
        raise AnalysisError("the scratch folder for connected components is not empty", path=root,
                            expected="a new or empty folder", found="files")
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "faces").mkdir(exist_ok=True)


def _put(path: Path, data: np.ndarray) -> None:
    if not data.any():
        return
    path.write_bytes(_codec().encode(np.ascontiguousarray(data)))


def _get(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return np.zeros(shape, dtype=np.uint32)
    return np.frombuffer(_codec().decode(raw), dtype=np.uint32).reshape(shape)


def _slabs(block: Block) -> list[tuple[int, slice]]:
    """(k, global z range) of a block's scratch slabs."""
    z0, z1 = block.region[0].start, block.region[0].stop
    return [(k, slice(z, min(z + SCRATCH_CHUNK_DEPTH, z1))) for k, z in enumerate(range(z0, z1, SCRATCH_CHUNK_DEPTH))]


def _face_layout(bshape: tuple[int, ...]) -> list[tuple[int, str, tuple[int, int], int]]:
    """(axis, side, plane shape, start in the flat faces buffer) of the six planes."""
    out, at = [], 0
    for axis in range(3):
        plane = tuple(n for a, n in enumerate(bshape) if a != axis)
        for side in ("l", "h"):
            out.append((axis, side, plane, at))
            at += plane[0] * plane[1]
    return out  # type: ignore[return-value]


def _write_block(root: Path, grid: BlockGrid, block: Block, labels: np.ndarray) -> None:
    lin = grid.linear(block.index)
    z0 = block.region[0].start
    for k, zs in _slabs(block):
        _put(root / "labels" / f"{lin}.{k}", labels[zs.start - z0:zs.stop - z0])
    planes = [np.take(labels, 0 if side == "l" else -1, axis=axis).ravel()
              for axis, side, _, _ in _face_layout(block.shape)]
    _put(root / "faces" / f"{lin}", np.concatenate(planes))


def _block_face(root: Path, grid: BlockGrid, index: tuple[int, ...], axis: int, side: str) -> np.ndarray:
    bshape = grid.block(index).shape
    layout = _face_layout(bshape)
    flat = _get(root / "faces" / f"{grid.linear(index)}", (layout[-1][3] + layout[-1][2][0] * layout[-1][2][1],))
    for a, s_, plane, at in layout:
        if a == axis and s_ == side:
            return flat[at:at + plane[0] * plane[1]].reshape(plane)
    raise AssertionError(side)  # pragma: no cover


def _read_labels(root: Path, grid: BlockGrid, block: Block, region: tuple[slice, ...]) -> np.ndarray:
    """Block-local labels of ``block`` over ``region`` (inside the block, global coordinates)."""
    lin = grid.linear(block.index)
    out = np.empty(tuple(r.stop - r.start for r in region), dtype=np.uint32)
    bshape = block.shape
    for k, zs in _slabs(block):
        lo, hi = max(zs.start, region[0].start), min(zs.stop, region[0].stop)
        if lo >= hi:
            continue
        slab = _get(root / "labels" / f"{lin}.{k}", (zs.stop - zs.start, bshape[1], bshape[2]))
        out[lo - region[0].start:hi - region[0].start] = slab[
            lo - zs.start:hi - zs.start,
            region[1].start - block.region[1].start:region[1].stop - block.region[1].start,
            region[2].start - block.region[2].start:region[2].stop - block.region[2].start]
    return out


def _read_face(root: Path, grid: BlockGrid, index: tuple[int, ...], axis: int, side: str,
               ranges: list[tuple[int, int]]) -> np.ndarray:
    """The boundary plane (axis, side) of the layer of blocks at ``index[axis]``, over the
    global ``ranges`` of the two other axes (which may span several blocks)."""
    others = [a for a in range(3) if a != axis]
    out = np.zeros(tuple(b - a for a, b in ranges), dtype=np.uint32)
    bs = grid.block_shape
    spans = [range(a // bs[o], (b - 1) // bs[o] + 1) for (a, b), o in zip(ranges, others)]
    for i in spans[0]:
        for j in spans[1]:
            idx = list(index)
            idx[others[0]], idx[others[1]] = i, j
            blk = grid.block(idx)
            r0, r1 = blk.region[others[0]], blk.region[others[1]]
            plane = _block_face(root, grid, blk.index, axis, side)
            a0, b0 = max(r0.start, ranges[0][0]), min(r0.stop, ranges[0][1])
            a1, b1 = max(r1.start, ranges[1][0]), min(r1.stop, ranges[1][1])
            out[a0 - ranges[0][0]:b0 - ranges[0][0], a1 - ranges[1][0]:b1 - ranges[1][0]] = plane[
                a0 - r0.start:b0 - r0.start, a1 - r1.start:b1 - r1.start]
    return out


# --- pass 1: label a block ---------------------------------------------------------------------


def _first_voxels(labels: np.ndarray, n: int) -> np.ndarray:
    """Flat (block-local, C order) index of each label's first voxel, for labels numbered
    1..n in order of first appearance (cc3d's order)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    width = labels.shape[-1]
    rowmax = labels.reshape(-1, width).max(axis=1)
    seen = np.maximum.accumulate(rowmax)
    before = np.empty_like(seen)
    before[0] = 0
    before[1:] = seen[:-1]
    rows = np.flatnonzero(seen > before)
    if len(rows) * width * 4 < labels.size:  # few rows introduce labels: scan only those
        sub = np.ascontiguousarray(labels.reshape(-1, width)[rows].T)
        prev = before[rows]
        np.maximum(sub[0], prev, out=sub[0])
        acc = np.maximum.accumulate(sub, axis=0)
        grows = np.empty(acc.shape, dtype=bool)
        grows[0] = acc[0] > prev
        np.greater(acc[1:], acc[:-1], out=grows[1:])
        col, r = np.nonzero(grows)
        first = rows[r].astype(np.int64) * width + col
        first.sort()
    else:  # many: a running maximum over the foreground voxels
        flat = labels.ravel()
        fg = np.flatnonzero(flat)
        acc = np.maximum.accumulate(flat[fg])
        grows = np.empty(acc.shape, dtype=bool)
        grows[0] = True
        np.greater(acc[1:], acc[:-1], out=grows[1:])
        first = fg[grows].astype(np.int64)
    if len(first) != n:  # pragma: no cover - cc3d's numbering is in raster order
        raise AnalysisError("cc3d did not number components in raster order", field="labels",
                            expected=n, found=len(first))
    return first


def _label_block(block: Block, data: np.ndarray, *, root: str, grid: BlockGrid, connectivity: int,
                 select: np.ndarray | None, unlabeled: int | None, moments: bool) -> dict[str, Any]:
    import cc3d

    if data.dtype == bool:
        data = data.view(np.uint8)
    unl = None
    if unlabeled is not None:
        unl = data == unlabeled
        if not unl.any():
            unl = None
    if select is not None or unl is not None:
        keep = np.isin(data, select) if select is not None else np.ones(data.shape, dtype=bool)
        if unl is not None:
            keep &= ~unl
        data = np.where(keep, data, np.zeros((), dtype=data.dtype))
    labels = cc3d.connected_components(np.ascontiguousarray(data), connectivity=connectivity,
                                       out_dtype=np.uint32)
    n = int(labels.max()) if labels.size else 0
    origin = np.asarray(block.offset, dtype=np.int64)
    part: dict[str, Any] = {"n": n, "fill": bool(unl is not None and unl.all())}
    if n:
        st = cc3d.statistics(labels, no_slice_conversion=True)
        count = st["voxel_counts"][1:n + 1].astype(np.int64)
        local_sums = np.rint(st["centroids"][1:n + 1] * count[:, None]).astype(np.int64)
        bb = np.asarray(st["bounding_boxes"][1:n + 1], dtype=np.int64)
        first = _first_voxels(labels, n)
        local = np.stack(np.unravel_index(first, labels.shape), axis=1).astype(np.int64)
        part.update(
            value=data.ravel()[first].astype(np.int64),
            voxels=count,
            coord_sums=local_sums + origin[None, :] * count[:, None],
            bbox_start=bb[:, 0::2] + origin[None, :],
            bbox_stop=bb[:, 1::2] + 1 + origin[None, :],
            first_voxel=np.ravel_multi_index(tuple((local + origin[None, :]).T), grid.shape).astype(np.int64),
        )
        if moments:
            part["moments"] = _local_moments(labels, n, count, local_sums)
    if unl is not None:
        labels[unl] = UNLABELED_LOCAL
    _write_block(Path(root), grid, block, labels)
    return part


def _local_moments(labels: np.ndarray, n: int, count: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Second moments about each component's local centroid (n, 6), in block coordinates."""
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg]
    coords = np.unravel_index(fg, labels.shape)
    c = [x.astype(np.float64) for x in coords]
    out = np.empty((n, 6), dtype=np.float64)
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    mean = sums / count[:, None]
    for j, (a, b) in enumerate(pairs):
        raw = np.bincount(lab, weights=c[a] * c[b], minlength=n + 1)[1:]
        out[:, j] = raw - count * mean[:, a] * mean[:, b]  # sum of (x-m_a)(x-m_b)
    return out


# --- pass 2: merge across faces --------------------------------------------------------------------


def _inplane_offsets(connectivity: int) -> list[tuple[int, int]]:
    all9 = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    if connectivity == 6:
        return [(0, 0)]
    if connectivity == 18:
        return [(a, b) for a, b in all9 if abs(a) + abs(b) <= 1]
    return all9


#: pairs of provisional ids travel as one int64 key a * _PAIR_BASE + b (ids < 2**31)
_PAIR_BASE = np.int64(2**31)


def _merge_block(block: Block, *, root: str, grid: BlockGrid, connectivity: int,
                 offsets: np.ndarray) -> np.ndarray:
    """Pairs (provisional ids) of touching components across this block's high faces."""
    found = []
    own = offsets[grid.linear(block.index)]
    off_grid = offsets.reshape(grid.grid_shape)
    shifts = _inplane_offsets(connectivity)
    for axis in range(3):
        if block.index[axis] + 1 >= grid.grid_shape[axis]:
            continue  # the volume's border
        others = [a for a in range(3) if a != axis]
        p = _block_face(Path(root), grid, block.index, axis, "h")
        lo = [max(block.region[a].start - 1, 0) for a in others]
        hi = [min(block.region[a].stop + 1, grid.shape[a]) for a in others]
        nxt = list(block.index)
        nxt[axis] += 1
        q = _read_face(Path(root), grid, tuple(nxt), axis, "l", list(zip(lo, hi)))
        # provisional-id offset of every q voxel: the block it lies in
        bi = [np.arange(lo[i], hi[i]) // grid.block_shape[a] for i, a in enumerate(others)]
        sel = [None, None, None]
        sel[axis] = block.index[axis] + 1
        sel[others[0]] = bi[0][:, None]
        sel[others[1]] = bi[1][None, :]
        q_off = off_grid[tuple(sel)]
        pv = (p > 0) & (p != UNLABELED_LOCAL)
        qv = (q > 0) & (q != UNLABELED_LOCAL)
        # p[u, v] is at global (u0 + u, v0 + v); q[i, j] at (lo0 + i, lo1 + j)
        u0 = [block.region[a].start for a in others]
        for du, dv in shifts:
            # p indices whose neighbour (u + du, v + dv) is inside q
            ps, qs = [], []
            for d, start, n_p, qlo, n_q in ((du, u0[0], p.shape[0], lo[0], q.shape[0]),
                                            (dv, u0[1], p.shape[1], lo[1], q.shape[1])):
                first = max(0, qlo - start - d)
                last = min(n_p, qlo + n_q - start - d)
                if last <= first:
                    break
                ps.append(slice(first, last))
                qs.append(slice(first + start + d - qlo, last + start + d - qlo))
            if len(ps) < 2:
                continue
            m = pv[ps[0], ps[1]] & qv[qs[0], qs[1]]
            if not m.any():
                continue
            a_ids = p[ps[0], ps[1]][m].astype(np.int64) + own
            b_ids = q[qs[0], qs[1]][m].astype(np.int64) + q_off[qs[0], qs[1]][m]
            found.append(np.unique(a_ids * _PAIR_BASE + b_ids))  # one int64 key per pair: a 1D sort
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    keys = np.unique(np.concatenate(found))
    return np.stack([keys // _PAIR_BASE, keys % _PAIR_BASE], axis=1)


# --- union-find and the table -----------------------------------------------------------------------


def _concat(parts: list[dict[str, Any]], moments: bool) -> dict[str, np.ndarray]:
    cols = ["value", "voxels", "coord_sums", "bbox_start", "bbox_stop", "first_voxel"] + (["moments"] if moments else [])
    empty = {"value": (0,), "voxels": (0,), "coord_sums": (0, 3), "bbox_start": (0, 3), "bbox_stop": (0, 3),
             "first_voxel": (0,), "moments": (0, 6)}
    out = {}
    for c in cols:
        pieces = [p[c] for p in parts if p["n"]]
        dt = np.float64 if c == "moments" else np.int64
        out[c] = np.concatenate(pieces) if pieces else np.zeros(empty[c], dtype=dt)
    return out


def _union(rows: dict[str, np.ndarray], pairs: list[np.ndarray], shape: tuple[int, ...],
           moments: bool) -> tuple[ObjectStats, np.ndarray, int]:
    """Join touching provisional components of equal value; number objects by first voxel."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as graph_components

    n = len(rows["voxels"])
    edges = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    if len(edges):
        a, b = edges[:, 0] - 1, edges[:, 1] - 1
        same = rows["value"][a] == rows["value"][b]
        a, b = a[same], b[same]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    if n == 0:
        return _empty_stats(shape, moments), np.zeros(1, dtype=np.int64), 0
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, root = graph_components(graph, directed=False)
    order = np.argsort(root, kind="stable")
    starts = np.flatnonzero(np.r_[True, root[order][1:] != root[order][:-1]])

    def total(col):
        return np.add.reduceat(rows[col][order], starts, axis=0)

    first = np.minimum.reduceat(rows["first_voxel"][order], starts)
    voxels = total("voxels")
    sums = total("coord_sums")
    bstart = np.minimum.reduceat(rows["bbox_start"][order], starts, axis=0)
    bstop = np.maximum.reduceat(rows["bbox_stop"][order], starts, axis=0)
    value = rows["value"][order][starts]
    mom = None
    if moments:
        mom = _combine_moments(rows, order, starts, voxels, sums)
    rank = np.argsort(first, kind="stable")  # canonical order: first voxel in C order
    final_of_group = np.empty(len(rank), dtype=np.int64)
    final_of_group[rank] = np.arange(1, len(rank) + 1)
    group_of_row = np.empty(n, dtype=np.int64)
    group_of_row[order] = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    mapping = np.zeros(n + 1, dtype=np.int64)
    mapping[1:] = final_of_group[group_of_row]
    stats = ObjectStats(value[rank], voxels[rank], sums[rank], bstart[rank], bstop[rank], first[rank],
                        tuple(int(s) for s in shape), None if mom is None else mom[rank])  # type: ignore[arg-type]
    return stats, mapping, int(len(a))


def _combine_moments(rows, order, starts, voxels, sums) -> np.ndarray:
    """Central second moments per object (per voxel) from the parts' moments about their
    own centroids (parallel-axis theorem: M = sum(M_i + n_i (m_i - m)(m_i - m)^T))."""
    n_i = rows["voxels"][order].astype(np.float64)
    m_i = rows["coord_sums"][order] / n_i[:, None]
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    m = sums / voxels[:, None].astype(np.float64)
    d = m_i - m[group]
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    shift = np.stack([n_i * d[:, a] * d[:, b] for a, b in pairs], axis=1)
    total = np.add.reduceat(rows["moments"][order] + shift, starts, axis=0)
    return total / voxels[:, None]


def _empty_stats(shape, moments: bool) -> ObjectStats:
    z = np.zeros(0, dtype=np.int64)
    z3 = np.zeros((0, 3), dtype=np.int64)
    return ObjectStats(z, z, z3, z3, z3, z, tuple(int(s) for s in shape),  # type: ignore[arg-type]
                       np.zeros((0, 6)) if moments else None)


# --- the labelled volume ----------------------------------------------------------------------


class InstanceSource(Source):
    """The relabelled instance ids of a :class:`Components` run, read lazily.

    ``read(region)`` reads the block-local labels of the blocks it meets from the scratch
    and maps them to object ids 1..K (0 background; the dtype's maximum where the input
    was unlabeled). Picklable: it holds the scratch path, and opens arrays on first read.
    """

    reader = "connected-components"

    def __init__(self, scratch: Path | str, mapping: str = "mapping") -> None:
        self.scratch = Path(scratch)
        self.mapping = mapping
        meta_path = self.scratch / "components.json"
        try:
            meta = json.loads(meta_path.read_text())
            if mapping != "mapping":
                meta.update(json.loads((self.scratch / f"{mapping}.json").read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise AnalysisError("not a connected-components scratch folder", path=meta_path,
                                expected="components.json written by connected_components",
                                found=type(exc).__name__) from exc
        self.meta = meta
        self.grid = BlockGrid(tuple(meta["shape"]), tuple(meta["block_shape"]))
        self._dtype = np.dtype(meta["dtype"])
        self.unlabeled = int(np.iinfo(self._dtype).max)
        self._tables_: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n_objects(self) -> int:
        return int(self.meta["n_objects"])

    @property
    def paths(self) -> list[Path]:
        return [self.scratch]

    @property
    def header(self) -> HeaderMetadata:
        return HeaderMetadata(shape=tuple(self.meta["shape"]), dtype=self._dtype.name)  # type: ignore[arg-type]

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tables = self._tables_
        if tables is None:  # threads may race here: each loads, one tuple is kept whole
            tables = (np.load(self.scratch / f"{self.mapping}.npy", mmap_mode="r"),
                      np.load(self.scratch / "offsets.npy"), np.load(self.scratch / "fill.npy"))
            self._tables_ = tables
        return tables

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        region = normalize_region(region, self.shape)
        mapping, offsets, _ = self._tables()
        out = np.zeros(tuple(s.stop - s.start for s in region), dtype=self._dtype)
        for block in self.grid.blocks_in(region):
            inter = tuple(slice(max(b.start, r.start), min(b.stop, r.stop)) for b, r in zip(block.region, region))
            local = _read_labels(self.scratch, self.grid, block, inter)
            dst = tuple(slice(i.start - r.start, i.stop - r.start) for i, r in zip(inter, region))
            fg = (local > 0) & (local != UNLABELED_LOCAL)
            if fg.any():
                ids = local[fg].astype(np.int64) + offsets[self.grid.linear(block.index)]
                piece = out[dst]
                piece[fg] = mapping[ids]
            if self.meta.get("unlabeled_input") is not None:
                out[dst][local == UNLABELED_LOCAL] = self.unlabeled
        return out

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        """True when every block the region meets was entirely unlabeled in the input."""
        _, _, fill = self._tables()
        blocks = list(self.grid.blocks_in(normalize_region(region, self.shape)))
        return bool(blocks) and all(fill[self.grid.linear(b.index)] for b in blocks)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tables_"] = None
        return state

    def __repr__(self) -> str:
        return f"InstanceSource({str(self.scratch)!r}, shape={self.shape}, objects={self.n_objects})"


__all__ = [
    "CONNECTIVITIES",
    "Components",
    "InstanceSource",
    "MOMENT_KEYS",
    "ObjectStats",
    "connected_components",
]
