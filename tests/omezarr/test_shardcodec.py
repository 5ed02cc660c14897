import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from curation.omezarr.shardcodec import encode_shard, write_atomic


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_zarr_reads_our_shards(tmp_path, dtype):
    shape, chunks, shards = (37, 70, 45), (8, 16, 16), (16, 32, 32)
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 200).astype(dtype)
    data[:16, :32, :32] = 0  # a whole shard of fill value: no file
    data[16:24, 32:48, :16] = 0  # one empty inner chunk inside a shard
    zarr.create_array(str(tmp_path / "a.zarr"), shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                            compressors=[ZstdCodec(level=3)], fill_value=0)
    for i in range(0, shape[0], shards[0]):
        for j in range(0, shape[1], shards[1]):
            for k in range(0, shape[2], shards[2]):
                block = data[i:i + shards[0], j:j + shards[1], k:k + shards[2]]
                enc = encode_shard(block, shards, chunks, 0)
                key = tmp_path / "a.zarr" / "c" / str(i // shards[0]) / str(j // shards[1]) / str(k // shards[2])
                if enc is None:
                    assert not block.any()
                    continue
                write_atomic(key, enc)
    assert not (tmp_path / "a.zarr" / "c" / "0" / "0" / "0").exists()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[:], data)
    # and zarr's own encoding of the same data decodes identically
    ref = zarr.create_array(str(tmp_path / "b.zarr"), shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                            compressors=[ZstdCodec(level=3)], fill_value=0)
    ref[:] = data
    assert sorted(p.relative_to(tmp_path / "b.zarr").as_posix() for p in (tmp_path / "b.zarr").rglob("c/*/*/*")) == \
        sorted(p.relative_to(tmp_path / "a.zarr").as_posix() for p in (tmp_path / "a.zarr").rglob("c/*/*/*"))
