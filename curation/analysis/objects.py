"""The object table: sizes, shapes and places of segmented objects, filtered and grouped.

:func:`analyze_objects` takes a label volume (a prediction or ground truth, semantic or
instance), finds its objects with :func:`~curation.analysis.components.connected_components`
and returns an :class:`ObjectAnalysis`: one row per object, one row per parent, and the
plausibility findings. Everything is computed blockwise (:mod:`curation.blocks`), so
memory follows the block size and the number of objects, never the volume.

Object columns (lengths in nm, from the anisotropic voxel size (z, y, x)):

``id`` (1..K, by first voxel in C order, after filtering), ``component_id`` (the id
before filtering), ``value`` (the label value it was made of), ``voxels``,
``volume_nm3``, ``equivalent_diameter_nm`` (of the sphere of that volume),
``disc_diameter_nm`` and ``thickness_nm`` (principal second moments with each voxel's
own extent added: ``4 sqrt(mean of the two largest variances)`` and
``sqrt(12 x the smallest)``; exact for a uniform disc or cylinder, the shape of a nuclear
pore), ``centroid_{z,y,x}_nm``, ``bbox_{z,y,x}{0,1}`` (voxels, stop exclusive),
``touches_border``, ``inside_fraction`` (of ``within``, else NaN), ``parent_id`` (0: none).

Filters, in this order: ``min_size_nm3``; ``within`` a mask layer (nonzero and not
unlabeled is inside), by ``within_rule``:

* ``"majority"``: at least half of the object's voxels are inside;
* ``"any"``: at least one voxel is inside (touching counts once ``within_margin_nm``
  grows the mask, e.g. pores, which are holes in the envelope mask, are ``within`` the
  envelope with ``rule="any"`` and a margin of one or two voxels);
* ``"all"``: every voxel is inside.

``within_margin_nm`` grows the mask by that distance (Euclidean, anisotropic) first.

Parents (``per``, e.g. nuclei): instance ids (``per_mode="instances"``) or a mask whose
connected components are the parents (``"components"``). An object's parent is the
parent id covering most of its voxels (ties: the smaller id); with ``per_margin_nm``
each voxel takes the nearest parent within that distance, so objects just outside a
parent (pores on a nucleus mask that stops at the envelope) still find it. The parent
surface is measured ``"mesh"`` (marching cubes, skimage's Lewiner variant, summed
cell by cell over blocks: equal to one mesh of the whole parent) or ``"faces"`` (the
voxel faces between the parent and everything else, each with its anisotropic area;
a voxelised smooth surface over-counts by about 1.5x). Faces on the volume's border are
never counted: they are cuts, not surface. Density is objects per µm² of that surface.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..blocks import Block, grid_for, map_blocks
from ..errors import AnalysisError
from .components import Components, InstanceSource, ObjectStats, connected_components

WithinRule = Literal["majority", "any", "all"]
SurfaceMethod = Literal["mesh", "faces"]
WITHIN_RULES = ("majority", "any", "all")
SURFACE_METHODS = ("mesh", "faces")
#: the mesh is the 0.5 level of the parent's mask smoothed by a Gaussian of this sigma
#: (voxels, per axis), which removes the voxel staircase (alone ~9% too much area on a
#: gently curved surface); truncated at MESH_TRUNCATE sigma
MESH_SIGMA_VOXELS = 1.0
MESH_TRUNCATE = 4.0
#: joins with a margin hold a distance transform and its indices (20 bytes per voxel)
JOIN_BLOCK_VOXELS = 128**3


# --- plausibility ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plausibility:
    """What is biologically plausible for one structure; results outside are flagged."""

    structure: str
    diameter_column: str = "equivalent_diameter_nm"
    diameter_nm: tuple[float, float] | None = None
    density_per_um2: tuple[float, float] | None = None
    #: share of objects outside ``diameter_nm`` above which the run is flagged
    max_outside_fraction: float = 0.25


#: known structures; pass your own :class:`Plausibility` for others
PLAUSIBILITY: dict[str, Plausibility] = {
    # nuclear pore complexes: ~120 nm across (80-160 nm with fixation and segmentation
    # margins), 5-60 per µm² of nuclear envelope across cell types
    "nuclear-pore": Plausibility("nuclear-pore", "disc_diameter_nm", (80.0, 160.0), (5.0, 60.0)),
    "mitochondrion": Plausibility("mitochondrion", "equivalent_diameter_nm", (150.0, 2000.0), None),
    "vesicle": Plausibility("vesicle", "equivalent_diameter_nm", (20.0, 200.0), None),
}


@dataclass(frozen=True)
class Finding:
    """A plausibility flag: ``subject`` is ``"objects"`` or ``"parent N"``."""

    level: Literal["warning", "info"]
    subject: str
    quantity: str
    message: str
    value: float
    expected: tuple[float, float]


# --- tables ------------------------------------------------------------------------------------


@dataclass
class Table:
    """Named numpy columns of one length, in order (converts to Arrow for Parquet/CSV)."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def take(self, rows: np.ndarray) -> "Table":
        return Table({k: v[rows] for k, v in self.columns.items()})

    def rows(self) -> list[dict[str, Any]]:
        """Rows as JSON-safe dicts (NaN becomes None)."""
        out = []
        for i in range(len(self)):
            row = {}
            for k, v in self.columns.items():
                x = v[i].item() if hasattr(v[i], "item") else v[i]
                row[k] = None if isinstance(x, float) and math.isnan(x) else x
            out.append(row)
        return out

    def to_arrow(self, metadata: Mapping[str, str] | None = None):
        import pyarrow as pa

        table = pa.table({k: pa.array(v) for k, v in self.columns.items()})
        if metadata:
            table = table.replace_schema_metadata({str(k): str(v) for k, v in metadata.items()})
        return table


# --- the analysis -------------------------------------------------------------------------------


@dataclass
class ObjectAnalysis:
    """Objects, parents and findings of one run; ``labels`` is the kept objects' instance
    volume (ids equal the table's ``id``). Close it (or use ``with``) to drop the scratch."""

    objects: Table
    parents: Table | None
    findings: list[Finding]
    settings: dict[str, Any]
    counts: dict[str, int]
    components: Components
    labels: InstanceSource
    surface_method: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.components.close()

    def __enter__(self) -> "ObjectAnalysis":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def analyze_objects(
    layer: Any,
    *,
    voxel_size_nm: Sequence[float],
    connectivity: int = 26,
    select: int | Sequence[int] | None = None,
    unlabeled: int | None = None,
    min_size_nm3: float = 0.0,
    within: Any = None,
    within_rule: WithinRule = "any",
    within_margin_nm: float = 0.0,
    within_unlabeled: int | None = None,
    per: Any = None,
    per_mode: Literal["instances", "components"] = "instances",
    per_margin_nm: float = 0.0,
    per_unlabeled: int | None = None,
    surface: SurfaceMethod = "mesh",
    plausibility: Plausibility | str | None = None,
    scratch: Path | str | None = None,
    block_shape: Sequence[int] | int | None = None,
    executor: Any = "threads",
    workers: int | None = None,
) -> ObjectAnalysis:
    """Objects of ``layer`` with their table, filters, parents and plausibility flags
    (see the module docstring). ``unlabeled`` values of any layer are never inside,
    never a parent, never an object."""
    vs = _voxel_size(voxel_size_nm)
    if within_rule not in WITHIN_RULES:
        raise AnalysisError("unknown rule for --within", field="within_rule", expected=" | ".join(WITHIN_RULES),
                            found=within_rule)
    if surface not in SURFACE_METHODS:
        raise AnalysisError("unknown surface method", field="surface", expected=" | ".join(SURFACE_METHODS),
                            found=surface)
    for name, value in (("min_size_nm3", min_size_nm3), ("within_margin_nm", within_margin_nm),
                        ("per_margin_nm", per_margin_nm)):
        if not value >= 0:
            raise AnalysisError("a size or margin is not negative", field=name, expected=">= 0", found=value)
    rule = PLAUSIBILITY.get(plausibility) if isinstance(plausibility, str) else plausibility
    if isinstance(plausibility, str) and rule is None:
        raise AnalysisError("no plausibility rules for this structure", field="plausibility",
                            expected=" | ".join(PLAUSIBILITY), found=plausibility)
    for what, other in (("within", within), ("per", per)):
        if other is not None and tuple(other.shape) != tuple(layer.shape):
            raise AnalysisError(f"the {what} layer's shape differs from the analysed layer's", field=what,
                                expected=tuple(layer.shape), found=tuple(other.shape))
    run = dict(executor=executor, workers=workers)
    comp = connected_components(layer, connectivity=connectivity, select=select, unlabeled=unlabeled,
                                scratch=scratch, block_shape=block_shape, moments=True, **run)
    parent_comp: Components | None = None
    try:
        stats = comp.stats
        table = object_columns(stats, vs)
        keep = np.ones(len(stats), dtype=bool)
        counts = {"components": len(stats)}
        if min_size_nm3 > 0:
            keep &= table["volume_nm3"] >= min_size_nm3
        counts["removed_small"] = int(len(stats) - keep.sum())
        labels_all = comp.labels()
        if within is not None:
            inside = _inside_counts(labels_all, within, vs, within_margin_nm, within_unlabeled, len(stats),
                                    block_shape, run)
            frac = inside / np.maximum(stats.voxels, 1)
            table["inside_fraction"] = frac
            ok = {"any": inside > 0, "majority": 2 * inside >= stats.voxels, "all": inside == stats.voxels}[within_rule]
            counts["removed_outside"] = int((keep & ~ok).sum())
            keep &= ok
        parents = None
        parent_ids = np.zeros(len(stats), dtype=np.int64)
        if per is not None:
            parent_layer = per
            if per_mode == "components":
                parent_comp = connected_components(per, connectivity=26, unlabeled=per_unlabeled,
                                                   block_shape=block_shape, **run)
                parent_layer = parent_comp.labels()
                per_unlabeled = parent_layer.unlabeled if per_unlabeled is not None else None
            elif per_mode != "instances":
                raise AnalysisError("unknown parent mode", field="per_mode", expected="instances | components",
                                    found=per_mode)
            parent_ids = _assign_parents(labels_all, parent_layer, vs, per_margin_nm, per_unlabeled, len(stats),
                                         block_shape, run)
            parents = parent_columns(parent_layer, vs, surface, per_unlabeled, block_shape, run)
        table["parent_id"] = parent_ids
        kept = np.flatnonzero(keep)
        objects = Table(table).take(kept)
        objects.columns["id"] = np.arange(1, len(kept) + 1, dtype=np.int64)
        counts["objects"] = len(kept)
        if parents is not None:
            parents = _per_parent(parents, objects)
        findings = check_plausibility(objects, parents, rule)
        labels = comp.labels(keep=keep) if not keep.all() else labels_all
    except BaseException:
        comp.close()
        raise
    finally:
        if parent_comp is not None:
            parent_comp.close()
    settings = {
        "voxel_size_nm": list(vs), "connectivity": connectivity,
        "select": None if select is None else np.atleast_1d(select).tolist(), "unlabeled": unlabeled,
        "min_size_nm3": float(min_size_nm3), "within_rule": within_rule if within is not None else None,
        "within_margin_nm": float(within_margin_nm) if within is not None else None,
        "per_mode": per_mode if per is not None else None,
        "per_margin_nm": float(per_margin_nm) if per is not None else None,
        "surface_method": surface if per is not None else None,
        "plausibility": None if rule is None else rule.structure,
        "diameter_column": None if rule is None else rule.diameter_column,
    }
    return ObjectAnalysis(objects, parents, findings, settings, counts, comp, labels,
                          surface if per is not None else None)


def _voxel_size(voxel_size_nm: Sequence[float]) -> tuple[float, float, float]:
    vs = tuple(float(v) for v in voxel_size_nm)
    if len(vs) != 3 or not all(v > 0 and math.isfinite(v) for v in vs):
        raise AnalysisError("a voxel size is three positive lengths in nm (z, y, x)", field="voxel_size_nm",
                            expected="e.g. (8, 8, 8)", found=voxel_size_nm)
    return vs  # type: ignore[return-value]


# --- object columns -------------------------------------------------------------------------


def object_columns(stats: ObjectStats, vs: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """The per-object columns from component statistics (before filtering)."""
    n = len(stats)
    voxel_nm3 = vs[0] * vs[1] * vs[2]
    volume = stats.voxels.astype(np.float64) * voxel_nm3
    cols: dict[str, np.ndarray] = {
        "id": stats.ids,
        "component_id": stats.ids,
        "value": stats.value,
        "voxels": stats.voxels,
        "volume_nm3": volume,
        "equivalent_diameter_nm": np.cbrt(6.0 * volume / math.pi),
    }
    disc, thick = _disc(stats, vs)
    cols["disc_diameter_nm"] = disc
    cols["thickness_nm"] = thick
    centroid = stats.centroid * np.asarray(vs)[None, :] if n else np.zeros((0, 3))
    for i, ax in enumerate("zyx"):
        cols[f"centroid_{ax}_nm"] = centroid[:, i]
    for i, ax in enumerate("zyx"):
        cols[f"bbox_{ax}0"] = stats.bbox_start[:, i]
    for i, ax in enumerate("zyx"):
        cols[f"bbox_{ax}1"] = stats.bbox_stop[:, i]
    cols["touches_border"] = stats.touches_border
    cols["inside_fraction"] = np.full(n, np.nan)
    return cols


def _disc(stats: ObjectStats, vs: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """In-plane diameter and thickness (nm) from the principal second moments."""
    n = len(stats)
    if stats.moments is None or n == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    m = stats.moments
    s = np.asarray(vs)
    cov = np.empty((n, 3, 3))
    for j, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))):
        cov[:, a, b] = cov[:, b, a] = m[:, j] * s[a] * s[b]
    cov[:, [0, 1, 2], [0, 1, 2]] += (s**2 / 12.0)[None, :]  # each voxel is a box, not a point
    lam = np.clip(np.linalg.eigvalsh(cov), 0, None)  # ascending
    return 4.0 * np.sqrt((lam[:, 1] + lam[:, 2]) / 2.0), np.sqrt(12.0 * lam[:, 0])


# --- joins with other layers (blockwise) ---------------------------------------------------------


def _margin_voxels(margin_nm: float, vs: tuple[float, float, float]) -> tuple[int, int, int]:
    return tuple(int(math.ceil(margin_nm / v)) for v in vs)  # type: ignore[return-value]


def _grown(labels: np.ndarray, unlabeled: int | None, margin_nm: float, vs, want_ids: bool) -> np.ndarray:
    """``labels`` (0 and ``unlabeled`` are empty) grown by ``margin_nm``: each empty voxel
    within reach takes the nearest label (``want_ids``) or becomes True."""
    from scipy import ndimage

    full = labels != 0
    if unlabeled is not None:
        full &= labels != unlabeled
    if margin_nm <= 0 or full.all() or not full.any():
        return np.where(full, labels, 0) if want_ids else full
    if not want_ids:
        dist = ndimage.distance_transform_edt(~full, sampling=vs)
        return dist <= margin_nm
    dist, idx = ndimage.distance_transform_edt(~full, sampling=vs, return_indices=True)
    near = labels[tuple(idx)]
    return np.where(dist <= margin_nm, near, 0)


def _inside_block(block: Block, objects: np.ndarray, mask: np.ndarray, *, unlabeled, margin_nm, vs, n):
    inside = _grown(mask, unlabeled, margin_nm, vs, want_ids=False)[block.inner]
    ids = objects[block.inner]
    ids = ids[inside & (ids > 0) & (ids <= n)]
    return np.bincount(ids.astype(np.int64), minlength=n + 1)


def _inside_counts(labels: InstanceSource, within: Any, vs, margin_nm: float, unlabeled: int | None, n: int,
                   block_shape, run) -> np.ndarray:
    grid = grid_for([labels, within], block_shape=block_shape, halo=_margin_voxels(margin_nm, vs),
                    max_block_voxels=JOIN_BLOCK_VOXELS)
    fn = partial(_inside_block, unlabeled=unlabeled, margin_nm=margin_nm, vs=vs, n=n)
    total = np.zeros(n + 1, dtype=np.int64)
    for _b, counts in map_blocks(fn, labels, within, grid=grid, **run):
        total += counts
    return total[1:]


def _pairs_block(block: Block, objects: np.ndarray, parents: np.ndarray, *, unlabeled, margin_nm, vs, n):
    grown = _grown(parents, unlabeled, margin_nm, vs, want_ids=True)[block.inner]
    ids = objects[block.inner]
    m = (ids > 0) & (ids <= n) & (grown > 0)
    if not m.any():
        return np.zeros((0, 3), dtype=np.int64)
    key = ids[m].astype(np.int64) * (1 << 32) + grown[m].astype(np.int64)
    keys, cnt = np.unique(key, return_counts=True)
    return np.stack([keys >> 32, keys & 0xFFFFFFFF, cnt], axis=1)


def _assign_parents(labels: InstanceSource, parents: Any, vs, margin_nm: float, unlabeled: int | None, n: int,
                    block_shape, run) -> np.ndarray:
    """Per object, the parent id covering most of its voxels (ties: the smaller id), or 0."""
    grid = grid_for([labels, parents], block_shape=block_shape, halo=_margin_voxels(margin_nm, vs),
                    max_block_voxels=JOIN_BLOCK_VOXELS)
    fn = partial(_pairs_block, unlabeled=unlabeled, margin_nm=margin_nm, vs=vs, n=n)
    parts = [p for _b, p in map_blocks(fn, labels, parents, grid=grid, **run) if len(p)]
    out = np.zeros(n, dtype=np.int64)
    if not parts:
        return out
    allp = np.concatenate(parts)
    key = allp[:, 0] * (1 << 32) + allp[:, 1]
    keys, inv = np.unique(key, return_inverse=True)
    cnt = np.bincount(inv, weights=allp[:, 2]).astype(np.int64)
    obj, par = keys >> 32, keys & 0xFFFFFFFF
    # most voxels first, then the smaller parent id: the first row per object wins
    order = np.lexsort((par, -cnt, obj))
    obj, par = obj[order], par[order]
    first = np.r_[True, obj[1:] != obj[:-1]]
    out[obj[first] - 1] = par[first]
    return out


# --- parents ---------------------------------------------------------------------------------------


def _surface_block(block: Block, parents: np.ndarray, *, unlabeled, method, vs, shape):
    """Voxels and surface (nm²) per parent id over the faces or mesh cells this block owns:
    those whose lower corner lies in its write region."""
    from scipy import ndimage

    lab = parents.astype(np.int64, copy=True)
    if unlabeled is not None:
        lab[lab == unlabeled] = 0
    own = lab[block.inner]
    ids, vox = np.unique(own[own > 0], return_counts=True)
    # the corners of the owned cells: the write region and one voxel beyond on the high side
    corners = tuple(slice(i.start, min(i.stop + 1, n)) for i, n in zip(block.inner, lab.shape))
    area: dict[int, float] = {}
    if method == "faces":
        face_area = (vs[1] * vs[2], vs[0] * vs[2], vs[0] * vs[1])
        c = lab[corners]
        for axis in range(3):
            n_own = block.inner[axis].stop - block.inner[axis].start
            n_own = min(n_own, c.shape[axis] - 1)  # at the volume's border, no neighbour beyond
            a = np.take(c, range(0, n_own), axis=axis)
            b = np.take(c, range(1, n_own + 1), axis=axis)
            # the lower voxel of a face is in the block: the other axes stay within it
            cut = tuple(slice(0, i.stop - i.start) if k != axis else slice(None) for k, i in enumerate(block.inner))
            a, b = a[cut], b[cut]
            diff = a != b
            for side in (a[diff], b[diff]):
                side = side[side > 0]
                if len(side):
                    u, cnt = np.unique(side, return_counts=True)
                    for k, v in zip(u.tolist(), cnt.tolist()):
                        area[k] = area.get(k, 0.0) + v * face_area[axis]
        return ids, vox, area
    reach = int(math.ceil(MESH_TRUNCATE * MESH_SIGMA_VOXELS)) + 1
    # the volume's borders this block's cells reach: the mesh is carried on to them
    at_lo = [r.start == 0 for r in block.region]
    at_hi = [r.stop == n for r, n in zip(block.region, shape)]
    for k, box in enumerate(ndimage.find_objects(lab), start=1):
        if box is None:
            continue
        # the parent's box grown by the kernel's reach: outside it the smoothed mask is 0
        grown = tuple(slice(max(b.start - reach, 0), min(b.stop + reach, n)) for b, n in zip(box, lab.shape))
        mask = (lab[grown] == k).astype(np.float32)
        smooth = ndimage.gaussian_filter(mask, MESH_SIGMA_VOXELS, mode="nearest", truncate=MESH_TRUNCATE)
        # the owned cells' corners within the grown box
        cut = tuple(slice(max(c.start, g.start) - g.start, min(c.stop, g.stop) - g.start)
                    for c, g in zip(corners, grown))
        sub = smooth[cut]
        if min(sub.shape) < 1 or not (sub.min() < 0.5 < sub.max()):
            continue
        a = _mesh_area(sub, vs)
        # between the outermost voxel centres and the volume's border lies half a cell the
        # mesh does not reach: add it as the surface there extruded by half a voxel
        pads = [(1 if lo and g.start == 0 else 0, 1 if hi and c.stop == g.stop == n else 0)
                for lo, hi, c, g, n in zip(at_lo, at_hi, corners, grown, lab.shape)]
        if any(p for pair in pads for p in pair):
            a += 0.5 * (_mesh_area(np.pad(sub, pads, mode="edge"), vs) - a)
        if a:
            area[k] = area.get(k, 0.0) + a
    return ids, vox, area


def _mesh_area(values: np.ndarray, vs) -> float:
    from skimage.measure import marching_cubes, mesh_surface_area

    if min(values.shape) < 2 or not (values.min() < 0.5 < values.max()):
        return 0.0
    verts, faces, _n, _v = marching_cubes(values, 0.5, spacing=vs, method="lewiner")
    return float(mesh_surface_area(verts, faces))


def parent_columns(parents: Any, vs, method: str, unlabeled: int | None, block_shape, run) -> Table:
    """Per parent id: voxels, volume (µm³), surface (µm²) by ``method``."""
    halo = 1 if method == "faces" else int(math.ceil(MESH_TRUNCATE * MESH_SIGMA_VOXELS)) + 1
    grid = grid_for([parents], block_shape=block_shape, halo=halo, max_block_voxels=JOIN_BLOCK_VOXELS)
    fn = partial(_surface_block, unlabeled=unlabeled, method=method, vs=vs,
                 shape=tuple(int(n) for n in parents.shape))
    vox: dict[int, int] = {}
    area: dict[int, float] = {}
    for _b, (ids, n, a) in map_blocks(fn, parents, grid=grid, ordered=True, **run):
        for k, c in zip(ids.tolist(), n.tolist()):
            vox[k] = vox.get(k, 0) + c
        for k, v in a.items():
            area[k] = area.get(k, 0.0) + v
    ids = np.array(sorted(vox), dtype=np.int64)
    voxels = np.array([vox[k] for k in ids.tolist()], dtype=np.int64)
    return Table({
        "parent_id": ids,
        "parent_voxels": voxels,
        "parent_volume_um3": voxels * (vs[0] * vs[1] * vs[2]) / 1e9,
        "surface_um2": np.array([area.get(k, 0.0) / 1e6 for k in ids.tolist()], dtype=np.float64),
        "surface_method": np.array([method] * len(ids), dtype=object),
    })


def _per_parent(parents: Table, objects: Table) -> Table:
    """Add count, density and size distribution of each parent's objects."""
    pid = objects["parent_id"]
    diam = objects["disc_diameter_nm"] if not np.all(np.isnan(objects["disc_diameter_nm"])) else \
        objects["equivalent_diameter_nm"]
    cols = dict(parents.columns)
    n = len(parents)
    count = np.zeros(n, dtype=np.int64)
    stats = {k: np.full(n, np.nan) for k in ("volume_nm3_median", "equivalent_diameter_nm_median",
                                              "disc_diameter_nm_median", "disc_diameter_nm_p10",
                                              "disc_diameter_nm_p90")}
    for i, p in enumerate(parents["parent_id"].tolist()):
        mine = pid == p
        count[i] = int(mine.sum())
        if count[i]:
            stats["volume_nm3_median"][i] = np.median(objects["volume_nm3"][mine])
            stats["equivalent_diameter_nm_median"][i] = np.median(objects["equivalent_diameter_nm"][mine])
            stats["disc_diameter_nm_median"][i] = np.median(diam[mine])
            stats["disc_diameter_nm_p10"][i] = np.percentile(diam[mine], 10)
            stats["disc_diameter_nm_p90"][i] = np.percentile(diam[mine], 90)
    cols["count"] = count
    surf = cols["surface_um2"]
    cols["density_per_um2"] = np.where(surf > 0, count / np.where(surf > 0, surf, 1), np.nan)
    cols.update(stats)
    return Table(cols)


# --- plausibility ---------------------------------------------------------------------------------


def check_plausibility(objects: Table, parents: Table | None, rule: Plausibility | None) -> list[Finding]:
    """Flags for results outside ``rule``'s ranges: the share of objects whose diameter is
    outside, the median diameter, and each parent's density."""
    if rule is None:
        return []
    out: list[Finding] = []
    if rule.diameter_nm is not None and len(objects):
        lo, hi = rule.diameter_nm
        d = objects[rule.diameter_column]
        d = d[np.isfinite(d) & ~objects["touches_border"]]  # objects cut by the border are not measured
        if len(d):
            med = float(np.median(d))
            if not lo <= med <= hi:
                out.append(Finding("warning", "objects", rule.diameter_column,
                                   f"median {rule.structure} diameter {med:.0f} nm is outside {lo:g}-{hi:g} nm",
                                   med, (lo, hi)))
            share = float(np.mean((d < lo) | (d > hi)))
            if share > rule.max_outside_fraction:
                out.append(Finding("warning", "objects", rule.diameter_column,
                                   f"{share:.0%} of {rule.structure} objects have a diameter outside "
                                   f"{lo:g}-{hi:g} nm", share, (lo, hi)))
    if rule.density_per_um2 is not None and parents is not None:
        lo, hi = rule.density_per_um2
        for p, dens in zip(parents["parent_id"].tolist(), parents["density_per_um2"].tolist()):
            if math.isfinite(dens) and not lo <= dens <= hi:
                out.append(Finding("warning", f"parent {p}", "density_per_um2",
                                   f"{dens:.1f} {rule.structure} objects per µm² on parent {p} is outside "
                                   f"{lo:g}-{hi:g}", float(dens), (lo, hi)))
    return out


__all__ = [
    "Finding",
    "ObjectAnalysis",
    "PLAUSIBILITY",
    "Plausibility",
    "Table",
    "analyze_objects",
    "check_plausibility",
    "object_columns",
    "parent_columns",
]
