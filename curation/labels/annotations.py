"""Read volunteer annotations of a volume: per-annotator masks, or polyline exports.

Every reader returns an :class:`AnnotationSet`, validated, with the files it read kept
for lineage. Errors are :class:`~curation.errors.LabelError`, one line naming the file,
the row or record and field, what was expected and what was found.

Per-annotator masks (:func:`read_mask_folder`)
----------------------------------------------
A folder with one subfolder per annotator; the subfolder's name is the annotator id.
Each subfolder holds one mask per annotated slice, ``.tif``/``.tiff``/``.png`` (other
files and hidden entries are ignored). The slice index is the last group of digits in
the file stem (``u3/slice_0007.png`` → slice 7; ``z12_v2.tif`` → slice 2). A mask is
2D, of integer or bool values 0..255 (0 background; one foreground label 1, or several
labels); RGB/RGBA images whose three colour channels are equal are read as grey; a
black-and-white mask holding only 0 and 255 is read as binary (255 → 1); float masks
are accepted only when every value is a whole number. Every mask has the slice shape
(given by the caller, else that of the first mask read). An annotator with several masks
for the same slice, or a slice outside ``0..n_slices-1``, is refused.

Polylines, CSV (:func:`read_polylines`, ``.csv``)
--------------------------------------------------
One row per vertex, with a header row. Columns (names are case-insensitive):

``annotator``
    the volunteer's id; a column ``user_name`` (Zooniverse's name) is used when there
    is no ``annotator`` column.
``slice``
    the slice index, an integer counted from 0; ``subject_z`` or ``frame`` are used
    when there is no ``slice`` column.
``trace``
    any text; the rows of one (annotator, slice, trace) form one polyline, whose
    vertices are in row order.
``x``, ``y``
    the vertex in pixels of the slice: ``x`` the column, ``y`` the row, pixel centres
    on the integers; decimals allowed.
``closed`` (optional)
    ``true``/``false`` (also ``1``/``0``, ``yes``/``no``; empty means false): the
    volunteer closed the polyline. All rows of one trace must agree.

A row whose ``trace``, ``x`` and ``y`` are all empty records that the annotator looked
at the slice and drew nothing (an empty annotation, which counts in the consensus).
The CSV does not carry the slice shape: the caller passes ``slice_shape``.

Zooniverse's own classification export holds one row per classification with the
marks JSON-encoded in an ``annotations`` column; flatten it first to one row per vertex
(e.g. with ``panoptes_aggregation``'s polyline extractor, or a few lines of pandas),
keeping ``user_name`` and the subject's slice as ``subject_z`` or ``frame`` — those
column names are then understood as they are.

Polylines, JSON (:func:`read_polylines`, ``.json``)
---------------------------------------------------
::

    {"format": "curation-polylines/1",
     "slice_shape": [y, x],
     "annotations": [
        {"annotator": "u1", "slice": 3,
         "traces": [{"points": [[x, y], [x, y], ...], "closed": false}]}]}

``format`` must be exactly ``curation-polylines/1``; ``slice_shape`` is the slice's
``[rows, columns]``; ``closed`` defaults to false; a record with ``"traces": []`` is an
empty annotation. Several records for one (annotator, slice) are merged.

Both polyline formats check: coordinates are finite numbers; a polyline has at least
2 points; the slice is inside the volume when the caller passes ``n_slices``; a vertex
lies inside the slice, extended by ``tolerance_px`` (default 2 pixels) on every side
(``-tolerance <= x <= columns - 1 + tolerance``). A vertex in that margin (a volunteer
dragging a pixel or two past the edge, common in real exports) is clipped to the
nearest pixel centre of the slice, and :attr:`AnnotationSet.warnings` says how many
were clipped and how far; a vertex farther out refuses the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from curation.errors import LabelError
from curation.safeload import escape, read_csv, read_json
from curation.labels.polylines import Trace, fill_traces, rasterize

__all__ = [
    "JSON_FORMAT",
    "MASK_SUFFIXES",
    "AnnotationSet",
    "read_mask_folder",
    "read_polylines",
]

JSON_FORMAT = "curation-polylines/1"
MASK_SUFFIXES = (".tif", ".tiff", ".png")
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


class _Say:
    """An expectation rendered as it is in error messages (no quotes), e.g. ``0..19``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _span(lo: float | str, hi: float | str) -> _Say:
    """``lo..hi``, floats without trailing zeros."""
    return _Say("..".join(f"{v:g}" if isinstance(v, float) else str(v) for v in (lo, hi)))


@dataclass
class AnnotationSet:
    """Volunteer annotations of one volume, by annotator and slice.

    ``kind`` says which of ``masks`` (annotator → slice → 2D uint8 mask) and
    ``polylines`` (annotator → slice → list of :class:`Trace`) holds the annotations.
    ``sources`` are the files read, for lineage.
    """

    annotators: list[str]
    slice_shape: tuple[int, int]
    kind: Literal["masks", "polylines"]
    masks: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    polylines: dict[str, dict[int, list[Trace]]] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    n_slices: int | None = None
    #: what was accepted but changed (vertices clipped to the slice), for the run record
    warnings: list[str] = field(default_factory=list)

    def slices_of(self, annotator: str) -> list[int]:
        """The slices ``annotator`` annotated, in order."""
        table = self.masks if self.kind == "masks" else self.polylines
        return sorted(table.get(annotator, {}))

    @property
    def slices(self) -> list[int]:
        """Every slice some annotator annotated, in order."""
        return sorted({z for a in self.annotators for z in self.slices_of(a)})

    def to_masks(self, mode: Literal["fill", "trace"] = "fill", width_px: float = 1.0) -> AnnotationSet:
        """Masks from polylines: ``fill`` closes and fills each volunteer's traces (the
        outlined region, label 1); ``trace`` draws the lines ``width_px`` wide. A mask
        set is returned as it is."""
        if self.kind == "masks":
            return self
        if mode not in ("fill", "trace"):
            raise LabelError("unknown polyline mode", field="mode", expected=_Say("'fill' or 'trace'"), found=mode)
        masks: dict[str, dict[int, np.ndarray]] = {}
        for a in self.annotators:
            masks[a] = {}
            for z, traces in self.polylines.get(a, {}).items():
                m = fill_traces(traces, self.slice_shape) if mode == "fill" else rasterize(traces, self.slice_shape, width_px)
                masks[a][z] = m.astype(np.uint8)
        return AnnotationSet(
            annotators=list(self.annotators),
            slice_shape=self.slice_shape,
            kind="masks",
            masks=masks,
            sources=list(self.sources),
            n_slices=self.n_slices,
        )


# --- masks --------------------------------------------------------------------------------


def read_mask_folder(
    folder: str | Path,
    *,
    n_slices: int | None = None,
    slice_shape: tuple[int, int] | None = None,
) -> AnnotationSet:
    """Read a folder of per-annotator mask folders (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError("annotation folder not found", path=folder, expected=_Say("a folder of annotator folders"))
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise LabelError("no annotator folders", path=folder, expected=_Say("one subfolder per annotator"), found=_Say("none"))
    shape = None if slice_shape is None else (int(slice_shape[0]), int(slice_shape[1]))
    masks: dict[str, dict[int, np.ndarray]] = {}
    sources: list[Path] = []
    for sub in subdirs:
        _annotator_id(sub.name, folder, "annotator folder")
        per_slice: dict[int, np.ndarray] = {}
        seen: dict[int, Path] = {}
        files = sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in MASK_SUFFIXES)
        for path in files:
            z = _slice_from_stem(path)
            if z in seen:
                raise LabelError(
                    f"two masks for slice {z} of annotator {sub.name!r}",
                    path=path,
                    field="slice",
                    expected=_Say("one mask per slice"),
                    found=f"also {seen[z].name}",
                )
            _check_slice(z, n_slices, path, "slice")
            mask = _read_mask(path)
            if shape is None:
                shape = (int(mask.shape[0]), int(mask.shape[1]))
            elif mask.shape != shape:
                raise LabelError("mask shape differs from the slice shape", path=path, field="shape", expected=shape, found=tuple(mask.shape))
            seen[z] = path
            per_slice[z] = mask
            sources.append(path)
        masks[sub.name] = per_slice
    if shape is None:
        raise LabelError("no mask files in any annotator folder", path=folder, expected=_Say(f"files ending in {', '.join(MASK_SUFFIXES)}"), found=_Say("none"))
    return AnnotationSet(
        annotators=sorted(masks),
        slice_shape=shape,
        kind="masks",
        masks=masks,
        sources=sources,
        n_slices=n_slices,
    )


def _slice_from_stem(path: Path) -> int:
    groups = re.findall(r"\d+", path.stem)
    if not groups:
        raise LabelError("no slice index in the file name", path=path, field="slice", expected=_Say("a number in the name, e.g. slice_0007.png"), found=path.name)
    return int(groups[-1])


def _check_slice(z: int, n_slices: int | None, path: Path | str, where: str) -> None:
    if z < 0 or (n_slices is not None and z >= n_slices):
        hi = (n_slices - 1) if n_slices is not None else "n-1"
        raise LabelError(f"slice {z} is outside the volume", path=path, field=where, expected=_span(0, hi), found=z)


def _read_mask(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(path))
        else:
            import imageio.v3 as iio

            arr = np.asarray(iio.imread(path))
    except Exception as exc:  # a damaged file must say so, naming the file
        raise LabelError(f"cannot read mask: {type(exc).__name__}: {exc}", path=path) from exc
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise LabelError("colour mask with differing channels", path=path, field="channels", expected=_Say("grey (R = G = B)"), found="colour")
        arr = rgb[..., 0]
    if arr.ndim != 2:
        raise LabelError("mask is not a 2D slice", path=path, field="shape", expected=_Say("2 dimensions"), found=tuple(arr.shape))
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))].flat[0]
            raise LabelError("mask has fractional values", path=path, field="values", expected=_Say("whole-number labels"), found=float(bad))
    elif not np.issubdtype(arr.dtype, np.integer):
        raise LabelError("mask is not numeric", path=path, field="dtype", expected=_Say("integer labels"), found=str(arr.dtype))
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 255:
        raise LabelError("mask labels out of range", path=path, field="values", expected=_span(0, 255), found=_span(int(lo), int(hi)))
    out = arr.astype(np.uint8)
    if hi == 255 and set(np.unique(out).tolist()) <= {0, 255}:
        out = (out > 0).astype(np.uint8)
    return out


# --- polylines ----------------------------------------------------------------------------


def read_polylines(
    path: str | Path,
    *,
    slice_shape: tuple[int, int] | None = None,
    n_slices: int | None = None,
    tolerance_px: float = 2.0,
) -> AnnotationSet:
    """Read a polyline export, CSV or JSON by its suffix (see the module docstring).

    ``slice_shape`` (rows, columns) is required for CSV; for JSON, when given, it must
    agree with the file's. ``n_slices`` bounds the slice indices. Vertices at most
    ``tolerance_px`` outside the slice are clipped to it (with a warning), others refused.
    """
    path = Path(path)
    clipped: list[_Clip] = []
    if not path.is_file():
        raise LabelError("polyline file not found", path=path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if slice_shape is None:
            raise LabelError("a CSV polyline export needs the slice shape", path=path, field="slice_shape", expected=_Say("(rows, columns) from the caller"), found=None)
        shape = (int(slice_shape[0]), int(slice_shape[1]))
        table = _read_csv(path, shape, n_slices, tolerance_px, clipped)  # safeload: encoding, sizes, rows
    elif suffix == ".json":
        shape, table = _read_json(path, slice_shape, n_slices, tolerance_px, clipped)
    else:
        raise LabelError("unknown polyline format", path=path, field="suffix", expected=_Say("'.csv' or '.json'"), found=path.suffix)
    return AnnotationSet(
        annotators=sorted(table),
        slice_shape=shape,
        kind="polylines",
        polylines=table,
        sources=[path],
        n_slices=n_slices,
        warnings=[_clip_warning(path, shape, clipped)] if clipped else [],
    )


@dataclass(frozen=True)
class _Clip:
    """A vertex moved onto the slice: where, and how far outside it was (pixels)."""

    where: str
    x: float
    y: float
    distance: float


def _clip_warning(path: Path, shape: tuple[int, int], clipped: list[_Clip]) -> str:
    worst = max(c.distance for c in clipped)
    first = clipped[0]
    n = len(clipped)
    return (f"{path.name}: {n} vert{'ex' if n == 1 else 'ices'} up to {worst:.3g} px outside the "
            f"{shape[0]}x{shape[1]} slice clipped to its edge (first: {first.where}, x={first.x:g}, y={first.y:g})")


def _pick(columns: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in columns:
            return columns[n]
    return None


def _read_csv(path: Path, shape: tuple[int, int], n_slices: int | None, tol: float,
              clipped: list[_Clip]) -> dict[str, dict[int, list[Trace]]]:
    header, reader = read_csv(path, error=LabelError)
    if True:  # one block, as when the file was a handle
        columns = {h.strip().lower(): h for h in header if h is not None}
        want = {
            "annotator": ("annotator", "user_name"),
            "slice": ("slice", "subject_z", "frame"),
            "trace": ("trace",),
            "x": ("x",),
            "y": ("y",),
        }
        col: dict[str, str] = {}
        for key, names in want.items():
            found = _pick(columns, names)
            if found is None:
                raise LabelError(
                    f"missing column {key!r}",
                    path=path,
                    field="header",
                    expected=_Say(" or ".join(names)),
                    found=",".join(header) or "no header",
                )
            col[key] = found
        closed_col = columns.get("closed")

        # (annotator, slice, trace) -> [first row, closed, first closed row, vertices]
        groups: dict[tuple[str, int, str], list[Any]] = {}
        seen: dict[str, dict[int, None]] = {}
        for line, row in reader:
            where = f"row {line}"

            def cell(key: str) -> str:
                value = row.get(col[key])
                return "" if value is None else str(value).strip()

            annotator = _annotator_id(cell("annotator"), path, f"{where}, {col['annotator']}")
            z = _int_cell(cell("slice"), path, f"{where}, {col['slice']}")
            _check_slice(z, n_slices, path, f"{where}, {col['slice']}")
            seen.setdefault(annotator, {})[z] = None
            trace, xs, ys = cell("trace"), cell("x"), cell("y")
            if not trace and not xs and not ys:
                continue  # looked at the slice, drew nothing
            if not trace:
                raise LabelError("empty trace id", path=path, field=f"{where}, {col['trace']}", expected=_Say("a trace id"), found="")
            x = _float_cell(xs, path, f"{where}, {col['x']}")
            y = _float_cell(ys, path, f"{where}, {col['y']}")
            x, y = _check_point(x, y, shape, tol, path, where, clipped)
            closed = False
            if closed_col is not None:
                closed = _bool_cell(row.get(closed_col), path, f"{where}, {closed_col}")
            key = (annotator, z, trace)
            g = groups.setdefault(key, [line, closed, line, []])
            if g[1] != closed:
                raise LabelError(
                    f"rows of trace {trace!r} disagree on 'closed'",
                    path=path,
                    field=f"{where}, {closed_col}",
                    expected=_Say(f"{g[1]} as on row {g[2]}".lower()),
                    found=str(closed).lower(),
                )
            g[3].append((x, y))

    table: dict[str, dict[int, list[Trace]]] = {a: {z: [] for z in zs} for a, zs in seen.items()}
    for (annotator, z, trace), (line, closed, _, pts) in groups.items():
        _check_count(len(pts), path, f"row {line}, trace {trace!r} (annotator {annotator!r}, slice {z})")
        table[annotator][z].append(Trace(np.array(pts, dtype=np.float64), closed=closed))
    return table


def _annotator_id(text: str, path: Path, where: str) -> str:
    """An annotator id as given, refused when empty or holding control characters (shown escaped)."""
    if not text:
        raise LabelError("empty annotator", path=path, field=where, expected=_Say("an annotator id"), found="")
    if not text.isprintable():
        raise LabelError("the annotator id holds control characters", path=path, field=where,
                         expected=_Say("printable characters"), found=_Say(repr(escape(text))))
    return text


def _int_cell(text: str, path: Path, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise LabelError("not a slice index", path=path, field=where, expected=_Say("an integer"), found=text) from None
    if not math.isfinite(value) or value != int(value):
        raise LabelError("not a slice index", path=path, field=where, expected=_Say("an integer"), found=text)
    return int(value)


def _float_cell(text: str, path: Path, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelError("not a number", path=path, field=where, expected=_Say("a pixel coordinate"), found=text) from None
    if not math.isfinite(value):
        raise LabelError("not a finite number", path=path, field=where, expected=_Say("a pixel coordinate"), found=text)
    return value


def _bool_cell(value: Any, path: Path, where: str) -> bool:
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LabelError("not a boolean", path=path, field=where, expected=_Say("true or false"), found=str(value))


def _check_point(x: float, y: float, shape: tuple[int, int], tol: float, path: Path, where: str,
                 clipped: list[_Clip]) -> tuple[float, float]:
    """The vertex, clipped to the slice's pixel centres when it lies in the margin; refused beyond."""
    out = []
    for name, v, size in (("x", x, shape[1]), ("y", y, shape[0])):
        if v < -tol or v > size - 1 + tol:
            raise LabelError(
                f"{name} coordinate outside the slice (by more than {tol:g} px; nearer ones are clipped)",
                path=path,
                field=f"{where}, {name}",
                expected=_span(-float(tol), float(size - 1 + tol)),
                found=v,
            )
        out.append(min(max(v, 0.0), float(size - 1)))
    distance = max(-x - 0.5, x - (shape[1] - 0.5), -y - 0.5, y - (shape[0] - 0.5))
    if distance > 0:  # beyond the edge pixels' footprint: say so
        clipped.append(_Clip(where, x, y, distance + 0.5))
    return out[0], out[1]


def _check_count(n: int, path: Path, where: str) -> None:
    if n < 2:
        raise LabelError("a polyline needs at least 2 points", path=path, field=where, expected=_Say(">= 2 points"), found=_Say(f"{n} point" + ("" if n == 1 else "s")))


def _read_json(
    path: Path, slice_shape: tuple[int, int] | None, n_slices: int | None, tol: float, clipped: list[_Clip]
) -> tuple[tuple[int, int], dict[str, dict[int, list[Trace]]]]:
    doc = read_json(path, error=LabelError)
    if not isinstance(doc, dict):
        raise LabelError("not a polyline document", path=path, expected=_Say("a JSON object"), found=type(doc).__name__)
    if doc.get("format") != JSON_FORMAT:
        raise LabelError("unknown format", path=path, field="format", expected=JSON_FORMAT, found=doc.get("format"))
    raw = doc.get("slice_shape")
    if not (isinstance(raw, list) and len(raw) == 2 and all(_is_int(v) and v > 0 for v in raw)):
        raise LabelError("bad slice shape", path=path, field="slice_shape", expected=_Say("[rows, columns], positive integers"), found=_Say(json.dumps(raw)))
    shape = (int(raw[0]), int(raw[1]))
    if slice_shape is not None and tuple(int(v) for v in slice_shape) != shape:
        raise LabelError("slice shape differs from the volume's", path=path, field="slice_shape", expected=tuple(int(v) for v in slice_shape), found=shape)
    records = doc.get("annotations")
    if not isinstance(records, list):
        raise LabelError("no annotation list", path=path, field="annotations", expected=_Say("a list of records"), found=type(records).__name__)
    table: dict[str, dict[int, list[Trace]]] = {}
    for i, rec in enumerate(records):
        where = f"annotations[{i}]"
        if not isinstance(rec, dict):
            raise LabelError("not a record", path=path, field=where, expected=_Say("an object"), found=type(rec).__name__)
        annotator = rec.get("annotator")
        if not isinstance(annotator, str) or not annotator.strip():
            raise LabelError("missing annotator", path=path, field=f"{where}.annotator", expected=_Say("a non-empty string"), found=_Say(json.dumps(annotator)))
        annotator = _annotator_id(annotator.strip(), path, f"{where}.annotator")
        z = rec.get("slice")
        if not _is_int(z):
            raise LabelError("not a slice index", path=path, field=f"{where}.slice", expected=_Say("an integer"), found=_Say(json.dumps(z)))
        _check_slice(int(z), n_slices, path, f"{where}.slice")
        traces = rec.get("traces", [])
        if not isinstance(traces, list):
            raise LabelError("traces is not a list", path=path, field=f"{where}.traces", expected=_Say("a list"), found=type(traces).__name__)
        out = table.setdefault(annotator.strip(), {}).setdefault(int(z), [])
        for j, tr in enumerate(traces):
            out.append(_json_trace(tr, shape, tol, path, f"{where}.traces[{j}]", clipped))
    return shape, table


def _json_trace(tr: Any, shape: tuple[int, int], tol: float, path: Path, where: str, clipped: list[_Clip]) -> Trace:
    if not isinstance(tr, dict):
        raise LabelError("not a trace", path=path, field=where, expected=_Say("an object with points"), found=type(tr).__name__)
    pts = tr.get("points")
    if not isinstance(pts, list):
        raise LabelError("no point list", path=path, field=f"{where}.points", expected=_Say("a list of [x, y]"), found=_Say(json.dumps(pts)))
    closed = tr.get("closed", False)
    if not isinstance(closed, bool):
        raise LabelError("not a boolean", path=path, field=f"{where}.closed", expected=_Say("true or false"), found=_Say(json.dumps(closed)))
    xy = []
    for k, p in enumerate(pts):
        at = f"{where}.points[{k}]"
        if not (isinstance(p, list) and len(p) == 2):
            raise LabelError("not a point", path=path, field=at, expected=_Say("[x, y]"), found=_Say(json.dumps(p)))
        for name, v in zip(("x", "y"), p):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise LabelError("not a number", path=path, field=f"{at}, {name}", expected=_Say("a pixel coordinate"), found=_Say(json.dumps(v)))
        xy.append(_check_point(float(p[0]), float(p[1]), shape, tol, path, at, clipped))
    _check_count(len(xy), path, where)
    return Trace(np.array(xy, dtype=np.float64), closed=closed)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
