"""Positioned reads of a C-ordered array stored uncompressed at an offset in a file.

Why not ``numpy.memmap``: a long-lived map of a multi-gigabyte source makes every page a
block touched count in the process's resident memory until the kernel reclaims it. Those
pages are file-backed and reclaimable, but a Dask worker's memory monitor reads RSS and
cannot tell them from the anonymous memory a task allocates, so after a few GB it pauses
the worker and an ingest of a 4 GB multi-page TIFF stalls for ever (issue 13). With
``os.pread`` a block reads exactly the bytes it needs into a buffer it owns: resident
memory is anonymous memory bounded by the engine's concurrency, the file stays in the
page cache (shared, not charged to the process), and the memory cap means what it says.
A ``pread`` is also thread-safe (no shared file position), so one descriptor serves every
thread of a worker.

:func:`read_index` reads ``array[index]`` (ints and unit-step slices) with one ``pread``
per *run*: the bytes between the first and the last element selected within the inner
axes, for each combination of the outer ones. The split is chosen so a run wastes at most
a few times what it keeps (full rows of a narrow region are read row by row instead).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np

from ..errors import CorruptSourceError

#: a run may read up to this many times the bytes it keeps before it is split further
MAX_WASTE = 4


class PositionedFile:
    """An open file descriptor for ``os.pread``; picklable layouts reopen it per process."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise CorruptSourceError(f"cannot open the file: {e.strerror or e}", path=path) from e

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:  # a dropped handle releases its descriptor
        try:
            self.close()
        except OSError:  # noqa: S110 - closing is best effort in a finaliser
            pass

    def pread(self, n: int, at: int) -> bytes:
        if self.fd is None:
            raise CorruptSourceError("read after close", path=self.path)
        parts: list[bytes] = []
        got = 0
        while got < n:  # pread may return less than asked (signals, network file systems)
            chunk = os.pread(self.fd, n - got, at + got)
            if not chunk:
                raise CorruptSourceError(
                    "is truncated", path=self.path, expected=f"image data up to byte {at + n}",
                    found=f"end of file at byte {at + got}",
                )
            parts.append(chunk)
            got += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _bounds(index: tuple[Any, ...], shape: tuple[int, ...]) -> list[tuple[int, int, bool]]:
    out = []
    for sel, n in zip(index, shape):
        if isinstance(sel, slice):
            lo = 0 if sel.start is None else int(sel.start)
            hi = n if sel.stop is None else int(sel.stop)
            if sel.step not in (None, 1) or not 0 <= lo <= hi <= n:
                raise ValueError(f"unsupported selection {sel!r} on an axis of {n}")
            out.append((lo, hi, False))
        else:
            i = int(sel)
            if not 0 <= i < n:
                raise ValueError(f"index {i} outside an axis of {n}")
            out.append((i, i + 1, True))
    return out


def read_index(fh: PositionedFile, offset: int, dtype: np.dtype, shape: tuple[int, ...],
               index: tuple[Any, ...]) -> np.ndarray:
    """``array[index]`` for the C-ordered ``shape``/``dtype`` array stored at ``offset``."""
    dtype = np.dtype(dtype)
    nd = len(shape)
    b = _bounds(tuple(index) + (slice(None),) * (nd - len(index)), tuple(shape))
    item = dtype.itemsize
    strides = [item * int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(nd)]
    counts = [hi - lo for lo, hi, _ in b]
    out = np.empty(counts, dtype=dtype)
    if out.size == 0:
        return out[tuple(0 if is_int else slice(None) for _, _, is_int in b)]
    # split: outer axes are looped over, inner axes read as one run each
    split = 0
    while split < nd - 1:
        span = sum((hi - 1 - lo) * s for (lo, hi, _), s in zip(b[split:], strides[split:])) + item
        keep = int(np.prod(counts[split:], dtype=np.int64)) * item
        if span <= MAX_WASTE * keep:
            break
        split += 1
    inner_first = sum(lo * s for (lo, _, _), s in zip(b[split:], strides[split:]))
    span = sum((hi - 1 - lo) * s for (lo, hi, _), s in zip(b[split:], strides[split:])) + item
    inner_strides = strides[split:]
    for combo in itertools.product(*(range(lo, hi) for lo, hi, _ in b[:split])):
        base = offset + sum(i * s for i, s in zip(combo, strides[:split])) + inner_first
        buf = fh.pread(span, base)
        run = np.ndarray(counts[split:], dtype=dtype, buffer=buf, strides=inner_strides)
        dst = tuple(i - lo for i, (lo, _, _) in zip(combo, b[:split]))
        out[dst] = run
    return out[tuple(0 if is_int else slice(None) for _, _, is_int in b)]
