"""Resampling operators: exact binning, block consistency, the grid factors."""

from __future__ import annotations

import numpy as np
import pytest

from curation.segmentation.data import grid_factors
from curation.segmentation.resample import axis_operator, model_size, snap_factor

from .conftest import tiny


def test_whole_factor_is_plain_binning():
    a = np.arange(24, dtype=np.float32).reshape(2, 12)
    op = axis_operator(12, 2.0, 0, 6)
    assert op.bin == 2
    np.testing.assert_allclose(op.apply(a, 1), a.reshape(2, 6, 2).mean(axis=2))
    slow = axis_operator(13, 2.0, 0, 7)  # last cell half outside: the general path, mean of what exists
    out = slow.apply(np.arange(13, dtype=np.float32)[None], 1)
    np.testing.assert_allclose(out[0], [0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.0])


@pytest.mark.parametrize("factor", [2.0, 1.5, 3.0, 0.5, 2 / 3])
def test_blocks_of_a_resampling_equal_the_whole(factor):
    rng = np.random.default_rng(1)
    n = 101
    src = rng.random(n).astype(np.float32)
    m = model_size(n, factor)
    whole = axis_operator(n, factor, 0, m).apply(src, 0)
    for a, b in [(0, 7), (7, 30), (30, m)]:
        op = axis_operator(n, factor, a, b)
        np.testing.assert_allclose(op.apply(src[op.start:op.stop], 0), whole[a:b], rtol=1e-6)


def test_down_then_up_keeps_smooth_signals():
    x = np.linspace(0, 1, 200, dtype=np.float32)
    down = axis_operator(200, 2.0, 0, 100).apply(x, 0)
    up = axis_operator(100, 0.5, 0, 200).apply(down, 0)
    assert np.abs(up - x)[2:-2].max() < 1e-5  # linear signals survive exactly (edges clamp)


def test_area_weights_keep_the_mean():
    rng = np.random.default_rng(2)
    x = rng.random(300).astype(np.float32)
    op = axis_operator(300, 1.5, 0, 200)
    assert abs(op.apply(x, 0).mean() - x.mean()) < 1e-6


def test_snap_factor():
    assert snap_factor(5.9, 12.0, 0.05) == 2.0  # 2.03: binned 2x exactly
    assert snap_factor(8.0, 12.0, 0.05) == 1.5
    assert snap_factor(8.0, 8.2, 0.05) == 1.0
    assert snap_factor(8.0, None, 0.05) == 1.0
    assert snap_factor(16.0, 8.1, 0.05) == 0.5
    assert snap_factor(5.0, 8.0, 0.05) == pytest.approx(1.6)


def test_grid_factors_keep_slices_for_2d_networks():
    p = tiny("mitochondria-2d")
    assert grid_factors(p, (40.0, 5.9, 5.9)) == (1.0, 2.0, 2.0)
    tap = tiny("nuclear-envelope-tap")
    assert grid_factors(tap, (8.0, 8.0, 8.0), tri_axis=True) == (1.0, 1.0, 1.0)
    assert grid_factors(tap, (4.0, 4.0, 4.0), tri_axis=True) == (2.0, 2.0, 2.0)


def test_percentiles_sample_large_volumes_by_chunk_aligned_boxes():
    import zarr

    from curation.segmentation.data import percentiles

    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, (32, 64, 64), dtype=np.uint8)
    arr = zarr.create_array(zarr.storage.MemoryStore(), shape=data.shape, chunks=(8, 16, 16), dtype="uint8")
    arr[:] = data
    exact = tuple(np.percentile(data, [1, 99.5]))
    assert percentiles(arr, 1, 99.5) == pytest.approx(exact)  # small: every voxel
    sampled = percentiles(arr, 1, 99.5, max_voxels=20000)
    assert sampled == pytest.approx(exact, abs=3)
    assert percentiles(arr, 1, 99.5, max_voxels=20000) == sampled  # deterministic
