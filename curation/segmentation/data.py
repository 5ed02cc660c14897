"""Training material from sparse ground truth, and the patches a training run draws from it.

Inputs are what an archive holds: an image volume (a zarr array or numpy, read lazily, slice
by slice), a label volume of the same shape whose dtype maximum means *unlabeled* (never
background), the annotated slices, and the voxel size. :func:`prepare` reads only what the
annotated slices need, resamples it to the model grid and normalises it once; the
:class:`PatchSampler` then draws augmented batches from memory with numpy and torch, so the
data path costs little beside the network.

Labels become two float maps on the model grid: ``weight`` (the fraction of a cell that was
annotated; 0 where nothing was) and ``target`` (the foreground fraction of the annotated
part). The loss counts each voxel by its weight, so unannotated voxels never count and a
cell half annotated counts half.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TrainingDataError
from .pipeline import SegmentationPipeline
from .resample import axis_operator, model_size, snap_factor

#: training material larger than this is refused (annotate regions instead of whole slices)
MAX_TRAINING_BYTES = 8 * 1024**3
#: at most this many voxels are read to estimate the intensity percentiles
PERCENTILE_SAMPLE = 1 << 24


# --- geometry ------------------------------------------------------------------------------


def grid_factors(pipeline: SegmentationPipeline, voxel_size_nm: Sequence[float], *,
                 tri_axis: bool = False) -> tuple[float, float, float]:
    """Per axis (z, y, x): model voxel / data voxel. A 2D or 2.5D network keeps the data's
    slices (z factor 1) unless the pipeline sets z and predicts along three axes (or 2.5D)."""
    if len(voxel_size_nm) != 3 or any(not (float(v) > 0) for v in voxel_size_nm):
        raise TrainingDataError("the voxel size must be three positive sizes in nm", field="voxel_size_nm",
                                expected="(z, y, x)", found=list(voxel_size_nm))
    target = pipeline.resampling.voxel_size_nm.as_tuple()
    tol = pipeline.resampling.tolerance
    f = [snap_factor(float(v), t, tol) for v, t in zip(voxel_size_nm, target)]
    if pipeline.architecture.dims == "2d" and not tri_axis:
        f[0] = 1.0
    return (f[0], f[1], f[2])


def model_voxel_size(voxel_size_nm: Sequence[float], factors: Sequence[float]) -> tuple[float, float, float]:
    return tuple(float(v) * f for v, f in zip(voxel_size_nm, factors))  # type: ignore[return-value]


# --- labels ----------------------------------------------------------------------------------


def unlabeled_of(labels: Any) -> int:
    dtype = np.dtype(labels.dtype)
    if dtype.kind != "u":
        raise TrainingDataError("labels must be an unsigned integer volume whose maximum means unlabeled",
                                field="labels", expected="uint8, uint16 or uint32", found=str(dtype))
    return int(np.iinfo(dtype).max)


def label_maps(labels: np.ndarray, unlabeled: int, foreground: Sequence[int] | str) -> tuple[np.ndarray, np.ndarray]:
    """``(foreground, annotated)`` float32 maps of a label array."""
    annotated = labels != unlabeled
    if foreground == "nonzero":
        fg = (labels != 0) & annotated
    else:
        fg = np.isin(labels, np.asarray(list(foreground), dtype=labels.dtype))
    return fg.astype(np.float32), annotated.astype(np.float32)


def annotated_slices(annotated: Sequence[int] | Mapping[str, Any], depth: int) -> list[int]:
    """Slices holding annotations: a list of slice indices, or a label version's ``annotated``
    record (``{"slices": [...], "regions": [{"z": [z0, z1], ...}]}``)."""
    if isinstance(annotated, Mapping):
        zs = {int(z) for z in annotated.get("slices", [])}
        for box in annotated.get("regions", []):
            z0, z1 = box.get("z", [0, depth])
            zs.update(range(int(z0), int(z1)))
    else:
        zs = {int(z) for z in annotated}
    bad = sorted(z for z in zs if not 0 <= z < depth)
    if bad:
        raise TrainingDataError("annotated slices lie outside the volume", field="annotated",
                                expected=f"0..{depth - 1}", found=bad[:8])
    if not zs:
        raise TrainingDataError("no annotated slices: nothing to learn from", field="annotated",
                                hint="import ground truth on at least two slices")
    return sorted(zs)


def choose_validation(slices: Sequence[int], pipeline: SegmentationPipeline) -> list[int]:
    """The held-out slices: those given, or the ``count`` slices farthest from the rest.

    Farthest: repeatedly the slice whose nearest remaining training slice is farthest away
    (ties: fewer training slices close by, then the higher index), so a held-out slice is not
    flattered by its annotated neighbours.
    """
    cfg = pipeline.training.validation
    pool = sorted(set(slices))
    if cfg.slices != "farthest":
        chosen = sorted(set(cfg.slices))
        missing = [z for z in chosen if z not in pool]
        if missing:
            raise TrainingDataError("validation slices are not annotated", field="training.validation.slices",
                                    expected=f"some of {pool}", found=missing)
    else:
        chosen = []
        for _ in range(min(cfg.count, len(pool) - 1)):
            rest = [z for z in pool if z not in chosen]

            def score(z: int, rest: list[int] = rest) -> tuple[float, float, int]:
                others = np.array([o for o in rest if o != z], dtype=np.float64)
                d = np.abs(others - z)
                return (float(d.min()), -float(np.sum(1.0 / d)), z)

            chosen.append(max(rest, key=score))
        chosen.sort()
    if len(chosen) >= len(pool):
        raise TrainingDataError("every annotated slice would be held out for validation",
                                field="training.validation", expected=f"fewer than {len(pool)} slices",
                                found=chosen)
    return chosen


# --- normalisation ---------------------------------------------------------------------------


def percentiles(image: Any, low: float, high: float, *, slices: Sequence[int] | None = None,
                max_voxels: int = PERCENTILE_SAMPLE) -> tuple[float, float]:
    """The ``low`` and ``high`` intensity percentiles of ``image``, from a deterministic sample
    of at most about ``max_voxels`` voxels: of the given slices (strided), or of the whole
    volume (all of it when small, else chunk-aligned boxes spread evenly through it, so a
    sharded volume of terabytes is read only where sampled)."""
    shape = tuple(int(n) for n in image.shape)
    if slices is not None:
        zs = list(slices)
        plane = int(np.prod(shape[1:]))
        n = max(1, min(len(zs), max_voxels // max(plane, 1)))
        pick = sorted({zs[int(i)] for i in np.linspace(0, len(zs) - 1, n).round().astype(int)})
        step = max(1, int(math.ceil(math.sqrt(plane * len(pick) / max_voxels))))
        sample = np.concatenate([np.asarray(image[z, ::step, ::step]).ravel() for z in pick])
    elif int(np.prod(shape)) <= max_voxels:
        sample = np.asarray(image[...]).ravel()
    else:
        chunks = getattr(image, "chunks", None) or (64, 256, 256)
        box = [max(1, min(int(c), n)) for c, n in zip(chunks, shape)]
        while int(np.prod(box)) > max_voxels // 8:  # at least 8 boxes
            a = int(np.argmax(box))
            box[a] = max(1, box[a] // 2)
        per_axis = max(1, int(round((max_voxels / int(np.prod(box))) ** (1 / 3))))
        starts = [sorted({int(p) // b * b for p in np.linspace(0, n - b, min(per_axis, max(1, n // b)))})
                  for n, b in zip(shape, box)]
        sample = np.concatenate([np.asarray(image[z:z + box[0], y:y + box[1], x:x + box[2]]).ravel()
                                 for z in starts[0] for y in starts[1] for x in starts[2]])
    lo, hi = np.percentile(sample.astype(np.float64), [low, high])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(block: np.ndarray, values: tuple[float, float] | None) -> np.ndarray:
    """float32 ``(block - lo) / (hi - lo)``; ``values`` None leaves intensities as they are."""
    out = np.asarray(block, dtype=np.float32)
    if values is None:
        return out
    lo, hi = values
    out = out - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return out


# --- training material -----------------------------------------------------------------------


@dataclass
class Slab:
    """Model-grid material: ``image`` (channels or depth, y, x), ``target`` and ``weight``
    (depth, y, x), and the source slices it holds annotations of."""

    image: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    slices: list[int]
    fg: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32), repr=False)
    annotated: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32), repr=False)

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes + self.target.nbytes + self.weight.nbytes)


@dataclass
class Material:
    """Everything a training run reads: slabs for training and for validation."""

    train: list[Slab]
    validation: list[Slab]
    factors: tuple[float, float, float]
    normalization: tuple[float, float] | None
    training_slices: list[int]
    validation_slices: list[int]


def prepare(pipeline: SegmentationPipeline, image: Any, labels: Any, annotated: Sequence[int] | Mapping[str, Any],
            voxel_size_nm: Sequence[float], *, normalization: tuple[float, float] | None = None,
            max_bytes: int = MAX_TRAINING_BYTES) -> Material:
    """Read, resample and normalise what the annotated slices need (see the module doc)."""
    if tuple(image.shape) != tuple(labels.shape) or len(image.shape) != 3:
        raise TrainingDataError("the image and the labels must be 3D volumes of the same shape", field="labels",
                                expected=list(image.shape), found=list(labels.shape))
    unlabeled = unlabeled_of(labels)
    slices = annotated_slices(annotated, int(image.shape[0]))
    held = choose_validation(slices, pipeline) if pipeline.training.validation.count or \
        pipeline.training.validation.slices != "farthest" else []
    train_z = [z for z in slices if z not in held]
    factors = grid_factors(pipeline, voxel_size_nm)
    norm_cfg = pipeline.normalization
    if normalization is None and norm_cfg.method == "percentiles":
        normalization = percentiles(image, norm_cfg.low, norm_cfg.high, slices=slices)
    if pipeline.architecture.dims == "3d":
        reach = pipeline.training.patch[0] * factors[0] / 2
        groups = _groups(train_z, reach)
        vgroups = [[z] for z in held]
        make = _slab3d
    else:
        groups = [[z] for z in train_z]
        vgroups = [[z] for z in held]
        make = _slab2d
    estimate = _estimate_bytes(pipeline, image.shape, factors, groups + vgroups)
    if estimate > max_bytes:
        raise TrainingDataError("the annotated slices need too much memory to train from",
                                expected=f"at most {max_bytes / 1024**3:.1f} GiB", found=f"{estimate / 1024**3:.1f} GiB",
                                hint="annotate regions (bounding boxes) instead of whole slices, or fewer slices")
    fg_spec = pipeline.target.foreground
    train = [make(pipeline, image, labels, g, factors, normalization, unlabeled, fg_spec) for g in groups]
    validation = [make(pipeline, image, labels, g, factors, normalization, unlabeled, fg_spec) for g in vgroups]
    for s in train:
        _index(s)
    if not any(s.annotated.size for s in train):
        raise TrainingDataError("the annotated slices hold no annotated voxels", field="labels",
                                hint="every voxel equals the unlabeled value: check the label version")
    return Material(train, validation, factors, normalization, train_z, held)


def _groups(zs: Sequence[int], reach: float) -> list[list[int]]:
    out: list[list[int]] = []
    for z in sorted(zs):
        if out and z - out[-1][-1] <= 2 * reach:
            out[-1].append(z)
        else:
            out.append([z])
    return out


def _estimate_bytes(pipeline: SegmentationPipeline, shape: Sequence[int], factors: Sequence[float],
                    groups: list[list[int]]) -> int:
    plane = model_size(int(shape[1]), factors[1]) * model_size(int(shape[2]), factors[2])
    if pipeline.architecture.dims == "3d":
        pz = pipeline.training.patch[0]
        depth = sum((g[-1] - g[0]) / factors[0] + pz + 2 for g in groups)
        return int(depth * plane * 12)
    channels = pipeline.architecture.in_channels
    return int(len(groups) * plane * (4 * channels + 8))


def _inplane(image: Any, labels: Any, zsl: slice, factors: Sequence[float], normalization, unlabeled: int,
             fg_spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read rows ``zsl`` whole in y and x, resample y and x to the model grid."""
    ny, nx = int(image.shape[1]), int(image.shape[2])
    oy = axis_operator(ny, factors[1], 0, model_size(ny, factors[1]))
    ox = axis_operator(nx, factors[2], 0, model_size(nx, factors[2]))
    img = normalize(np.asarray(image[zsl, oy.start:oy.stop, ox.start:ox.stop]), normalization)
    lab = np.asarray(labels[zsl, oy.start:oy.stop, ox.start:ox.stop])
    fg, ann = label_maps(lab, unlabeled, fg_spec)
    img, fg, ann = (ox.apply(oy.apply(a, 1), 2) for a in (img, fg * ann, ann))
    return img, fg, ann


def _slab2d(pipeline: SegmentationPipeline, image: Any, labels: Any, group: list[int], factors, normalization,
            unlabeled: int, fg_spec) -> Slab:
    (z,) = group
    depth = int(image.shape[0])
    k = pipeline.architecture.context_slices
    img, fgw, ann = _inplane(image, labels, slice(z, z + 1), factors, normalization, unlabeled, fg_spec)
    if k:
        planes = []
        for j in range(-k, k + 1):
            pos = z + j * factors[0]
            lo = math.floor(pos)
            frac = pos - lo
            a = _context_plane(image, lo, depth, factors, normalization)
            if frac > 1e-9:
                a = a * np.float32(1 - frac) + _context_plane(image, lo + 1, depth, factors, normalization) * np.float32(frac)
            planes.append(a)
        img = np.concatenate(planes, axis=0)
    target = np.divide(fgw, ann, out=np.zeros_like(ann), where=ann > 0)
    return Slab(img.astype(np.float32), target, ann, list(group))


def _context_plane(image: Any, z: int, depth: int, factors, normalization) -> np.ndarray:
    z = _reflect(z, depth)
    ny, nx = int(image.shape[1]), int(image.shape[2])
    oy = axis_operator(ny, factors[1], 0, model_size(ny, factors[1]))
    ox = axis_operator(nx, factors[2], 0, model_size(nx, factors[2]))
    a = normalize(np.asarray(image[z:z + 1, oy.start:oy.stop, ox.start:ox.stop]), normalization)
    return ox.apply(oy.apply(a, 1), 2)


def _reflect(i: int, n: int) -> int:
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return period - i if i >= n else i


def _slab3d(pipeline: SegmentationPipeline, image: Any, labels: Any, group: list[int], factors, normalization,
            unlabeled: int, fg_spec) -> Slab:
    depth = int(image.shape[0])
    nz = model_size(depth, factors[0])
    pz = pipeline.training.patch[0]
    # model-grid planes whose cells touch the annotated slices, with half a patch around them
    m0 = max(0, int(math.floor(group[0] / factors[0])) - pz // 2)
    m1 = min(nz, int(math.ceil((group[-1] + 1) / factors[0])) + pz // 2)
    oz = axis_operator(depth, factors[0], m0, m1)
    img, fgw, ann = _inplane(image, labels, slice(oz.start, oz.stop), factors, normalization, unlabeled, fg_spec)
    img, fgw, ann = (oz.apply(a, 0) for a in (img, fgw, ann))
    target = np.divide(fgw, ann, out=np.zeros_like(ann), where=ann > 0)
    return Slab(img.astype(np.float32), target, ann, list(group))


#: above this many candidate voxels a slab's centres are drawn from a coarser grid
_MAX_INDEX = 1 << 22


def _index(slab: Slab) -> None:
    """Candidate patch centres: annotated voxels, and foreground ones."""
    w = slab.weight
    step = max(1, int(math.ceil(math.sqrt(w.size / _MAX_INDEX))))
    sub = (slice(None), slice(None, None, step), slice(None, None, step))
    ann = np.argwhere(w[sub] > 0.5)
    fg = np.argwhere((w[sub] > 0.5) & (slab.target[sub] > 0.5))
    scale = np.array([1, step, step])
    slab.annotated = (ann * scale).astype(np.int32)
    slab.fg = (fg * scale).astype(np.int32)
