"""A streaming encoder for zarr v3 shards (``sharding_indexed``), in the layout zarr reads
for the arrays curation creates: inner chunks ``bytes`` (little endian) + ``zstd``; the
index ``bytes`` + ``crc32c`` at the end; chunks equal to the fill value omitted.

Why not zarr-python's own write path: it holds the whole shard and its encoded copy, and
its per-chunk async pipeline spends about three times as long as the compression itself.
:class:`ShardWriter` takes the shard one slab of chunk rows at a time, writes each chunk
to a temporary file as soon as it is compressed and hashes the bytes as they go, so a
writer holds one slab, not one shard; the file is renamed into place when complete.
zarr reads the result (tests compare every level through zarr).
"""

from __future__ import annotations

import hashlib
import io
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


class ShardWriter:
    """Write one shard slab by slab; ``close`` returns (sha256, size) or None if empty.

    Each slab spans whole chunk rows along Z (``add(z_offset, slab)`` with ``z_offset`` a
    multiple of the chunk depth) and the shard's full Y and X extent within the array.
    """

    def __init__(self, path: Path | None, shard_shape, chunk_shape, dtype, fill_value=0, *,
                 level: int = ZSTD_LEVEL, partial_suffix: str = ".partial", fh: io.BufferedIOBase | None = None):
        from numcodecs import Zstd

        self.path = Path(path) if path is not None else None
        self.chunk = tuple(chunk_shape)
        self.grid = tuple(s // c for s, c in zip(shard_shape, chunk_shape))
        self.dtype = np.dtype(dtype)
        self.le = self.dtype.newbyteorder("<")
        self.fill = np.asarray(fill_value, dtype=self.dtype)
        self.index = np.full(self.grid + (2,), MAX_UINT_64, dtype="<u8")
        self._comp = Zstd(level=level)
        self._hash = hashlib.sha256()
        self._size = 0
        self._n = 0
        self._tmp: Path | None = None
        if fh is not None:
            self._fh = fh
        else:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}{partial_suffix}")
            self._fh = open(self._tmp, "wb")

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._fh.write(data)
        self._size += len(data)

    def add(self, z_offset: int, slab: np.ndarray) -> None:
        cz = self.chunk[0]
        if z_offset % cz:
            raise ValueError(f"slab offset {z_offset} is not a multiple of the chunk depth {cz}")
        for dz in range(0, slab.shape[0], cz):
            iz = (z_offset + dz) // cz
            rows = slab[dz:dz + cz]
            for iy, ix in itertools.product(range(self.grid[1]), range(self.grid[2])):
                y0, x0 = iy * self.chunk[1], ix * self.chunk[2]
                chunk = rows[:, y0:y0 + self.chunk[1], x0:x0 + self.chunk[2]]
                if chunk.size == 0:
                    continue  # wholly beyond the array's edge
                if (not chunk.any()) if self.fill == 0 else (chunk == self.fill).all():
                    continue
                if chunk.shape != self.chunk:  # an edge chunk: zarr pads with the fill value
                    full = np.full(self.chunk, self.fill, dtype=self.dtype)
                    full[tuple(slice(0, n) for n in chunk.shape)] = chunk
                    chunk = full
                enc = self._comp.encode(np.ascontiguousarray(chunk, dtype=self.le))
                self.index[iz, iy, ix] = (self._size, len(enc))
                self._write(enc)
                self._n += 1

    def close(self) -> tuple[str, int] | None:
        """Finish the shard: None (and no file) when every chunk was fill value."""
        if self._n == 0:
            self.abort()
            if self.path is not None:
                self.path.unlink(missing_ok=True)
            return None
        idx = self.index.tobytes()
        self._write(idx + _crc32c(idx))
        if self._tmp is not None:
            self._fh.close()
            os.replace(self._tmp, self.path)
            self._tmp = None
        return self._hash.hexdigest(), self._size

    def abort(self) -> None:
        if self._tmp is not None:
            self._fh.close()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def encode_shard(block: np.ndarray, shard_shape, chunk_shape, fill_value=0, level: int = ZSTD_LEVEL) -> bytes | None:
    """The bytes of one shard holding ``block`` (None when it is all fill value)."""
    buf = io.BytesIO()
    w = ShardWriter(None, shard_shape, chunk_shape, block.dtype, fill_value, level=level, fh=buf)
    w.add(0, block)
    return buf.getvalue() if w.close() else None


def write_atomic(path: Path, data: bytes, partial_suffix: str = ".partial") -> tuple[str, int]:
    """Write ``data`` to ``path`` via a temporary file and a rename; (sha256, size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}{partial_suffix}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest(), len(data)
