"""Pictures from arrays and the tile machinery: contrast, colours, differences, aspect,
level mapping, and the decoded-chunk cache against plain zarr reads (also under threads)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

from curation.errors import NotFoundError, OptionError
from curation.web import render as R
from curation.web.catalog import Catalog, Geometry, Level
from curation.web.lineage import lineage_svg
from curation.web.tiles import ChunkCache, TileSpec, check_spec, level_index, tile_region


def test_robust_window_ignores_outliers():
    rng = np.random.default_rng(0)
    v = rng.normal(100, 10, 100_000).clip(0, 255).astype(np.uint8)
    v[:50] = 255
    v[50:100] = 0
    lo, hi = R.robust_window(v)
    assert 65 < lo < 80 and 120 < hi < 135
    assert R.robust_window(np.full(10, 7, np.uint16)) == (7.0, 8.0)
    lo16, hi16 = R.robust_window((v.astype(np.uint16) * 100))
    assert 6500 < lo16 < 8000


def test_to_grey_maps_the_window():
    p = np.array([[0, 50, 100, 150, 255]], np.uint8)
    assert R.to_grey(p, 50, 150).tolist() == [[0, 0, 127, 255, 255]]
    f = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]], np.float32)
    assert R.to_grey(f, 0, 1).tolist() == [[0, 0, 127, 255, 255]]
    u16 = np.array([[1000, 3000]], np.uint16)
    assert R.to_grey(u16, 1000, 3000).tolist() == [[0, 255]]


def test_label_colours_follow_image_label_and_hide_background_and_unlabeled():
    p = np.array([[0, 1, 2, 255, 7]], np.uint8)
    rgba = R.label_rgba(p, {1: (10, 20, 30, 255), 2: (40, 50, 60, 128)}, 255)
    assert rgba[0, 0, 3] == 0 and rgba[0, 3, 3] == 0
    assert rgba[0, 1].tolist() == [10, 20, 30, 255] and rgba[0, 2].tolist() == [40, 50, 60, 128]
    assert rgba[0, 4].tolist() == list(R.fallback_rgba(7))
    big = np.array([[0, 70000, 2**32 - 1]], np.uint32)
    out = R.label_rgba(big, {}, 2**32 - 1)
    assert out[0, 0, 3] == 0 and out[0, 2, 3] == 0 and out[0, 1].tolist() == list(R.fallback_rgba(70000))


def test_fallback_colours_match_the_store():
    from curation.labels.store import image_label

    il = image_label([1, 2, 3, 40], 255, {})
    for c in il["colors"]:
        if c["label-value"] not in (0, 255):
            assert tuple(c["rgba"]) == R.fallback_rgba(c["label-value"])


def test_diff_classifies_added_removed_changed():
    a = np.array([[0, 1, 1, 255, 2, 1]], np.uint8)
    b = np.array([[1, 0, 1, 1, 3, 255]], np.uint8)
    d = R.diff_rgba(a, b, 255, 255)
    colours = [tuple(px) for px in d[0]]
    assert colours == [R.DIFF_COLORS["added"], R.DIFF_COLORS["removed"], (0, 0, 0, 0), R.DIFF_COLORS["added"],
                       R.DIFF_COLORS["changed"], R.DIFF_COLORS["removed"]]
    assert R.diff_counts(a, b, 255, 255) == {"added": 2, "removed": 2, "changed": 1}


def test_true_aspect_and_encoding():
    img = np.zeros((20, 200), np.uint8)
    out = R.true_aspect(img, 24.0, 8.0, 256)
    assert out.shape == (77, 256)  # 480 nm tall, 1600 nm wide
    assert R.encode(img).startswith(b"\x89PNG") and R.encode(img, "webp")[8:12] == b"WEBP"
    rgb = R.composite(np.full((2, 2), 100, np.uint8), np.array([[[255, 0, 0, 255]] * 2] * 2, np.uint8), 0.5)
    assert rgb[0, 0].tolist() == [177, 50, 50]


GEO = Geometry((20, 160, 200), "uint8", (24.0, 8.0, 8.0), (
    Level(0, "0", (20, 160, 200), (24.0, 8.0, 8.0), (20, 64, 64)),
    Level(1, "1", (20, 80, 100), (24.0, 16.0, 16.0), (20, 64, 64)),
    Level(2, "2", (10, 40, 50), (48.0, 32.0, 32.0), (10, 40, 50)),
), "id")


def test_tile_regions_and_level_mapping():
    assert level_index(GEO, 2, 0, 19) == 9 and level_index(GEO, 1, 1, 159) == 79 and level_index(GEO, 1, 0, 7) == 7
    assert tile_region(GEO, TileSpec("xy", 0, 3, 0, 1, 128)) == (slice(3, 4), slice(0, 128), slice(128, 200))
    assert tile_region(GEO, TileSpec("xz", 1, 100, 0, 0, 512)) == (slice(0, 20), slice(50, 51), slice(0, 100))
    assert tile_region(GEO, TileSpec("yz", 2, 199, 0, 0, 16)) == (slice(0, 10), slice(0, 16), slice(49, 50))
    for bad in (TileSpec("xy", 3, 0, 0, 0), TileSpec("xy", 0, 20, 0, 0), TileSpec("xy", 0, 0, 1, 0, 256),
                TileSpec("xz", 0, 160, 0, 0)):
        with pytest.raises(NotFoundError):
            tile_region(GEO, bad)
    with pytest.raises(OptionError):
        check_spec("xy", 0, 0, 0, 0, 4096)
    with pytest.raises(NotFoundError):
        check_spec("zz", 0, 0, 0, 0, 512)


def test_chunk_cache_equals_zarr_reads_under_threads(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 255, (40, 150, 170), dtype=np.uint8)
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, dtype="uint8", chunks=(16, 32, 32),
                            shards=(32, 64, 64))
    arr[:] = data
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    cache = ChunkCache(max_bytes=200 * 1024)  # small: evictions happen
    regions = []
    for _ in range(60):
        lo = [int(rng.integers(0, n - 1)) for n in data.shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, data.shape)]
        regions.append(tuple(slice(a, b) for a, b in zip(lo, hi)))
    errors = []

    def work(rs):
        for r in rs:
            if not np.array_equal(cache.read("a", arr, r), data[r]):
                errors.append(r)

    threads = [threading.Thread(target=work, args=(regions[i::4] + regions[:10],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    st = cache.stats()
    assert st["bytes"] <= 200 * 1024 and st["hits"] > 0 and st["misses"] > 0


def test_catalog_adapter(web_template):
    cat = Catalog(web_template)
    assert cat.names() == ["cells", "liver"]
    assert [s.name for s in cat.summaries("homo sapiens")] == ["liver"]
    geo = cat.geometry("cells")
    assert geo.shape == (20, 160, 200) and geo.voxel_size_nm == (24.0, 8.0, 8.0) and len(geo.data_id) == 64
    v = cat.version("cells", "cell")
    assert v.address == "cell@v2" and v.parents == ("cell@v1",) and v.names[2] == "nucleolus"
    assert cat.stored_label_shards("cells", "cell@v1") == {(0, 0, 0)}
    assert [r.action for r in cat.runs("cells")] == ["ingest", "labels-import", "labels-import"]
    assert cat.models("cells") == [] and cat.analyses("cells") == []
    assert cat.history("cells")[0].tags == ("cells/cell/v2",)
    with pytest.raises(NotFoundError):
        cat.zarr_file("cells", "labels/cell_v1/../../zarr.json")
    svg = lineage_svg(cat.versions("cells"), lambda v: f"/x?<{v.address}>")
    assert "&lt;cell@v1&gt;" in svg and "<cell@v1>" not in svg


def test_direct_shard_reader_equals_zarr(web_template, tmp_path):
    from curation.web.shards import open_fast

    for rel in ("cells.ome.zarr/0", "cells.ome.zarr/1", "cells.ome.zarr/labels/cell_v1/0"):
        path = web_template / "acquisitions/cells" / rel
        fast = open_fast(path)
        ref = zarr.open_array(str(path), mode="r")
        assert fast is not None and fast.chunks == tuple(ref.chunks) and fast.shape == ref.shape
        idxs = [tuple(i) for i in np.ndindex(*[-(-n // c) for n, c in zip(ref.shape, ref.chunks)])]
        got = fast.read_chunks(idxs)
        for idx in idxs:
            region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, ref.chunks, ref.shape))
            assert np.array_equal(got[idx], ref[region]), (rel, idx)
    # a label array whose shards are not all stored: the fill value (unlabeled)
    data = np.full((8, 128, 128), 255, np.uint8)
    data[:, :64, :64] = 3
    arr = zarr.create_array(str(tmp_path / "l.zarr"), shape=data.shape, dtype="uint8", chunks=(8, 32, 32),
                            shards=(8, 64, 64), fill_value=255, compressors=zarr.codecs.ZstdCodec(level=3))
    arr[:] = data
    fast = open_fast(tmp_path / "l.zarr")
    got = fast.read_chunks([(0, 0, 0), (0, 3, 3)])
    assert (got[(0, 0, 0)] == 3).all() and (got[(0, 3, 3)] == 255).all()
    # another layout: read through zarr instead
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(4, 4), dtype="uint8", chunks=(2, 2))
    assert open_fast(tmp_path / "plain.zarr") is None and open_fast(tmp_path / "nothing") is None


def test_damaged_shard_index_is_reported(web_template, tmp_path):
    import shutil

    from curation.web.shards import open_fast

    src = web_template / "acquisitions/cells/cells.ome.zarr/0"
    dst = tmp_path / "0"
    shutil.copytree(src, dst, symlinks=False)
    shard = dst / "c/0/0/0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(OSError, match="crc32c"):
        open_fast(dst).read_chunks([(0, 0, 0)])


def test_png_encoder_round_trips():
    import io

    from PIL import Image

    rng = np.random.default_rng(1)
    for img in (rng.integers(0, 255, (37, 53), dtype=np.uint8), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
                rng.integers(0, 255, (16, 9, 4), dtype=np.uint8)):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(R.png(img)))), img)
    assert R.encode(img[..., 0], "jpeg")[:2] == b"\xff\xd8"
    with pytest.raises(ValueError):
        R.encode(img, "jpeg")
