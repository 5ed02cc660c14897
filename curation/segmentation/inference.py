"""Blockwise prediction: a block function that knows nothing of scheduling, and a driver.

The shape of daisy: the volume is cut into *blocks* (write regions, disjoint, in the data
grid); :func:`predict_block` computes one block from the image alone, reading the block plus
whatever context it needs, and returns its probabilities; :func:`predict_blockwise` is a
plain driver that runs blocks in order and writes them. Another scheduler (Dask, a cluster,
a resumable journal) only has to call :func:`predict_block` for each of
:meth:`InferencePlan.blocks` and write the result: blocks never overlap, so any order and any
parallelism give the same bytes.

Inside a block, on the model grid (the pipeline's voxel size):

* the block's region is covered by network *tiles* (``inference.tile``) whose origins lie
  on a global grid of the U-Net's size multiple, so a voxel's prediction never depends on
  where a block starts;
* each tile is read with a ``halo`` of context on each side that is computed but not used
  (auto: the network's receptive radius, so the result equals a whole-volume prediction);
* neighbouring tiles overlap by ``overlap`` voxels and are blended with a cosine weight;
* outside the volume the image is mirrored;
* several tiles go through the network per batch.

Tri-axis prediction (TAP) predicts the block along z, y and x (the volume seen with each axis
as the slicing axis) and combines the views: mean of probabilities, or 2 of 3 votes.

Outputs: probability as uint8 (0-255, :func:`probability_uint8`) and the thresholded
prediction (uint8, 1 = foreground). On CPU in fp32 the result is deterministic for a given
thread count.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import SegmentationError
from .data import grid_factors, model_voxel_size, normalize
from .pipeline import SegmentationPipeline, with_overrides
from .resample import axis_operator, model_size

Block = tuple[slice, slice, slice]

# --- the network call ------------------------------------------------------------------------


@dataclass
class PredictorStats:
    tiles: int = 0
    batches: int = 0
    forward_seconds: float = 0.0


class Predictor:
    """A network in evaluation mode turning normalised tiles into probabilities.

    ``__call__`` takes tiles (N, C, [Z], Y, X) float32 and returns (N, [Z], Y, X) float32,
    ``batch`` tiles per forward pass.
    """

    def __init__(self, model: torch.nn.Module, *, batch: int = 4, device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None, record_tiles: bool = False) -> None:
        self.model = model.eval().to(device)
        # channels-last layouts let oneDNN (CPU) and cuDNN pick their fastest convolutions
        self.layout = None
        dims = getattr(model, "dims", None)
        if dims in (2, 3):
            self.layout = torch.channels_last if dims == 2 else torch.channels_last_3d
            self.model = self.model.to(memory_format=self.layout)
        self.batch = int(batch)
        self.device = torch.device(device)
        self.precision = precision
        self.threads = threads
        self.stats = PredictorStats()
        self.recorded: list[np.ndarray] | None = [] if record_tiles else None
        if precision == "fp16" and self.device.type == "cpu":
            raise SegmentationError("fp16 prediction needs a GPU", field="inference.precision",
                                    expected="fp32 or bf16 on CPU", found=precision)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        if not self.threads:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        out = np.empty((tiles.shape[0],) + tiles.shape[2:], dtype=np.float32)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        t0 = time.perf_counter()
        with self._threads(), torch.inference_mode():
            for i in range(0, tiles.shape[0], self.batch):
                chunk = tiles[i:i + self.batch]
                if self.recorded is not None:
                    self.recorded.append(chunk.copy())
                x = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
                if self.layout is not None:
                    x = x.contiguous(memory_format=self.layout)
                with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                    y = self.model(x)
                out[i:i + chunk.shape[0]] = torch.sigmoid(y.float())[:, 0].cpu().numpy()
                self.stats.batches += 1
        self.stats.tiles += tiles.shape[0]
        self.stats.forward_seconds += time.perf_counter() - t0
        return out


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferencePlan:
    """Everything a block needs, fixed before any block runs."""

    pipeline: SegmentationPipeline
    shape: tuple[int, int, int]  # data grid (z, y, x)
    voxel_size_nm: tuple[float, float, float]
    factors: tuple[float, float, float]  # model voxel / data voxel
    model_shape: tuple[int, int, int]
    views: tuple[int, ...]  # slicing axes predicted: (0,) or (0, 1, 2)
    normalization: tuple[float, float] | None
    block_shape: tuple[int, int, int]

    @property
    def model_voxel_size_nm(self) -> tuple[float, float, float]:
        return model_voxel_size(self.voxel_size_nm, self.factors)

    def blocks(self) -> list[Block]:
        """The write regions, in z, y, x order; they tile the volume without overlap."""
        ranges = [range(0, n, b) for n, b in zip(self.shape, self.block_shape)]
        return [(slice(z, min(z + self.block_shape[0], self.shape[0])),
                 slice(y, min(y + self.block_shape[1], self.shape[1])),
                 slice(x, min(x + self.block_shape[2], self.shape[2])))
                for z in ranges[0] for y in ranges[1] for x in ranges[2]]


def plan_inference(pipeline: SegmentationPipeline, shape: Sequence[int], voxel_size_nm: Sequence[float], *,
                   normalization: tuple[float, float] | None, tri_axis: bool | None = None,
                   block_shape: Sequence[int] | None = None) -> InferencePlan:
    """Resolve the grids, views and blocks of a prediction of a volume of ``shape``."""
    shape3 = tuple(int(n) for n in shape)
    if len(shape3) != 3 or min(shape3) < 1:
        raise SegmentationError("prediction needs a 3D volume (z, y, x)", field="image", found=list(shape))
    tap = pipeline.inference.tri_axis if tri_axis is None else bool(tri_axis)
    if tap and not pipeline.inference.tri_axis:
        pipeline = with_overrides(pipeline, {"inference.tri_axis": True})  # checks isotropy
    factors = grid_factors(pipeline, voxel_size_nm, tri_axis=tap)
    mshape = tuple(model_size(n, f) for n, f in zip(shape3, factors))
    if block_shape is None:  # one tile per block and plane: the block is a tile less its halos
        core = [t - 2 * pipeline.halo for t in pipeline.inference.tile]
        # 2D along z: a stack of slices; 3D or along three axes: a cube-like block, as the
        # other views cut it across
        bz = core[0] if pipeline.architecture.dims == "3d" or tap else 16
        block_shape = tuple(max(1, int(c * f)) for c, f in zip([bz] + core[-2:], factors))
    bs = tuple(max(1, min(int(b), n)) for b, n in zip(block_shape, shape3))
    return InferencePlan(pipeline, shape3, tuple(float(v) for v in voxel_size_nm), factors, mshape,  # type: ignore[arg-type]
                         (0, 1, 2) if tap else (0,), normalization, bs)  # type: ignore[arg-type]


# --- tiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ViewGeometry:
    tile: tuple[int, int, int]  # in view order (slicing axis first)
    halo: tuple[int, int, int]
    overlap: tuple[int, int, int]
    multiple: tuple[int, int, int]


def _view_geometry(pipeline: SegmentationPipeline) -> _ViewGeometry:
    arch, inf = pipeline.architecture, pipeline.inference
    h, m, ov = pipeline.halo, arch.multiple, inf.overlap
    if arch.dims == "3d":
        tz, ty, tx = inf.tile
        return _ViewGeometry((tz, ty, tx), (h, h, h), (ov, ov, ov), (m, m, m))
    k = arch.context_slices
    ty, tx = inf.tile
    return _ViewGeometry((2 * k + 1, ty, tx), (k, h, h), (0, ov, ov), (1, m, m))


def tile_origins(r0: int, r1: int, tile: int, halo: int, overlap: int, multiple: int) -> list[int]:
    """Origins of the tiles covering ``r0..r1`` with their used part (tile minus halos):
    aligned to ``multiple``, overlapping by at least ``overlap`` (the last one pulled back)."""
    core = tile - 2 * halo
    first = ((r0 - halo) // multiple) * multiple
    origins = [first]
    step = max(multiple, ((core - overlap) // multiple) * multiple)
    while origins[-1] + halo + core < r1:
        last = -((-(r1 - halo - core)) // multiple) * multiple
        nxt = origins[-1] + step
        if nxt >= last:
            origins.append(max(last, origins[-1] + multiple))
            break
        origins.append(nxt)
    return origins


def _axis_tiling(r: tuple[int, int], n: int, geom: _ViewGeometry, j: int) -> tuple[list[int], list[np.ndarray], int]:
    """Tiles along view axis ``j`` covering ``r`` on an axis of ``n`` samples: (origins, the
    mirrored indices each reads, the tile size). The tile shrinks (to a multiple of the size
    multiple) when the region needs less than the pipeline's tile."""
    r0, r1 = r
    m, h, ov = geom.multiple[j], geom.halo[j], geom.overlap[j]
    tile = min(geom.tile[j], -(-(r1 - r0 + 2 * h) // m) * m)
    origins = tile_origins(r0, r1, tile, h, ov, m)
    if len(origins) > 1:  # as many tiles, each just large enough: less computed outside the region
        k = len(origins)
        snug = -(-(-(-(r1 - r0 + (k - 1) * ov) // k) + 2 * h) // m) * m
        if snug < tile:
            trial = tile_origins(r0, r1, snug, h, ov, m)
            if len(trial) * snug < len(origins) * tile:
                tile, origins = snug, trial
    return origins, [_reflect(np.arange(o, o + tile), n) for o in origins], tile


def _ramp_weights(origins: list[int], tile: int, halo: int, overlap: int) -> list[np.ndarray]:
    """Per tile, the blending weight over its used part: cosine ramps where it meets a
    neighbour, 1 elsewhere, never 0."""
    core = tile - 2 * halo
    out = []
    for i, _ in enumerate(origins):
        w = np.ones(core, np.float32)
        ramp = min(overlap, core // 2)
        if ramp:
            r = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
            if i > 0:
                w[:ramp] = np.minimum(w[:ramp], r)
            if i < len(origins) - 1:
                w[-ramp:] = np.minimum(w[-ramp:], r[::-1])
        out.append(w)
    return out


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    i = np.abs(idx) % period
    return np.where(i >= n, period - i, i)


# --- one block -----------------------------------------------------------------------------------


@dataclass
class BlockPrediction:
    """The probabilities of one block (float32, the block's shape), per view when asked."""

    block: Block
    probability: np.ndarray
    views: dict[str, np.ndarray] = field(default_factory=dict)


AXIS_NAMES = ("z", "y", "x")


def predict_block(plan: InferencePlan, predictor: Predictor, image, block: Block, *,
                  keep_views: bool = False) -> BlockPrediction:
    """Predict one write region ``block`` of ``image`` (any array-like readable by slicing)."""
    geom = _view_geometry(plan.pipeline)
    # the model-grid region each data axis needs (for resampling back), per axis
    back = [axis_operator(nm, 1.0 / f if f != 1.0 else 1.0, b.start, b.stop)
            for nm, f, b in zip(plan.model_shape, plan.factors, block)]
    region = [(op.start, op.stop) for op in back]
    # the tiles of each view, and the model-grid box they read
    tilings = {}
    need_lo = [math.inf] * 3
    need_hi = [-math.inf] * 3
    for view in plan.views:
        order = (view,) + tuple(a for a in range(3) if a != view)
        per_axis = [_axis_tiling(region[axis], plan.model_shape[axis], geom, j) for j, axis in enumerate(order)]
        for j, axis in enumerate(order):
            idx = per_axis[j][1]
            lo = min(int(i.min()) for i in idx)
            hi = max(int(i.max()) for i in idx) + 1
            need_lo[axis], need_hi[axis] = min(need_lo[axis], lo), max(need_hi[axis], hi)
        tilings[view] = (order, per_axis)
    box = [(int(need_lo[a]), int(need_hi[a])) for a in range(3)]
    model_box = _read_model_box(plan, image, box)
    views: dict[str, np.ndarray] = {}
    for view, (order, per_axis) in tilings.items():
        prob_model = _predict_view(plan.pipeline.architecture.dims == "3d", predictor, model_box, box, region,
                                   order, per_axis, geom)
        views[AXIS_NAMES[view]] = _resample_back(prob_model, back)
    probability = np.mean(np.stack(list(views.values())), axis=0) if len(views) > 1 else next(iter(views.values()))
    return BlockPrediction(block, probability.astype(np.float32, copy=False), views if keep_views else {})


def predict_model_region(pipeline: SegmentationPipeline, predictor: Predictor, volume: np.ndarray,
                         region: Sequence[tuple[int, int]]) -> np.ndarray:
    """Probabilities over ``region`` of a normalised model-grid array in memory, predicted along
    its first axis with the pipeline's tiles, the array mirrored at its edges. (For a 2.5D
    network the first axis may be just the context slices around the plane predicted.)"""
    geom = _view_geometry(pipeline)
    per_axis = [_axis_tiling(region[j], volume.shape[j], geom, j) for j in range(3)]
    box = [(0, n) for n in volume.shape]
    return _predict_view(pipeline.architecture.dims == "3d", predictor, np.asarray(volume, np.float32), box,
                         list(region), (0, 1, 2), per_axis, geom)


def _read_model_box(plan: InferencePlan, image, box: list[tuple[int, int]]) -> np.ndarray:
    ops = [axis_operator(n, f, lo, hi) for n, f, (lo, hi) in zip(plan.shape, plan.factors, box)]
    raw = np.asarray(image[ops[0].start:ops[0].stop, ops[1].start:ops[1].stop, ops[2].start:ops[2].stop])
    out = normalize(raw, plan.normalization)
    for axis, op in enumerate(ops):
        out = op.apply(out, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def _predict_view(three_d: bool, predictor: Predictor, model_box: np.ndarray, box, region, order,
                  per_axis, geom: _ViewGeometry) -> np.ndarray:
    """Probabilities over ``region`` (model grid) predicted along ``order[0]``."""
    view_box = np.transpose(model_box, order)
    vbox_lo = [box[a][0] for a in order]
    vregion = [region[a] for a in order]
    shape = tuple(r1 - r0 for r0, r1 in vregion)
    acc = np.zeros(shape, np.float32)
    wsum = np.zeros(shape, np.float32)
    weights = [_ramp_weights(origins, tile, geom.halo[j], geom.overlap[j])
               for j, (origins, _, tile) in enumerate(per_axis)]
    jobs = [(a, b, c) for a in range(len(per_axis[0][0])) for b in range(len(per_axis[1][0]))
            for c in range(len(per_axis[2][0]))]
    batch = max(1, predictor.batch)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        tiles = np.stack([_gather(view_box, [per_axis[j][1][k] - vbox_lo[j] for j, k in enumerate(job)])
                          for job in chunk])
        tiles = tiles[:, None] if three_d else tiles  # 3D: one channel; 2D/2.5D: slices are channels
        probs = predictor(tiles)
        for job, p in zip(chunk, probs):
            if not three_d:
                p = p[None]
            _accumulate(acc, wsum, p, job, per_axis, weights, geom, vregion, three_d)
    out = acc / wsum
    inverse = np.argsort(order)
    return np.transpose(out, inverse)


def _gather(vol: np.ndarray, idx: list[np.ndarray]) -> np.ndarray:
    sl = []
    for i in idx:
        if i.size and np.all(np.diff(i) == 1):
            sl.append(slice(int(i[0]), int(i[-1]) + 1))
        else:
            sl.append(i)
    if all(isinstance(s, slice) for s in sl):
        return vol[tuple(sl)]
    return vol[np.ix_(*[np.arange(s.start, s.stop) if isinstance(s, slice) else s for s in sl])]


def _accumulate(acc, wsum, p, job, per_axis, weights, geom: _ViewGeometry, vregion, three_d: bool) -> None:
    """Add tile ``p`` (its output, without the slice context of 2.5D) into the region."""
    dst, src, w1d = [], [], []
    for j, k in enumerate(job):
        origin = per_axis[j][0][k]
        halo = geom.halo[j]
        core = per_axis[j][2] - 2 * halo
        c0 = origin + halo
        r0, r1 = vregion[j]
        lo, hi = max(c0, r0), min(c0 + core, r1)
        if hi <= lo:
            return
        dst.append(slice(lo - r0, hi - r0))
        off = halo if (three_d or j > 0) else 0  # 2D/2.5D: p holds only the centre slice
        src.append(slice(lo - c0 + off, hi - c0 + off))
        w1d.append(weights[j][k][lo - c0:hi - c0])
    w = w1d[0][:, None, None] * w1d[1][None, :, None] * w1d[2][None, None, :]
    acc[tuple(dst)] += w * p[tuple(src)]
    wsum[tuple(dst)] += w


def _resample_back(prob_model: np.ndarray, back) -> np.ndarray:
    out = prob_model
    for axis, op in enumerate(back):
        out = op.apply(out, axis)
    return np.clip(out, 0.0, 1.0)


# --- outputs -------------------------------------------------------------------------------------


def probability_uint8(probability: np.ndarray) -> np.ndarray:
    """0-255, rounded to nearest."""
    return np.rint(np.clip(probability, 0, 1) * 255.0).astype(np.uint8)


def threshold(prediction: BlockPrediction, plan: InferencePlan, views: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """uint8 foreground mask: probability >= threshold, or with ``vote``, 2 of the 3 views."""
    thr = np.float32(plan.pipeline.inference.threshold)
    views = views if views is not None else prediction.views
    if plan.pipeline.inference.combine == "vote" and len(plan.views) == 3:
        if len(views) != 3:
            raise SegmentationError("a 2-of-3 vote needs the three views: predict with keep_views=True")
        votes = sum((v >= thr).astype(np.uint8) for v in views.values())
        return (votes >= 2).astype(np.uint8)
    return (prediction.probability >= thr).astype(np.uint8)


@dataclass
class BlockwiseSummary:
    blocks: int
    voxels: int
    seconds: float
    tiles: int
    forward_seconds: float

    @property
    def voxels_per_second(self) -> float:
        return self.voxels / self.seconds if self.seconds else 0.0


def predict_blockwise(plan: InferencePlan, predictor: Predictor, image, probability, prediction=None, *,
                      views: dict[str, object] | None = None, blocks: Sequence[Block] | None = None,
                      on_block: Callable[[int, int, Block], None] | None = None) -> BlockwiseSummary:
    """Run ``blocks`` (default: all) in order, writing uint8 probability, the thresholded
    prediction and (when ``views`` maps axis names to arrays) each view's probability.

    A block's outputs are written by a background thread while the next block computes (at
    most one block waits to be written, so memory stays at two blocks). ``on_block(done,
    total, block)`` is called, in order, once a block is written."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(plan.blocks() if blocks is None else blocks)
    keep = bool(views) or (plan.pipeline.inference.combine == "vote" and len(plan.views) == 3)
    t0 = time.perf_counter()
    tiles0, fwd0 = predictor.stats.tiles, predictor.stats.forward_seconds
    voxels = 0

    def write(block: Block, outputs: list[tuple[object, np.ndarray]]) -> None:
        for target, data in outputs:
            target[block] = data  # type: ignore[index]

    pending = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curation-write") as writer:
        for n, block in enumerate(todo, 1):
            bp = predict_block(plan, predictor, image, block, keep_views=keep)
            outputs = [(probability, probability_uint8(bp.probability))]
            if prediction is not None:
                outputs.append((prediction, threshold(bp, plan)))
            outputs += [(target, probability_uint8(bp.views[name])) for name, target in (views or {}).items()]
            if pending is not None:
                pending[0].result()  # raises a write error here, in order
                if on_block is not None:
                    on_block(*pending[1:])
            pending = (writer.submit(write, block, outputs), n, len(todo), block)
            voxels += int(np.prod([s.stop - s.start for s in block]))
        if pending is not None:
            pending[0].result()
            if on_block is not None:
                on_block(*pending[1:])
    return BlockwiseSummary(len(todo), voxels, time.perf_counter() - t0, predictor.stats.tiles - tiles0,
                            predictor.stats.forward_seconds - fwd0)


def predict_array(plan: InferencePlan, predictor: Predictor, image) -> tuple[np.ndarray, np.ndarray]:
    """Predict a whole (small) volume into memory: (uint8 probability, uint8 prediction)."""
    prob = np.zeros(plan.shape, np.uint8)
    pred = np.zeros(plan.shape, np.uint8)
    predict_blockwise(plan, predictor, image, prob, pred)
    return prob, pred
