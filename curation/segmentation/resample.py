"""Resampling between the data grid and the model grid, one axis at a time.

A network works at one voxel size (the pipeline's ``resampling.voxel_size_nm``); data come at
another. Along each axis the *factor* is model voxel / data voxel: above 1 the model grid is
coarser (downsampling), below 1 finer.

Both directions are written as small banded linear operators on cell-centred grids, so that
any output sample depends only on a few input samples at known positions. That is what
makes blockwise prediction exact: a block reads exactly the input samples its outputs need,
and gets exactly what a whole-volume resampling would give.

* down (factor > 1): area weighting, each output cell is the mean of the input cells it
  covers, fractions counted (at factor 2 this is 2x binning);
* up (factor < 1): linear interpolation at the output cell centres, edges clamped;
* factor 1: the identity, nothing is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def snap_factor(data_nm: float, target_nm: float | None, tolerance: float) -> float:
    """The factor model/data for one axis: 1 when no target or within ``tolerance``; a whole
    number (or its inverse) when that close to one."""
    if target_nm is None:
        return 1.0
    f = float(target_nm) / float(data_nm)
    if abs(f - 1.0) <= tolerance:
        return 1.0
    if f > 1:
        r = round(f)
        return float(r) if abs(f - r) <= tolerance * f else f
    g = 1.0 / f
    r = round(g)
    return 1.0 / r if abs(g - r) <= tolerance * g else f


def model_size(n: int, factor: float) -> int:
    """Samples of an axis of ``n`` data samples on the model grid (it covers all data)."""
    return max(1, math.ceil(n / factor - 1e-9))


@dataclass(frozen=True)
class AxisOperator:
    """``out[j] = sum_k weights[j, k] * src[start + index[j, k]]`` for ``j`` in the output range."""

    start: int  # first source sample read
    stop: int  # one past the last
    index: np.ndarray  # (n_out, K) int, relative to start
    weights: np.ndarray  # (n_out, K) float32
    identity: bool = False
    bin: int = 0  # > 0: the operator is plain binning by this whole number (fast path)

    def apply(self, array: np.ndarray, axis: int) -> np.ndarray:
        """Apply to ``array`` whose ``axis`` holds source samples ``start..stop``."""
        if self.identity:
            return array
        if array.shape[axis] != self.stop - self.start:
            raise ValueError(f"axis {axis} has {array.shape[axis]} samples, the operator reads "
                             f"{self.stop - self.start}")
        if self.bin:
            n_out = self.index.shape[0]
            moved = np.moveaxis(array, axis, 0)
            shaped = moved[: n_out * self.bin].reshape((n_out, self.bin) + moved.shape[1:])
            return np.moveaxis(shaped.mean(axis=1, dtype=np.float32), 0, axis)
        out = None
        for k in range(self.index.shape[1]):
            w = self.weights[:, k]
            if not np.any(w):
                continue
            shape = [1] * array.ndim
            shape[axis] = w.size
            term = np.take(array, self.index[:, k], axis=axis).astype(np.float32, copy=False) * w.reshape(shape)
            out = term if out is None else out + term
        assert out is not None
        return out


def axis_operator(n_src: int, factor: float, out_start: int, out_stop: int) -> AxisOperator:
    """The operator producing output samples ``out_start..out_stop`` (clipped to the grid)
    from an axis of ``n_src`` source samples, for ``factor`` = output voxel / source voxel."""
    if out_stop <= out_start:
        raise ValueError(f"empty output range {out_start}..{out_stop}")
    if factor == 1.0:
        return AxisOperator(out_start, out_stop, np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32),
                            identity=True)
    j = np.arange(out_start, out_stop)
    if factor > 1:
        lo = j * factor
        hi = np.minimum((j + 1) * factor, n_src)
        first = np.floor(lo).astype(np.int64)
        k = int(math.ceil(factor)) + 1
        idx = first[:, None] + np.arange(k)[None, :]
        left = np.maximum(idx, lo[:, None])
        right = np.minimum(idx + 1, hi[:, None])
        w = np.clip(right - left, 0, None)
        w[idx >= n_src] = 0
        w /= w.sum(axis=1, keepdims=True)
        idx = np.minimum(idx, n_src - 1)
    else:
        c = np.clip((j + 0.5) * factor - 0.5, 0, n_src - 1)
        first = np.floor(c).astype(np.int64)
        frac = c - first
        idx = np.stack([first, np.minimum(first + 1, n_src - 1)], axis=1)
        w = np.stack([1 - frac, frac], axis=1)
    used = w > 0
    start = int(idx[used].min())
    stop = int(idx[used].max()) + 1
    whole = float(factor).is_integer() and factor > 1
    binning = int(factor) if whole and out_start * factor == start and out_stop * factor <= n_src else 0
    return AxisOperator(start, stop, (idx - start).astype(np.int64), w.astype(np.float32), bin=binning)


def resample(array: np.ndarray, operators: tuple[AxisOperator, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Apply one operator per listed axis (``array`` holds each operator's source range)."""
    out = array
    for op, axis in zip(operators, axes):
        out = op.apply(out, axis)
    return out if out is not array else np.asarray(array, dtype=np.float32)
