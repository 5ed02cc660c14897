"""Tiles of the slice viewer: which level, which region, decoded once, encoded fast.

A tile is addressed by ``plane`` (xy, xz, yz), pyramid ``level``, the slice ``index``
along the plane's normal **in level-0 voxels** (so the slider keeps its place across
zoom levels), and the tile's ``row``/``col`` in the level's pixel grid, ``size`` pixels
a side (at most :data:`MAX_TILE`). Edge tiles are smaller: they hold only voxels that
exist.

Reads go through :class:`ChunkCache`, an LRU of decoded inner chunks (the zarr read
unit): a 512 x 512 xy tile of 64^3 chunks decodes 64 chunks that also hold the next 63
slices, so moving the slider or panning is served from memory. Concurrent requests for
the same chunks wait for one decode instead of repeating it. Encoded tiles are kept in a
second, smaller LRU; every tile carries an ETag derived from the immutable data id
(image tree checksum or label version checksum), so browsers revalidate for free.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from ..errors import NotFoundError, OptionError
from . import render as R
from .catalog import Catalog, Geometry, check_address

MAX_TILE = 1024
DEFAULT_TILE = 512
MIN_TILE = 16


@dataclass(frozen=True)
class TileSpec:
    plane: str
    level: int
    index: int  # along the normal, level-0 voxels
    row: int
    col: int
    size: int = DEFAULT_TILE

    def key(self) -> str:
        return f"{self.plane}/{self.level}/{self.index}/{self.row}/{self.col}/{self.size}"


def check_spec(plane: str, level: int, index: int, row: int, col: int, size: int) -> TileSpec:
    """A tile request checked for form (plane name, bounded size, non-negative numbers)."""
    if plane not in R.PLANES:
        raise NotFoundError("no such plane", field="plane", expected="xy | xz | yz", found=plane)
    if not MIN_TILE <= size <= MAX_TILE:
        raise OptionError("tile size out of bounds", field="size", expected=f"{MIN_TILE}..{MAX_TILE}", found=size)
    if min(level, index, row, col) < 0:
        raise NotFoundError("tile outside the volume", field="tile", found=f"{plane}/{level}/{index}/{row}/{col}")
    return TileSpec(plane, level, index, row, col, size)


def level_index(geo: Geometry, level: int, axis: int, index0: int) -> int:
    """Index along ``axis`` at ``level`` of level-0 index ``index0``."""
    lv = geo.levels[level]
    factor = lv.scale_nm[axis] / geo.levels[0].scale_nm[axis]
    return min(int(index0 // factor), lv.shape[axis] - 1)


def tile_region(geo: Geometry, spec: TileSpec) -> tuple[slice, slice, slice]:
    """The (z, y, x) region of level ``spec.level`` a tile shows; NotFoundError outside."""
    if spec.level >= len(geo.levels):
        raise NotFoundError("no such pyramid level", field="level", expected=f"0..{len(geo.levels) - 1}",
                            found=spec.level)
    normal, r, c = R.PLANES[spec.plane]
    shape = geo.levels[spec.level].shape
    if spec.index >= geo.shape[normal]:
        raise NotFoundError("slice outside the volume", field="index", expected=f"0..{geo.shape[normal] - 1}",
                            found=spec.index)
    r0, c0 = spec.row * spec.size, spec.col * spec.size
    if r0 >= shape[r] or c0 >= shape[c]:
        raise NotFoundError("tile outside the volume", field="tile", found=spec.key())
    idx = level_index(geo, spec.level, normal, spec.index)
    return R.plane_slices(spec.plane, idx, (r0, min(r0 + spec.size, shape[r])), (c0, min(c0 + spec.size, shape[c])))


# --- decoded chunks ------------------------------------------------------------------------


class ChunkCache:
    """An LRU of decoded chunks (``max_bytes`` in all), shared by every request thread."""

    def __init__(self, max_bytes: int = 512 * 1024**2) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def read(self, array_key: Hashable, arr, region: tuple[slice, ...]) -> np.ndarray:
        """``arr[region]``, assembled from cached chunks; missing chunks are decoded by
        ``arr.read_chunks`` when it has one, else in one zarr read of their bounding box."""
        cs = tuple(int(c) for c in arr.chunks)
        shape = tuple(int(n) for n in arr.shape)
        ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, cs)]
        wanted = list(itertools.product(*ranges))
        got = self._fetch(array_key, arr, cs, shape, wanted)
        out = np.empty(tuple(s.stop - s.start for s in region), arr.dtype)
        for idx, chunk in zip(wanted, got):
            src, dst = [], []
            for i, s, c in zip(idx, region, cs):
                lo, hi = max(s.start, i * c), min(s.stop, (i + 1) * c)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - s.start, hi - s.start))
            out[tuple(dst)] = chunk[tuple(src)]
        return out

    def _fetch(self, array_key, arr, cs, shape, wanted) -> list[np.ndarray]:
        mine, theirs = [], []
        with self._lock:
            found = {}
            for idx in wanted:
                k = (array_key, idx)
                if k in self._data:
                    self._data.move_to_end(k)
                    found[idx] = self._data[k]
                    self.hits += 1
                elif k in self._pending:
                    theirs.append(idx)
                else:
                    self._pending[k] = threading.Event()
                    mine.append(idx)
                    self.misses += 1
        try:
            if mine:
                found.update(self._decode(array_key, arr, cs, shape, mine))
        finally:
            with self._lock:
                for idx in mine:
                    ev = self._pending.pop((array_key, idx), None)
                    if ev is not None:
                        ev.set()
        for idx in theirs:
            ev = self._pending.get((array_key, idx))
            if ev is not None:
                ev.wait(60)
            with self._lock:
                chunk = self._data.get((array_key, idx))
            if chunk is None:  # evicted already, or the other reader failed: read it here
                chunk = self._decode(array_key, arr, cs, shape, [idx])[idx]
            found[idx] = chunk
        return [found[idx] for idx in wanted]

    def _decode(self, array_key, arr, cs, shape, idxs) -> dict[tuple[int, ...], np.ndarray]:
        lo = [min(i[d] for i in idxs) for d in range(len(cs))]
        hi = [max(i[d] for i in idxs) + 1 for d in range(len(cs))]
        box = tuple(slice(a * c, min(b * c, n)) for a, b, c, n in zip(lo, hi, cs, shape))
        if hasattr(arr, "read_chunks"):  # the direct shard reader (curation/web/shards.py)
            out = arr.read_chunks(idxs)
        else:
            block = np.asarray(arr[box])
            out = {}
            for idx in idxs:
                sl = tuple(slice((i - a) * c, min((i - a + 1) * c, n - a * c)) for i, a, c, n in zip(idx, lo, cs, shape))
                out[idx] = np.ascontiguousarray(block[sl])
        with self._lock:
            for idx, chunk in out.items():
                k = (array_key, idx)
                if k not in self._data:
                    self._data[k] = chunk
                    self._bytes += chunk.nbytes
            while self._bytes > self.max_bytes and self._data:
                _, old = self._data.popitem(last=False)
                self._bytes -= old.nbytes
        return out

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"chunks": len(self._data), "bytes": self._bytes, "hits": self.hits, "misses": self.misses}


class BytesCache:
    """A small LRU of encoded tiles by ETag."""

    def __init__(self, max_bytes: int = 64 * 1024**2) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            b = self._data.get(key)
            if b is not None:
                self._data.move_to_end(key)
            return b

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            if key in self._data:
                return
            self._data[key] = value
            self._bytes += len(value)
            while self._bytes > self.max_bytes and self._data:
                _, old = self._data.popitem(last=False)
                self._bytes -= len(old)


# --- the service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    body: bytes
    etag: str
    media_type: str


class Tiles:
    """Renders image, label and difference tiles of a :class:`Catalog`."""

    def __init__(self, catalog: Catalog, cache_bytes: int = 512 * 1024**2) -> None:
        self.catalog = catalog
        self.chunks = ChunkCache(cache_bytes)
        self.encoded = BytesCache(min(64 * 1024**2, max(cache_bytes // 8, 1024**2)))
        self._windows: dict[str, tuple[float, float]] = {}

    # --- pixels -----------------------------------------------------------------------

    def image_plane(self, name: str, spec: TileSpec) -> np.ndarray:
        geo = self.catalog.geometry(name)
        region = tile_region(geo, spec)
        arr = self.catalog.image_reader(name, spec.level)
        return R.to_plane(self.chunks.read(("image", name, spec.level), arr, region), spec.plane)

    def label_plane(self, name: str, address: str, spec: TileSpec) -> np.ndarray:
        geo = self.catalog.geometry(name)
        region = tile_region(geo, spec)
        arr = self.catalog.label_reader(name, address, spec.level)
        return R.to_plane(self.chunks.read(("label", name, address, spec.level), arr, region), spec.plane)

    def window(self, name: str) -> tuple[float, float]:
        """The default display window: robust percentiles (0.5 %, 99.5 %) of level 0, the
        level whose noise the viewer shows when zoomed in, sampled on five z slices
        (their central 512 x 512 voxels)."""
        hit = self._windows.get(name)
        if hit is not None:
            return hit
        geo = self.catalog.geometry(name)
        arr = self.catalog.image_array(name, 0)
        nz, ny, nx = geo.shape
        ey, ex = min(ny, 512), min(nx, 512)
        ys, xs = slice((ny - ey) // 2, (ny - ey) // 2 + ey), slice((nx - ex) // 2, (nx - ex) // 2 + ex)
        zs = sorted({int(z) for z in np.linspace(0, nz - 1, 7)[1:-1]} or {0})
        sample = np.stack([np.asarray(arr[z, ys, xs]) for z in zs])
        win = R.robust_window(sample)
        self._windows[name] = win
        return win

    # --- tiles ------------------------------------------------------------------------

    def image_tile(self, name: str, spec: TileSpec, lo: float | None = None, hi: float | None = None,
                   fmt: str = "png") -> Tile:
        geo = self.catalog.geometry(name)
        if lo is None or hi is None:
            dlo, dhi = self.window(name)
            lo = dlo if lo is None else lo
            hi = dhi if hi is None else hi
        if hi <= lo:
            raise OptionError("the contrast window is empty", field="lo/hi", expected="lo < hi", found=f"{lo}/{hi}")
        tag = _etag("image", geo.data_id, spec.key(), f"{lo:g}", f"{hi:g}", fmt)
        return self._cached(tag, fmt, lambda: R.to_grey(self.image_plane(name, spec), lo, hi))

    def label_tile(self, name: str, address: str, spec: TileSpec, fmt: str = "png") -> Tile:
        address = check_address(address)
        v = self.catalog.version(name, address)
        tag = _etag("label", v.data_id, spec.key(), fmt)
        _lossless(fmt)
        return self._cached(tag, fmt, lambda: R.label_rgba(self.label_plane(name, v.address, spec), v.colors,
                                                           v.unlabeled))

    def diff_tile(self, name: str, a: str, b: str, spec: TileSpec, fmt: str = "png") -> Tile:
        va = self.catalog.version(name, check_address(a))
        vb = self.catalog.version(name, check_address(b))
        tag = _etag("diff", va.data_id, vb.data_id, spec.key(), fmt)
        _lossless(fmt)
        return self._cached(tag, fmt, lambda: R.diff_rgba(self.label_plane(name, va.address, spec),
                                                          self.label_plane(name, vb.address, spec),
                                                          va.unlabeled, vb.unlabeled))

    def _cached(self, tag: str, fmt: str, make: Callable[[], np.ndarray]) -> Tile:
        if fmt not in R.FORMATS:
            raise OptionError("unknown tile format", field="format", expected=" | ".join(R.FORMATS), found=fmt)
        body = self.encoded.get(tag)
        if body is None:
            body = R.encode(make(), fmt)
            self.encoded.put(tag, body)
        return Tile(body, tag, R.FORMATS[fmt])

    def forget(self, name: str) -> None:
        """Drop what is cached about ``name`` that may change (the default window)."""
        self._windows.pop(name, None)


def _lossless(fmt: str) -> None:
    if fmt == "jpeg":
        raise OptionError("label and difference tiles are lossless", field="format", expected="png | webp",
                          found=fmt)


def _etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'
