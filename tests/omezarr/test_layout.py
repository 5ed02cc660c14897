import numpy as np
import pytest

from curation.omezarr.downsample import mean_downsample, mode_downsample
from curation.omezarr.layout import choose_shard, plan_pyramid


def test_isotropic_pyramid_halves_all_axes():
    p = plan_pyramid((2048, 2048, 2048), (8, 8, 8), "uint8")
    assert p.chunk == (64, 64, 64) and p.shard == (512, 512, 512)
    assert [lv.factor for lv in p.levels[1:]] == [(2, 2, 2)] * (len(p.levels) - 1)
    assert p.levels[-1].shape == (64, 64, 64)
    assert p.levels[1].scale_nm == (16, 16, 16)
    assert p.levels[1].translation_nm == (4, 4, 4)


def test_anisotropic_pyramid_keeps_z_until_xy_catches_up():
    p = plan_pyramid((400, 3000, 3000), (40, 6, 6), "uint16")
    factors = [lv.factor for lv in p.levels[1:]]
    assert factors[:3] == [(1, 2, 2)] * 3  # xy 12, 24, 48 nm; z stays 40
    assert factors[3] == (2, 2, 2)  # z 40 <= xy 48: now halve z too
    assert p.levels[4].scale_nm == (80, 96, 96)


def test_shard_size_respects_budget_and_dtype():
    assert choose_shard((4096,) * 3, "uint8", (64, 64, 64), 128 * 2**20) == (512, 512, 512)
    assert choose_shard((4096,) * 3, "uint16", (64, 64, 64), 128 * 2**20) == (256, 512, 512)
    # Z gives way first, so viewers keep whole XY tiles
    assert choose_shard((4096,) * 3, "uint8", (64, 64, 64), 16 * 2**20) == (128, 256, 512)


def test_file_count_per_terabyte_is_under_ten_thousand():
    # 1 TB of uint8 at 8 nm isotropic: ~10,000^3 voxels
    p = plan_pyramid((10000, 10000, 10000), (8, 8, 8), "uint8")
    assert 8000 < p.n_shards() <= 10000


@pytest.mark.parametrize("shape", [(100, 300, 260), (20, 1024, 1024), (1, 64, 128), (7, 9, 5)])
def test_shard_tree_is_consistent(shape):
    p = plan_pyramid(shape, (8, 8, 8), "uint8", chunk=(8, 16, 16), shard=(16, 32, 32))
    for lv in range(1, len(p.levels)):
        covered = set()
        for idx in p.shards(lv):
            for child in p.children(lv, idx):
                assert p.parent(lv - 1, child) == idx
                covered.add(child)
                pr, r = p.piece_region(lv - 1, child), p.region(lv, idx)
                assert all(a.start >= b.start and a.stop <= b.stop for a, b in zip(pr, r))
        assert covered == set(p.shards(lv - 1))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "float32"])
def test_mean_downsample_matches_reference_with_ragged_edges(dtype):
    rng = np.random.default_rng(1)
    b = (rng.random((7, 9, 5)) * 100 - (50 if dtype == "int16" else 0)).astype(dtype)
    d = mean_downsample(b, (2, 2, 2))
    assert d.dtype == b.dtype and d.shape == (4, 5, 3)
    ref = np.empty(d.shape)
    for i, j, k in np.ndindex(*d.shape):
        ref[i, j, k] = b[2 * i:2 * i + 2, 2 * j:2 * j + 2, 2 * k:2 * k + 2].astype(float).mean()
    if dtype == "float32":
        np.testing.assert_allclose(d, ref, atol=1e-4)
    else:
        np.testing.assert_array_equal(d, np.floor(ref + 0.5))


def test_mode_downsample_never_invents_labels():
    b = np.zeros((4, 4, 4), np.uint16)
    b[:2, :2, :2] = 7
    b[0, 0, 0] = 3
    b[2:, 2:, 2:] = 5
    b[3, 3, 3] = 9  # a minority
    d = mode_downsample(b, (2, 2, 2))
    assert set(np.unique(d)) <= set(np.unique(b))
    assert d[0, 0, 0] == 7 and d[1, 1, 1] == 5 and d[0, 1, 1] == 0
    odd = mode_downsample(np.full((3, 3, 3), 4, np.uint8), (2, 2, 2))
    assert (odd == 4).all()
