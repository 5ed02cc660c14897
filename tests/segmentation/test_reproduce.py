"""Comparing a recomputed prediction with the stored one."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from curation.errors import SegmentationError
from curation.segmentation.reproduce import compare_arrays


@pytest.fixture()
def stored(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (20, 30, 40), dtype=np.uint8)
    arr = zarr.create_array(str(tmp_path / "p.zarr"), shape=data.shape, chunks=(4, 30, 40), dtype="uint8")
    arr[:] = data
    return arr, data


def test_bit_identical(stored):
    arr, data = stored
    c = compare_arrays(arr, data.copy())
    assert c.identical and c.passed and c.differing == 0 and c.bounding_box is None and c.slices == []
    assert c.summary().startswith("bit-identical")


def test_where_they_differ(stored):
    arr, data = stored
    other = data.copy()
    other[5, 3:7, 10] += 1
    other[13, 20, 30:33] += 2
    c = compare_arrays(arr, other)
    assert not c.identical and not c.passed
    assert c.differing == 7 and c.mismatched == 7
    assert c.bounding_box == [(5, 14), (3, 21), (10, 33)]
    assert [(s.z, s.voxels) for s in c.slices] == [(5, 4), (13, 3)] and c.slices_with_differences == 2
    assert c.max_abs_difference == pytest.approx(2 / 255)
    assert "7 of 24000 voxels differ" in c.summary() and "5..13" in c.summary()


def test_bioimageio_tolerance(stored):
    arr, data = stored
    probs = data.astype(np.float32) / 255
    close = probs + np.float32(5e-4)  # within atol 1e-3
    c = compare_arrays(probs, close, mode="tolerance")
    assert not c.identical and c.mismatched == 0 and c.passed
    few = probs.copy()
    few[0, 0, :2] += 0.5  # 2 of 24000 = 83 ppm: within 100 ppm
    c = compare_arrays(probs, few, mode="tolerance")
    assert c.mismatched == 2 and c.passed and c.mismatched_ppm == pytest.approx(2 / 24000 * 1e6)
    many = probs.copy()
    many[0, 0, :3] += 0.5  # 125 ppm
    c = compare_arrays(probs, many, mode="tolerance")
    assert not c.passed and "outside bioimage.io's tolerance" in c.summary()
    # uint8 probabilities are compared as probabilities: one level (0.0039) exceeds atol 1e-3
    one_level = data.copy()
    one_level[0, 0, 0] = min(255, int(one_level[0, 0, 0]) + 1) if one_level[0, 0, 0] < 255 else 254
    c = compare_arrays(arr, one_level, mode="tolerance")
    assert c.mismatched == 1 and c.passed


def test_shapes_and_dtypes_must_agree(stored):
    arr, data = stored
    with pytest.raises(SegmentationError, match="shape"):
        compare_arrays(arr, data[:5])
    with pytest.raises(SegmentationError, match="data type"):
        compare_arrays(arr, data.astype(np.uint16))
