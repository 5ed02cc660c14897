"""Blockwise connected components equal cc3d on the whole volume (property-based).

Equal means: the labelled volume is byte-identical to cc3d's (both number objects by
first voxel in C order), and the object count, voxel counts, centroids, bounding boxes
and first voxels equal cc3d's statistics, for any block shape, blocks smaller than the
objects included.
"""

from __future__ import annotations

import pickle

import cc3d
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.analysis.components import InstanceSource, connected_components
from curation.engine import Engine
from curation.errors import AnalysisError

FULL = (slice(None),) * 3


def _reference(volume: np.ndarray, connectivity: int):
    ref = cc3d.connected_components(volume, connectivity=connectivity, out_dtype=np.uint32)
    n = int(ref.max())
    stats = cc3d.statistics(ref, no_slice_conversion=True)
    values, first = np.unique(ref.ravel(), return_index=True)
    return ref, n, stats, first[values > 0]


def assert_equals_cc3d(volume: np.ndarray, connectivity: int, block_shape, executor="inline", **kw):
    ref, n, stats, first = _reference(volume, connectivity)
    with connected_components(volume, connectivity=connectivity, block_shape=block_shape, executor=executor,
                              **kw) as comp:
        s = comp.stats
        assert comp.n_objects == n
        labels = comp.labels().read(FULL)
        assert labels.dtype.kind == "u" and np.iinfo(labels.dtype).max > n
        np.testing.assert_array_equal(labels.astype(np.uint32), ref)
        np.testing.assert_array_equal(s.voxels, stats["voxel_counts"][1:n + 1])
        bb = np.asarray(stats["bounding_boxes"][1:n + 1]).reshape(-1, 6)
        np.testing.assert_array_equal(s.bbox_start, bb[:, 0::2])
        np.testing.assert_array_equal(s.bbox_stop, bb[:, 1::2] + 1)
        np.testing.assert_allclose(s.centroid, stats["centroids"][1:n + 1].reshape(-1, 3), rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(s.first_voxel, first)
        np.testing.assert_array_equal(s.value, volume.ravel()[s.first_voxel])
        border = np.array([np.any([sl.start == 0 or sl.stop == dim for sl, dim in zip(s.bbox(k), volume.shape)])
                           for k in range(1, n + 1)], dtype=bool)
        np.testing.assert_array_equal(s.touches_border, border)
        return comp.stats


# --- random volumes ------------------------------------------------------------------------------


@st.composite
def volumes(draw):
    shape = tuple(draw(st.integers(1, 14)) for _ in range(3))
    kind = draw(st.sampled_from(["sparse", "dense", "multi", "blobs"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "sparse":
        vol = (rng.random(shape) < 0.15).astype(np.uint8)
    elif kind == "dense":
        vol = (rng.random(shape) < 0.55).astype(np.uint8)
    elif kind == "multi":
        vol = rng.integers(0, 4, shape).astype(np.uint16) * (rng.random(shape) < 0.6)
        vol = vol.astype(np.uint16)
    else:  # smooth blobs: objects larger than the blocks
        from scipy import ndimage

        field = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
        vol = (field > 0).astype(np.uint8) * 3
    block = tuple(draw(st.integers(1, n)) for n in shape)
    return vol, block


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(volumes(), st.sampled_from([6, 18, 26]))
def test_random_volumes_equal_cc3d(case, connectivity):
    vol, block = case
    assert_equals_cc3d(vol, connectivity, block)


# --- structured volumes: objects crossing many blocks ----------------------------------------------


def _spiral(shape=(12, 40, 40), turns=3.5, width=1):
    vol = np.zeros(shape, dtype=np.uint8)
    t = np.linspace(0, 1, 4000)
    r = 2 + t * (min(shape[1:]) / 2 - 4)
    y = (shape[1] / 2 + r * np.sin(2 * np.pi * turns * t)).astype(int)
    x = (shape[2] / 2 + r * np.cos(2 * np.pi * turns * t)).astype(int)
    z = (t * (shape[0] - 1)).astype(int)
    for dy in range(width):
        vol[z, np.clip(y + dy, 0, shape[1] - 1), x] = 1
    return vol


def _rods(shape=(20, 30, 30)):
    z, y, x = shape
    vol = np.zeros(shape, dtype=np.uint8)
    vol[:, y // 8, x // 7] = 1  # along z, through every block
    vol[z // 4, :, x // 3] = 1  # along y, crossing the first
    vol[z // 3, 2 * y // 3, :] = 1  # along x, alone
    idx = np.arange(min(shape))
    vol[idx, idx, np.minimum(idx + 2, x - 1)] = 2  # a diagonal rod: connected only with 26
    return vol


def _corners(edge=4, n=3):
    """Voxels meeting only at block corners and edges: the hard cases for the face merge."""
    shape = (edge * n,) * 3
    vol = np.zeros(shape, dtype=np.uint8)
    for k in range(1, n):
        c = k * edge
        vol[c - 1, c - 1, c - 1] = vol[c, c, c] = 1  # corner contact
        vol[c - 1, c - 1, 1] = vol[c, c, 1] = 1  # edge contact (z and y cross, x the same)
        vol[1, c - 1, c] = vol[1, c, c - 1] = 1  # edge contact within a z plane
    return vol


def _shells(shape=(24, 24, 24)):
    zz, yy, xx = np.indices(shape)
    r = np.sqrt((zz - 11.5) ** 2 + (yy - 11.5) ** 2 + (xx - 11.5) ** 2)
    return (((r > 9) & (r < 10.5)) | ((r > 4) & (r < 5.5)) | (r < 1.5)).astype(np.uint8)


STRUCTURED = [("spiral", _spiral()), ("wide-spiral", _spiral(width=2)), ("rods", _rods()), ("corners", _corners()),
              ("shells", _shells())]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("name,volume", STRUCTURED, ids=[n for n, _ in STRUCTURED])
@pytest.mark.parametrize("block", [(2, 3, 5), (4, 4, 4), (7, 6, 5)])
def test_structured_volumes_equal_cc3d(name, volume, block, connectivity):
    assert_equals_cc3d(volume, connectivity, block)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_single_voxel_blocks(connectivity):
    assert_equals_cc3d(_corners(edge=2, n=3), connectivity, (1, 1, 1))
    assert_equals_cc3d(_rods((6, 7, 8)), connectivity, (1, 1, 1))


def test_spiral_is_one_object_across_many_blocks():
    vol = _spiral(width=2)
    with connected_components(vol, block_shape=(3, 5, 5), connectivity=26, executor="threads") as comp:
        assert comp.n_objects == 1 and comp.provisional > 50  # it was cut into many pieces
        assert comp.merged_pairs >= comp.provisional - 1


def test_table_is_identical_for_every_block_shape():
    rng = np.random.default_rng(5)
    from scipy import ndimage

    vol = (ndimage.gaussian_filter(rng.normal(size=(30, 33, 36)), 2) > 0.1).astype(np.uint8)
    tables = []
    for block in [(30, 33, 36), (4, 5, 6), (9, 33, 2), (1, 7, 36)]:
        with connected_components(vol, block_shape=block, moments=True) as comp:
            tables.append(comp.stats)
    for t in tables[1:]:
        assert t.equal(tables[0])
        np.testing.assert_allclose(t.moments, tables[0].moments, rtol=1e-9, atol=1e-9)


def test_second_moments_are_each_objects_covariance():
    vol = _shells() + (_rods((24, 24, 24)) > 0) * 2
    with connected_components(vol.astype(np.uint8), block_shape=(5, 7, 6), moments=True) as comp:
        labels = comp.labels().read(FULL)
        for k in range(1, comp.n_objects + 1):
            pts = np.argwhere(labels == k).astype(float)
            cov = (pts - pts.mean(0)).T @ (pts - pts.mean(0)) / len(pts)
            want = [cov[0, 0], cov[1, 1], cov[2, 2], cov[0, 1], cov[0, 2], cov[1, 2]]
            np.testing.assert_allclose(comp.stats.moments[k - 1], want, atol=1e-9)


# --- options --------------------------------------------------------------------------------------


def test_select_and_unlabeled_values():
    rng = np.random.default_rng(2)
    vol = rng.integers(0, 4, (16, 18, 20)).astype(np.uint8)
    vol[:, :, :5] = 255  # unannotated
    expected = np.where(np.isin(vol, [1, 3]), vol, 0)
    ref, n, _, _ = _reference(expected, 26)
    with connected_components(vol, select=[1, 3], unlabeled=255, block_shape=(5, 6, 5)) as comp:
        src = comp.labels()
        out = src.read(FULL)
        unl = np.iinfo(out.dtype).max
        assert comp.n_objects == n
        assert np.all(out[:, :, :5] == unl)
        np.testing.assert_array_equal(np.where(out == unl, 0, out).astype(np.uint32), ref)
        # blocks that hold nothing but unlabeled voxels are fill: the writer skips them
        assert src.is_fill((slice(0, 5), slice(0, 6), slice(0, 5)))
        assert not src.is_fill((slice(0, 5), slice(0, 6), slice(0, 6)))


def test_lazy_reads_of_any_region_and_pickling():
    vol = _shells()
    with connected_components(vol, block_shape=(5, 7, 6)) as comp:
        src = comp.labels()
        full = src.read(FULL)
        again = pickle.loads(pickle.dumps(src))
        rng = np.random.default_rng(0)
        for _ in range(20):
            lo = [int(rng.integers(0, n)) for n in vol.shape]
            region = tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, vol.shape))
            np.testing.assert_array_equal(again.read(region), full[region])
        assert InstanceSource(comp.scratch).n_objects == comp.n_objects
        assert src.header.shape == vol.shape and src.dtype == np.uint8
        # a fresh source read from many threads at once (its tables load lazily, once)
        from concurrent.futures import ThreadPoolExecutor

        for _ in range(5):
            fresh = InstanceSource(comp.scratch)
            planes = list(range(vol.shape[0]))
            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(lambda z: fresh.read((slice(z, z + 1), slice(None), slice(None))), planes))
            np.testing.assert_array_equal(np.concatenate(got), full)


def test_scratch_is_removed_or_kept(tmp_path):
    vol = _rods()
    with connected_components(vol, block_shape=8) as comp:
        made = comp.scratch
        assert made.is_dir()
    assert not made.exists()
    keep = tmp_path / "scratch"
    with connected_components(vol, block_shape=8, scratch=keep) as comp:
        pass
    assert (keep / "components.json").is_file()  # the caller's folder is the caller's to remove
    with pytest.raises(AnalysisError, match="not empty"):
        connected_components(vol, scratch=keep)


def test_on_the_engine_and_through_the_label_writer(tmp_path):
    from curation.omezarr.layout import plan_pyramid
    from curation.omezarr.ngff import multiscales
    from curation.omezarr.writer import ArraySpec, Manifest, build_pyramid, create_arrays, forget_stores
    import zarr

    vol = _spiral(shape=(20, 64, 64), width=2) + _rods((20, 64, 64))
    ref, n, _, _ = _reference(vol, 26)
    with Engine(concurrency=2) as engine:
        with connected_components(vol, block_shape=(8, 16, 16), executor=engine) as comp:
            src = comp.labels()
            plan = plan_pyramid(vol.shape, (8, 8, 8), src.dtype.name, chunk=(8, 16, 16), shard=(16, 32, 32))
            root = tmp_path / "inst"
            spec = ArraySpec(str(root), plan, str(tmp_path / "work"), src, kind="label", fill_value=src.unlabeled)
            create_arrays(spec, multiscales(plan, "inst", kind="label"))
            m = Manifest(tmp_path / "work" / "manifest.jsonl", {"job": 1})
            m.start()
            try:
                build_pyramid(spec, engine, m)
            finally:
                m.close()
                forget_stores(str(root))
    stored = zarr.open_array(str(root / "0"), mode="r")[:]
    assert n > 1
    np.testing.assert_array_equal(stored.astype(np.uint32), ref)


def test_bad_input_is_refused():
    with pytest.raises(AnalysisError, match="connectivity"):
        connected_components(np.zeros((4, 4, 4), np.uint8), connectivity=8)
    with pytest.raises(AnalysisError, match="integer"):
        connected_components(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(AnalysisError, match="3D"):
        connected_components(np.zeros((4, 4), np.uint8))


def test_empty_and_full_volumes():
    for vol in (np.zeros((5, 6, 7), np.uint8), np.ones((5, 6, 7), np.uint8)):
        assert_equals_cc3d(vol, 26, (2, 3, 4))
