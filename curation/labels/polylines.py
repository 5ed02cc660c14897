"""Polyline geometry on 2D slices: draw, close, fill, and band.

Coordinates are pixels of the slice, ``x`` the column and ``y`` the row, with pixel
centres on the integers: the pixel ``mask[r, c]`` has its centre at ``(x=c, y=r)`` and
covers ``c - 0.5 <= x < c + 0.5``. Points are float arrays of shape ``(n, 2)`` holding
``(x, y)`` pairs.

- :func:`rasterize` draws traces as lines of a given width (so that mask-based consensus
  methods can be used on polylines).
- :func:`close_traces` turns a volunteer's open traces on one slice into closed
  polygons by joining the nearest free endpoints.
- :func:`polygon_fill` fills a polygon by the even-odd rule, evaluated at pixel centres.
- :func:`fill_traces` closes and fills, giving the region the volunteer outlined.
- :func:`envelope_band` redraws a region's boundary as a band of a given width.

Everything here is pure numpy/scipy and does no input validation beyond shapes: the
readers in :mod:`curation.labels.annotations` validate volunteer input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "Trace",
    "close_traces",
    "envelope_band",
    "fill_traces",
    "polygon_fill",
    "rasterize",
]


@dataclass(frozen=True)
class Trace:
    """One volunteer polyline: ``points`` is ``(n, 2)`` float ``(x, y)``; ``closed``
    says the volunteer closed it (its last point joins its first)."""

    points: np.ndarray = field(repr=False)
    closed: bool = False

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        object.__setattr__(self, "points", pts)

    def __len__(self) -> int:
        return len(self.points)


TraceLike = Trace | np.ndarray | Sequence[Sequence[float]]


def _as_trace(t: TraceLike) -> Trace:
    return t if isinstance(t, Trace) else Trace(np.asarray(t, dtype=np.float64))


# --- drawing ------------------------------------------------------------------------------


def _line_pixels(points: np.ndarray, closed: bool, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels a 1-pixel polyline passes through (in bounds)."""
    pts = points
    if closed and len(pts) > 2:
        pts = np.vstack([pts, pts[:1]])
    if len(pts) == 1:
        samples = pts
    else:
        seg = np.diff(pts, axis=0)
        lengths = np.hypot(seg[:, 0], seg[:, 1])
        n = np.maximum(np.ceil(lengths * 2).astype(int), 1)  # two samples per pixel
        starts = np.repeat(pts[:-1], n, axis=0)
        steps = np.repeat(seg, n, axis=0)
        frac = np.concatenate([np.arange(k) / k for k in n])[:, None]
        samples = np.vstack([starts + steps * frac, pts[-1:]])
    cols = np.rint(samples[:, 0]).astype(np.int64)
    rows = np.rint(samples[:, 1]).astype(np.int64)
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows[keep], cols[keep]


def _widen(line: np.ndarray, width_px: float) -> np.ndarray:
    """Thicken a 1-pixel line to ``width_px`` (Euclidean distance from the line)."""
    if width_px <= 1 or not line.any():
        return line
    return ndimage.distance_transform_edt(~line) <= (width_px - 1) / 2


def rasterize(polylines: Iterable[TraceLike], shape: tuple[int, int], width_px: float = 1.0) -> np.ndarray:
    """Draw traces into a ``bool`` mask of ``shape``, lines ``width_px`` pixels wide.

    A closed :class:`Trace` also draws its closing segment. Points outside the slice
    are drawn as far as the slice reaches.
    """
    shape = (int(shape[0]), int(shape[1]))
    line = np.zeros(shape, dtype=bool)
    for t in polylines:
        t = _as_trace(t)
        if len(t):
            rows, cols = _line_pixels(t.points, t.closed, shape)
            line[rows, cols] = True
    return _widen(line, width_px)


# --- closing ------------------------------------------------------------------------------


def close_traces(traces: Iterable[TraceLike]) -> list[np.ndarray]:
    """Join one volunteer's open traces on one slice into closed polygons.

    Closed traces pass through unchanged. Open traces are chains joined greedily by
    their nearest free endpoints: the shortest join between an end of one chain and an
    end of another is made first, and so on. A chain closes on itself (its end joined to
    its start) once it is the last chain, or earlier when its own gap is shorter than
    every join open to it and under half its traced length — so the pieces of one
    outline are reassembled whatever their order and direction, two halves of an outline
    are joined rather than each closed flat, and separate objects traced apart stay
    apart. A single open trace is closed to itself. Returns the polygons as ``(n, 2)``
    arrays, implicitly closed (the last point joins the first).
    """
    polygons: list[np.ndarray] = []
    chains: list[np.ndarray] = []
    for t in traces:
        t = _as_trace(t)
        if len(t) == 0:
            continue
        (polygons if t.closed else chains).append(t.points)
    while chains:
        k = len(chains)
        if k == 1:
            polygons.append(chains.pop())
            break
        ends = np.array([[c[0], c[-1]] for c in chains])  # (k, 2 ends, 2 coords)
        # distance from every end (i, a) to every end (j, b): shape (k, 2, k, 2)
        d = np.linalg.norm(ends[:, :, None, None, :] - ends[None, None, :, :, :], axis=-1)
        own = np.empty(k)
        for i in range(k):
            own[i] = d[i, 0, i, 1]
            d[i, :, i, :] = np.inf  # a chain's own ends meet only as its closure
        i, a, j, b = np.unravel_index(int(np.argmin(d)), d.shape)
        best = d[i, a, j, b]
        length = np.array([np.hypot(*np.diff(c, axis=0).T).sum() for c in chains])
        closable = np.flatnonzero((own < best) & (own < 0.5 * length))
        if closable.size:  # a nearly closed chain: finish it before joining others
            polygons.append(chains.pop(int(closable[np.argmin(own[closable])])))
            continue
        first = chains[i] if a == 1 else chains[i][::-1]  # ends at the joined end
        second = chains[j] if b == 0 else chains[j][::-1]  # starts at the joined end
        merged = np.vstack([first, second])
        for idx in sorted((i, j), reverse=True):
            chains.pop(idx)
        chains.append(merged)
    return polygons


# --- filling ------------------------------------------------------------------------------


def polygon_fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill a closed polygon (``(n, 2)`` ``(x, y)``) by the even-odd rule.

    A pixel is inside when its centre is: scanlines run through the pixel centres, an
    edge counts for rows ``y0 <= y < y1`` (half-open, so vertices count once), and on a
    scanline the pixels with ``x_left <= c < x_right`` between paired crossings are set.
    Self-intersecting outlines fill by parity.
    """
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), dtype=bool)
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return out
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    keep = y0 != y1
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    r_start = np.clip(np.ceil(lo), 0, h).astype(np.int64)
    r_stop = np.clip(np.ceil(hi), 0, h).astype(np.int64)  # rows lo <= r < hi
    counts = np.maximum(r_stop - r_start, 0)
    if counts.sum() == 0:
        return out
    edge = np.repeat(np.arange(len(x0)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = r_start[edge] + offsets
    t = (rows - y0[edge]) / (y1[edge] - y0[edge])
    xs = x0[edge] + t * (x1[edge] - x0[edge])
    cols = np.clip(np.ceil(xs), 0, w).astype(np.int64)
    toggles = np.zeros((h, w + 1), dtype=np.int64)
    np.add.at(toggles, (rows, cols), 1)
    out[:] = (np.cumsum(toggles, axis=1)[:, :w] % 2).astype(bool)
    return out


def fill_traces(traces: Iterable[TraceLike], shape: tuple[int, int]) -> np.ndarray:
    """The region one volunteer outlined on one slice: :func:`close_traces`, then each
    polygon filled by :func:`polygon_fill`, united. ``bool`` mask of ``shape``."""
    out = np.zeros((int(shape[0]), int(shape[1])), dtype=bool)
    for polygon in close_traces(traces):
        out |= polygon_fill(polygon, shape)
    return out


# --- bands --------------------------------------------------------------------------------


def envelope_band(region: np.ndarray, width_px: float) -> np.ndarray:
    """The boundary of ``region`` (2D bool) redrawn as a band ``width_px`` wide.

    A dilate-minus-erode of the boundary, by Euclidean distance: region pixels within
    ``(width_px + 1) / 2`` of the background and background pixels within
    ``width_px / 2`` of the region. Width 1 is the region's inner boundary; each further
    pixel of width alternates outwards and inwards, so the band straddles the contour.
    """
    region = np.asarray(region, dtype=bool)
    if width_px <= 0:
        return np.zeros_like(region)
    if not region.any():
        return np.zeros_like(region)
    if region.all():  # no boundary inside the slice
        return np.zeros_like(region)
    inner = ndimage.distance_transform_edt(region) <= (width_px + 1) / 2
    outer = ndimage.distance_transform_edt(~region) <= width_px / 2
    return (region & inner) | (~region & outer)
