"""Pyramid planning: level shapes, scales, chunk and shard shapes, and the shard tree.

Every level uses the same inner chunk and shard shape (clipped where a level is smaller),
so a shard at level k is computed from a fixed set of whole shards at level k-1. That is
what lets the writer give every shard exactly one writer and stream level 0 once.

Anisotropy: X and Y are halved at every level. Z is halved only once its spacing is no
coarser than the XY spacing, so an SBF-SEM volume at 6 x 6 x 40 nm keeps its Z slices
until XY has caught up, and an isotropic FIB-SEM volume is halved on all three axes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

Index = tuple[int, int, int]

#: inner chunk edge: what viewers fetch (64^3 uint8 = 256 KiB)
DEFAULT_CHUNK_EDGE = 64
#: bytes of one shard; a writer holds one shard at a time. 128 MiB is 512^3 uint8,
#: i.e. about 8,200 level-0 files (9,400 with the pyramid) per TB.
DEFAULT_SHARD_BYTES = 128 * 1024**2


@dataclass(frozen=True)
class Level:
    path: str
    shape: Index
    #: downsampling factor relative to the previous level (1, 1, 1 for level 0)
    factor: Index
    #: voxel size in nanometres (z, y, x)
    scale_nm: tuple[float, float, float]
    #: position of the first voxel centre relative to level 0's, in nanometres
    translation_nm: tuple[float, float, float]


@dataclass(frozen=True)
class PyramidPlan:
    shape: Index
    dtype: str
    chunk: Index
    shard: Index
    levels: tuple[Level, ...]

    # --- shard grid ----------------------------------------------------------------

    def shard_shape(self, level: int) -> Index:
        """Shard shape of ``level``: the common shard shape clipped to the level."""
        shape = self.levels[level].shape
        chunk = self.chunk_shape(level)
        return tuple(min(s, _round_up(n, c)) for s, n, c in zip(self.shard, shape, chunk))  # type: ignore[return-value]

    def chunk_shape(self, level: int) -> Index:
        shape = self.levels[level].shape
        return tuple(min(c, n) for c, n in zip(self.chunk, shape))  # type: ignore[return-value]

    def grid(self, level: int) -> Index:
        shape = self.levels[level].shape
        return tuple(math.ceil(n / s) for n, s in zip(shape, self.shard_shape(level)))  # type: ignore[return-value]

    def shards(self, level: int) -> Iterator[Index]:
        """Shard indices of a level, in C order (z slowest), so reads stream through Z."""
        return iter(itertools.product(*(range(g) for g in self.grid(level))))

    def n_shards(self, level: int | None = None) -> int:
        levels = range(len(self.levels)) if level is None else [level]
        return sum(math.prod(self.grid(lv)) for lv in levels)

    def region(self, level: int, idx: Index) -> tuple[slice, slice, slice]:
        shape = self.levels[level].shape
        sh = self.shard_shape(level)
        return tuple(slice(i * s, min((i + 1) * s, n)) for i, s, n in zip(idx, sh, shape))  # type: ignore[return-value]

    def region_shape(self, level: int, idx: Index) -> Index:
        return tuple(s.stop - s.start for s in self.region(level, idx))  # type: ignore[return-value]

    def children(self, level: int, idx: Index) -> list[Index]:
        """Shards of ``level - 1`` whose downsampled pieces make up shard ``idx``."""
        if level == 0:
            return []
        factor = self.levels[level].factor
        region = self.region(level, idx)
        below = self.shard_shape(level - 1)
        grid = self.grid(level - 1)
        ranges = []
        for sl, f, s, g in zip(region, factor, below, grid):
            lo = (sl.start * f) // s
            hi = min(math.ceil(sl.stop * f / s), g)
            ranges.append(range(lo, hi))
        return list(itertools.product(*ranges))

    def parent(self, level: int, idx: Index) -> Index | None:
        """The shard of ``level + 1`` that shard ``idx`` of ``level`` contributes to."""
        if level + 1 >= len(self.levels):
            return None
        factor = self.levels[level + 1].factor
        start = [sl.start for sl in self.region(level, idx)]
        above = self.shard_shape(level + 1)
        return tuple((st // f) // s for st, f, s in zip(start, factor, above))  # type: ignore[return-value]

    def piece_region(self, level: int, idx: Index) -> tuple[slice, slice, slice]:
        """Where the downsampled piece of shard ``idx`` (of ``level``) lands in ``level + 1``."""
        factor = self.levels[level + 1].factor
        return tuple(  # type: ignore[return-value]
            slice(sl.start // f, math.ceil(sl.stop / f)) for sl, f in zip(self.region(level, idx), factor)
        )

    def shard_bytes(self) -> int:
        return math.prod(self.shard) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "chunk": list(self.chunk),
            "shard": list(self.shard),
            "levels": [
                {
                    "path": lv.path,
                    "shape": list(lv.shape),
                    "factor": list(lv.factor),
                    "scale_nm": list(lv.scale_nm),
                    "translation_nm": list(lv.translation_nm),
                }
                for lv in self.levels
            ],
        }


def _round_up(n: int, m: int) -> int:
    return ((n + m - 1) // m) * m


def choose_shard(shape: Index, dtype: str, chunk: Index, shard_bytes: int) -> Index:
    """The largest near-cubic shard (a multiple of the chunk) within ``shard_bytes``.

    Starts at 8 chunks per axis (512^3 for 64^3 chunks), clipped to the volume, and
    halves Z first, then the longest axis, until it fits: a uint16 volume gets
    (256, 512, 512), which keeps viewers' XY tiles whole.
    """
    itemsize = np.dtype(dtype).itemsize
    budget = max(shard_bytes // itemsize, math.prod(chunk))
    shard = [min(_round_up(n, c), c * 8) for n, c in zip(shape, chunk)]
    while math.prod(shard) > budget:
        shrinkable = [ax for ax in range(3) if shard[ax] > chunk[ax]]
        if not shrinkable:
            break
        # Z counts double: viewers read XY tiles, so Z gives way first
        ax = max(shrinkable, key=lambda a: (shard[a] * (2 if a == 0 else 1), -a))
        shard[ax] = max(chunk[ax], _round_up(shard[ax] // 2, chunk[ax]))
    return tuple(shard)  # type: ignore[return-value]


def plan_pyramid(
    shape: Index,
    voxel_size_nm: tuple[float, float, float],
    dtype: str,
    *,
    chunk: Index | None = None,
    shard: Index | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    max_levels: int | None = None,
) -> PyramidPlan:
    """Plan levels until the coarsest fits in one inner chunk in Y and X."""
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers, got {shape}")
    if chunk is None:
        if shape[0] == 1:  # a single 2D image: flat chunks
            chunk = (1, 256, 256)
        else:
            chunk = (DEFAULT_CHUNK_EDGE,) * 3  # type: ignore[assignment]
    chunk = tuple(min(c, n) for c, n in zip(chunk, shape))  # type: ignore[assignment]
    if shard is None:
        shard = choose_shard(shape, dtype, chunk, shard_bytes)
    shard = tuple(min(s, _round_up(n, c)) for s, n, c in zip(shard, shape, chunk))  # type: ignore[assignment]
    if any(s % c for s, c in zip(shard, chunk)):
        raise ValueError(f"shard shape {shard} must be a multiple of the chunk shape {chunk}")

    z, y, x = (float(v) for v in voxel_size_nm)
    level_shape = shape
    levels = [Level("0", shape, (1, 1, 1), (z, y, x), (0.0, 0.0, 0.0))]
    trans = [0.0, 0.0, 0.0]
    while True:
        if max_levels is not None and len(levels) >= max_levels:
            break
        zn, yn, xn = level_shape
        if max(yn, xn) <= max(chunk[1], chunk[2]) and zn <= chunk[0]:
            break
        scale = levels[-1].scale_nm
        fz = 2 if zn > 1 and scale[0] <= scale[1] * 1.0001 else 1
        fy = 2 if yn > 1 else 1
        fx = 2 if xn > 1 else 1
        if (fz, fy, fx) == (1, 1, 1):
            break
        factor = (fz, fy, fx)
        new_scale = tuple(s * f for s, f in zip(scale, factor))
        # a mean over f voxels is centred (f - 1) / 2 voxels of the finer level further in
        trans = [t + (f - 1) * s / 2 for t, f, s in zip(trans, factor, scale)]
        level_shape = tuple(math.ceil(n / f) for n, f in zip(level_shape, factor))  # type: ignore[assignment]
        levels.append(Level(str(len(levels)), level_shape, factor, new_scale, tuple(trans)))  # type: ignore[arg-type]
    plan = PyramidPlan(shape, str(np.dtype(dtype)), chunk, tuple(shard), tuple(levels))  # type: ignore[arg-type]
    # a downsampling window must never straddle two shards
    for k in range(1, len(levels)):
        below = plan.shard_shape(k - 1)
        for ax, (f, s, n) in enumerate(zip(levels[k].factor, below, levels[k - 1].shape)):
            if f > 1 and s % f and s < n:
                raise ValueError(f"shard shape {tuple(shard)} must be even along {'zyx'[ax]}, which the pyramid "
                                 f"halves (or cover the whole axis)")
    return plan
