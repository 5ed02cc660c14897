"""A direct encoder for zarr v3 shards (``sharding_indexed``), bytes-identical in layout to
what zarr writes for the arrays curation creates: inner chunks ``bytes`` (little endian) +
``zstd``; index ``bytes`` + ``crc32c`` at the end; chunks equal to the fill value omitted.

Why: zarr-python's per-chunk async pipeline spends about three times as long as the
compression itself on a 128 MiB shard. Encoding the shard here, in the task that holds the
block, writes it in one atomic file operation and hands back the bytes for hashing at no
extra cost. zarr reads the result (tests compare every level through zarr).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from pathlib import Path

import numpy as np

MAX_UINT_64 = np.uint64(2**64 - 1)
ZSTD_LEVEL = 3


def _crc32c(data: bytes) -> bytes:
    import google_crc32c

    return np.uint32(google_crc32c.value(data)).tobytes()


def encode_shard(block: np.ndarray, shard_shape: tuple[int, ...], chunk_shape: tuple[int, ...],
                 fill_value=0, level: int = ZSTD_LEVEL) -> list[bytes] | None:
    """Encode ``block`` (the shard's region, smaller than ``shard_shape`` at array edges).

    Returns the shard as a list of byte strings to be written in order (the encoded
    chunks, then the index with its checksum), or None when every inner chunk equals the
    fill value (zarr then stores no file at all).
    """
    from numcodecs import Zstd

    comp = Zstd(level=level)
    grid = tuple(s // c for s, c in zip(shard_shape, chunk_shape))
    index = np.full(grid + (2,), MAX_UINT_64, dtype="<u8")
    le = block.dtype.newbyteorder("<")
    parts: list[bytes] = []
    offset = 0
    fill = np.asarray(fill_value, dtype=block.dtype)
    for idx in itertools.product(*(range(g) for g in grid)):
        sl = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, chunk_shape, block.shape))
        if any(s.start >= s.stop for s in sl):
            continue  # wholly beyond the array's edge
        chunk = block[sl]
        if (not chunk.any()) if fill == 0 else (chunk == fill).all():
            continue
        if chunk.shape != tuple(chunk_shape):  # an edge chunk: zarr pads with the fill value
            full = np.full(chunk_shape, fill, dtype=block.dtype)
            full[tuple(slice(0, n) for n in chunk.shape)] = chunk
            chunk = full
        enc = comp.encode(np.ascontiguousarray(chunk, dtype=le))
        index[idx] = (offset, len(enc))
        parts.append(bytes(enc))
        offset += len(enc)
    if not parts:
        return None
    idx_bytes = index.tobytes()
    parts.append(idx_bytes + _crc32c(idx_bytes))
    return parts


def write_atomic(path: Path, parts: list[bytes] | bytes, partial_suffix: str = ".partial") -> tuple[str, int]:
    """Write ``parts`` to ``path`` via a temporary file and a rename.

    Returns the sha256 and size of what was written, hashed as it is written.
    """
    if isinstance(parts, (bytes, bytearray)):
        parts = [parts]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}{partial_suffix}")
    h = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as fh:
        for part in parts:
            h.update(part)
            fh.write(part)
            size += len(part)
    os.replace(tmp, path)
    return h.hexdigest(), size
