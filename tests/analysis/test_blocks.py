"""The blockwise read/compute primitive: grids, halos, executors, ordering, errors."""

from __future__ import annotations

import operator
import pickle

import numpy as np
import pytest
import zarr

from curation.blocks import BlockGrid, default_block_shape, grid_for, map_blocks, reduce_blocks
from curation.engine import Engine
from curation.errors import BlockError, CurationError
from curation.testing import ArraySource


def _sum_inner(block, a):
    return int(a[block.inner].sum(dtype=np.int64))


def _halo_check(block, a, b):
    """The read region holds exactly the volume's voxels over block.read; returns the
    block's write region and the halo actually read, per side."""
    return block.region, tuple((w.start - r.start, r.stop - w.stop) for w, r in zip(block.region, block.read))


def test_grid_tiles_the_volume_without_overlap():
    grid = BlockGrid((10, 7, 5), (4, 3, 5), (1, 2, 0))
    assert grid.grid_shape == (3, 3, 1) and len(grid) == 9
    cover = np.zeros(grid.shape, dtype=int)
    for b in grid:
        cover[b.region] += 1
        # the halo is clipped at the borders, never outside the volume
        for w, r, h, n in zip(b.region, b.read, grid.halo, grid.shape):
            assert r.start == max(w.start - h, 0) and r.stop == min(w.stop + h, n)
        assert grid.block(b.index) == b and grid.index_of(grid.linear(b.index)) == b.index
    assert np.all(cover == 1)
    last = grid.block((2, 2, 0))
    assert last.region == (slice(8, 10), slice(6, 7), slice(0, 5)) and last.shape == (2, 1, 5)
    hits = [b.index for b in grid.blocks_in((slice(3, 5), slice(0, 4), slice(2, 3)))]
    assert hits == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]


def test_default_block_shape_follows_shards_then_splits(tmp_path):
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(200, 300, 300), dtype="uint8",
                          chunks=(16, 32, 32), shards=(64, 128, 128))
    assert default_block_shape(z) == (64, 128, 128)
    # split on chunk boundaries until small enough
    assert default_block_shape(z, max_block_voxels=64 * 64 * 64) == (64, 64, 64)
    plain = zarr.create_array(store=str(tmp_path / "b.zarr"), shape=(50, 60, 70), dtype="uint8", chunks=(10, 20, 30))
    assert default_block_shape(plain) == (10, 20, 30)
    assert default_block_shape(np.zeros((20, 20, 20))) == (20, 20, 20)


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_map_and_reduce_over_arrays_and_sources(executor):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 100, (23, 17, 9), dtype=np.int64)
    for arr in (a, ArraySource(a)):
        total = reduce_blocks(_sum_inner, arr, combine=operator.add, initial=0, block_shape=(5, 4, 9),
                              halo=2, executor=executor, workers=3)
        assert total == int(a.sum())
    # halos: the function sees exactly the read region
    seen = {}
    for block, (region, halo) in map_blocks(_halo_check, a, a, block_shape=(8, 8, 8), halo=(1, 2, 3),
                                            executor=executor):
        seen[block.index] = halo
        assert region == block.region
    assert seen[(0, 0, 0)] == ((0, 1), (0, 2), (0, 1))  # clipped at the low borders
    assert seen[(1, 1, 0)] == ((1, 1), (2, 1), (0, 1))


def test_ordered_results_in_grid_order_with_a_small_window():
    a = np.arange(6 * 6 * 6).reshape(6, 6, 6)
    grid = grid_for([a], block_shape=2)
    out = [b.index for b, _ in map_blocks(_sum_inner, a, grid=grid, executor="threads", workers=4,
                                          max_in_flight=2, ordered=True)]
    assert out == [b.index for b in grid]


def test_runs_on_the_engine():
    a = np.random.default_rng(1).integers(0, 5, (20, 20, 20))
    with Engine(concurrency=2) as engine:
        total = reduce_blocks(_sum_inner, a, combine=operator.add, initial=0, block_shape=7, executor=engine)
        unordered = sorted(b.index for b, _ in map_blocks(_sum_inner, a, block_shape=7, executor=engine,
                                                           max_in_flight=3))
    assert total == int(a.sum()) and len(unordered) == 27


class Boom(Exception):
    pass


def _fail_at(block, a):
    if block.index == (1, 0, 0):
        raise Boom(f"block {block.index}")
    return 1


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_first_error_reaches_the_caller(executor):
    a = np.zeros((8, 4, 4))
    with pytest.raises(Boom, match=r"\(1, 0, 0\)"):
        list(map_blocks(_fail_at, a, block_shape=(2, 4, 4), executor=executor))


def test_bad_input_is_a_typed_error():
    with pytest.raises(BlockError, match="one shape") as info:
        list(map_blocks(_sum_inner, np.zeros((4, 4, 4)), np.zeros((4, 4, 5))))
    assert isinstance(info.value, (CurationError, ValueError))
    with pytest.raises(BlockError, match="positive"):
        BlockGrid((4, 4, 4), (0, 2, 2))
    with pytest.raises(BlockError, match="executor"):
        list(map_blocks(_sum_inner, np.zeros((4, 4, 4)), block_shape=2, executor="gpu"))
    assert pickle.loads(pickle.dumps(BlockGrid((4, 4, 4), 2, 1))) == BlockGrid((4, 4, 4), 2, 1)
