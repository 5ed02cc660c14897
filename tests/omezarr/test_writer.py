import json

import numpy as np
import pytest
import zarr

from curation.engine import Engine
from curation.omezarr import checksum as cks
from curation.omezarr.downsample import mean_downsample
from curation.omezarr.layout import plan_pyramid
from curation.omezarr.ngff import multiscales, validate_image
from curation.omezarr.writer import ArraySpec, Manifest, build_pyramid, create_arrays, forget_stores
from curation.testing import ArraySource, FlakySource, em_like_volume


def _write(tmp, source, plan, fingerprint=None, engine=None):
    spec = ArraySpec(str(tmp / "img.ome.zarr"), plan, str(tmp / "work"), source)
    m = Manifest(tmp / "work" / "manifest.jsonl", fingerprint or {"job": 1})
    resumed = m.load()
    if not resumed:
        create_arrays(spec, multiscales(plan, "img"))
    m.start()
    try:
        with (engine or Engine()) as eng:
            return build_pyramid(spec, eng, m), spec
    finally:
        m.close()


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_round_trip_and_pyramid(tmp_path, dtype):
    a = em_like_volume((70, 150, 130), dtype)
    plan = plan_pyramid(a.shape, (8, 8, 8), dtype, chunk=(16, 32, 32), shard=(32, 64, 64))
    res, spec = _write(tmp_path, ArraySource(a), plan)
    root = tmp_path / "img.ome.zarr"
    validate_image(root)
    g = zarr.open_group(str(root), mode="r")
    np.testing.assert_array_equal(g["0"][:], a)
    prev = a
    for lv in range(1, len(plan.levels)):
        prev = mean_downsample(prev, plan.levels[lv].factor)
        np.testing.assert_array_equal(g[str(lv)][:], prev)
    assert g["0"].metadata.dimension_names == ("z", "y", "x")
    ms = g.attrs["ome"]["multiscales"][0]
    assert [ax["unit"] for ax in ms["axes"]] == ["nanometer"] * 3
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [16.0, 16.0, 16.0]
    # every shard has one record, and the recorded digests are the bytes on disk
    assert len(res.shards) == plan.n_shards()
    entries = cks.entries_from_records(root, res.shards)
    assert cks.tree_checksum(entries) == cks.tree_checksum(cks.scan(root))
    assert not list((tmp_path / "work" / "pieces").rglob("*.npy"))  # pieces cleaned up


def test_resume_after_failure_is_bit_identical(tmp_path):
    a = em_like_volume((64, 128, 128), "uint8", seed=3)
    plan = plan_pyramid(a.shape, (8, 8, 8), "uint8", chunk=(16, 32, 32), shard=(32, 64, 64))
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    _write(ref_dir, ArraySource(a), plan)

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(OSError):  # one thread: the shards before z = 32 finish first
        _write(run, FlakySource(a, fail_z=32), plan, engine=Engine(concurrency=1))
    m = Manifest(run / "work" / "manifest.jsonl", {"job": 1})
    assert m.load() and 0 < len(m.shards) < plan.n_shards()
    forget_stores()
    res, _ = _write(run, ArraySource(a), plan)
    assert res.resumed_shards == len(m.shards)
    assert _files(run / "img.ome.zarr") == _files(ref_dir / "img.ome.zarr")


def test_manifest_with_other_fingerprint_is_not_resumed(tmp_path):
    m = Manifest(tmp_path / "m.jsonl", {"a": 1})
    m.start()
    m.add_shard({"level": 0, "index": [0, 0, 0], "key": "0/c/0/0/0", "nbytes": 3, "sha256": "x", "raw_bytes": 8})
    m.close()
    with open(tmp_path / "m.jsonl", "a") as fh:
        fh.write('{"type": "shard", "lev')  # a torn line after a crash
    again = Manifest(tmp_path / "m.jsonl", {"a": 1})
    assert again.load() and len(again.shards) == 1
    assert not Manifest(tmp_path / "m.jsonl", {"a": 2}).load()


def test_two_worker_processes_write_the_same_bytes(tmp_path):
    from distributed import Client, LocalCluster

    a = em_like_volume((40, 100, 90), "uint16", seed=5)
    plan = plan_pyramid(a.shape, (8, 8, 8), "uint16", chunk=(16, 32, 32), shard=(32, 64, 64))
    one = tmp_path / "one"
    one.mkdir()
    _write(one, ArraySource(a), plan)
    two = tmp_path / "two"
    two.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        _write(two, ArraySource(a), plan, engine=Engine(client=client))
    assert _files(one / "img.ome.zarr") == _files(two / "img.ome.zarr")
    assert json.loads((two / "img.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["version"] == "0.5"


def test_odd_chunk_depth_with_z_halving(tmp_path):
    a = em_like_volume((45, 40, 36), "uint8", seed=8)
    plan = plan_pyramid(a.shape, (8, 8, 8), "uint8", chunk=(7, 16, 16), shard=(28, 32, 32))
    assert plan.levels[1].factor == (2, 2, 2)
    with pytest.raises(ValueError, match="must be even along z"):
        plan_pyramid(a.shape, (8, 8, 8), "uint8", chunk=(7, 16, 16), shard=(21, 32, 32))
    _write(tmp_path, ArraySource(a), plan)
    g = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="r")
    np.testing.assert_array_equal(g["1"][:], mean_downsample(a, (2, 2, 2)))
