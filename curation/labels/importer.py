"""Import ground truth as a new label version: ``curate labels import``.

Sources
-------
* a TIFF stack (``.tif``/``.tiff``, multi-page or one 3D series);
* a folder of per-slice masks (``.tif``/``.tiff``/``.png``; hidden files and other
  suffixes are ignored); RGB(A) masks are accepted when their three colour channels are
  equal (alpha is ignored);
* a single ``.png`` mask (one slice);
* an OME-Zarr label image (a zarr group with ``multiscales``; level 0 is read). A value
  its ``image-label.properties`` names ``unlabeled`` stays unlabeled here.

A source covers the whole volume or some slices. Their z indices are given by
``slices`` (mapping the source's slices in order: files sorted by the last integer in
their name, pages, or the first axis of the array), else read from the file names (the
last group of digits in the stem: ``mask_0012.png`` → slice 12), else, for a stack or an
array, the source must have as many slices as the image.

Checks, all before the archive is touched: every slice is 2D of the image's (y, x)
shape; values are integers (bool accepted; floats only when every value is whole), not
negative and at most 2**32 - 2; slice indices are unique and inside the image. The
label dtype is the smallest unsigned type holding the largest label + 1; its maximum
marks unlabeled voxels (the slices not imported).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImmutableError, LabelError
from ..records import Result
from ..repository.archive import now_iso, open_archive
from . import layers as L
from .store import (
    IN_MEMORY_BYTES,
    PlaneSource,
    WriteOptions,
    image_geometry,
    parse_names,
    smallest_dtype,
    write_label_version,
)

MASK_SUFFIXES = (".tif", ".tiff", ".png")
TIFF_SUFFIXES = (".tif", ".tiff")
MAX_LABEL = int(np.iinfo(np.uint32).max) - 1


@dataclass
class LabelInput:
    """A label source: its slices in source order, read one at a time (picklable)."""

    path: Path
    kind: str  # "masks", "png", "tiff", "zarr"
    files: list[Path]  # one per slice (masks), else [path]
    n: int  # slices in the source
    unlabeled: int | None = None  # source value meaning "not annotated"
    array_path: str | None = None  # zarr: level-0 array inside the group
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def paths(self) -> list[Path]:
        return list(self.files)

    def where(self, i: int) -> tuple[Path, str]:
        """(file, field) naming source slice ``i`` in error messages."""
        if self.kind in ("masks", "png"):
            return self.files[i], "slice"
        return self.path, f"slice {i} of {self.n}"

    def read(self, i: int, where: str | None = None) -> np.ndarray:
        path, default = self.where(i)
        where = where or default
        try:
            if self.kind in ("masks", "png"):
                raw = _read_image(self.files[i])
            elif self.kind == "tiff":
                raw = self._read_tiff(i)
            else:
                raw = self._read_zarr(i)
        except LabelError:
            raise
        except Exception as exc:  # a damaged file names itself
            raise LabelError(f"cannot read: {type(exc).__name__}: {exc}", path=path, field=where) from exc
        return _to_2d(raw, path, where)

    def _read_tiff(self, i: int) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(self.path) as tf:
            s = tf.series[0]
            if len(s.pages) == self.n and self.n > 1:
                return np.asarray(tf.asarray(series=0, key=i))
            whole = self._cache.get("tiff")
            if whole is None:
                whole = np.asarray(s.asarray())
                self._cache["tiff"] = whole
        return whole.reshape((self.n,) + _plane_shape(whole.shape, s.axes))[i]

    def _read_zarr(self, i: int) -> np.ndarray:
        import zarr

        arr = zarr.open_array(str(self.path / self.array_path), mode="r") if self.array_path else None
        assert arr is not None
        if arr.ndim == 2:
            return np.asarray(arr[...])
        lead = (0,) * (arr.ndim - 3)
        return np.asarray(arr[lead + (i,)])


# --- opening ---------------------------------------------------------------------------------


def _stem_index(path: Path) -> int | None:
    groups = re.findall(r"\d+", path.stem)
    return int(groups[-1]) if groups else None


def _plane_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    return tuple(shape[-3:]) if axes.endswith("S") else tuple(shape[-2:])


def open_input(path: Path | str) -> tuple[LabelInput, list[int] | None]:
    """The source at ``path`` and the slice indices its file names give (or None)."""
    path = Path(path)
    if not path.exists():
        raise LabelError("label source not found", path=path, expected="a TIFF stack, a folder of masks or an OME-Zarr")
    if path.is_dir():
        if any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zattrs")):
            return _open_zarr(path), None
        return _open_folder(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _open_tiff(path), None
    if suffix == ".png":
        z = _stem_index(path)
        return LabelInput(path, "png", [path], 1), ([z] if z is not None else None)
    raise LabelError("unsupported label source", path=path, field="suffix",
                     expected="a .tif/.tiff stack, a .png mask, a folder of masks or an OME-Zarr",
                     found=path.suffix or "no suffix")


def _open_folder(path: Path) -> tuple[LabelInput, list[int] | None]:
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in MASK_SUFFIXES]
    if not files:
        raise LabelError("no mask files in the folder", path=path,
                         expected=f"files ending in {', '.join(MASK_SUFFIXES)}", found="none")
    indices = [_stem_index(p) for p in files]
    if all(i is not None for i in indices):
        order = sorted(zip(indices, [p.name for p in files], files))
        seen: dict[int, Path] = {}
        for i, _n, p in order:
            if i in seen:
                raise LabelError(f"two masks for slice {i}", path=p, field="slice", expected="one mask per slice",
                                 found=f"also {seen[i].name}")
            seen[i] = p
        return LabelInput(path, "masks", [p for _i, _n, p in order], len(order)), [i for i, _n, _p in order]  # type: ignore[misc]
    files = sorted(files, key=lambda p: p.name)
    return LabelInput(path, "masks", files, len(files)), None


def _open_tiff(path: Path) -> LabelInput:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            s = tf.series[0]
            shape, axes = tuple(s.shape), s.axes
    except Exception as exc:
        raise LabelError(f"cannot read the TIFF: {type(exc).__name__}: {exc}", path=path) from exc
    plane = _plane_shape(shape, axes)
    lead = shape[: len(shape) - len(plane)]
    if sum(1 for n in lead if n > 1) > 1:
        raise LabelError("the TIFF holds more than one stack (channels or times)", path=path, field="axes",
                         expected="one stack of 2D slices (z, y, x)", found=f"{axes} {shape}")
    return LabelInput(path, "tiff", [path], int(np.prod(lead)) if lead else 1)


def _open_zarr(path: Path) -> LabelInput:
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise LabelError(f"not a readable zarr group: {type(exc).__name__}: {exc}", path=path,
                         expected="an OME-Zarr label image") from exc
    ome = attrs.get("ome", attrs)
    ms = ome.get("multiscales")
    if not ms:
        hint = "point at the label image, e.g. IMAGE.ome.zarr/labels/NAME" if "labels" in group else None
        raise LabelError("not an OME-Zarr image: no multiscales", path=path, field="multiscales",
                         expected="a zarr group with ome.multiscales", found="none", hint=hint)
    try:
        ds = ms[0]["datasets"][0]["path"]
        arr = group[ds]
    except (KeyError, IndexError, TypeError) as exc:
        raise LabelError("the first multiscale level is missing", path=path, field="multiscales[0].datasets[0]",
                         expected="a level-0 array", found=type(exc).__name__) from exc
    shape = tuple(arr.shape)
    if len(shape) < 2 or any(n != 1 for n in shape[:-3]):
        raise LabelError("the label array is not a (z, y, x) volume", path=path, field=f"{ds}.shape",
                         expected="(z, y, x), extra leading axes of length 1", found=shape)
    unl = None
    for prop in (ome.get("image-label") or {}).get("properties", []) or []:
        if isinstance(prop, dict) and str(prop.get("name", "")).lower() == "unlabeled":
            unl = int(prop["label-value"])
    return LabelInput(path, "zarr", [path], shape[-3] if len(shape) >= 3 else 1, unlabeled=unl, array_path=ds)


# --- checking one slice ----------------------------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        return np.asarray(tifffile.imread(path))
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def _to_2d(arr: np.ndarray, path: Path, where: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise LabelError("colour mask with differing channels", path=path, field=where,
                             expected="grey labels (R = G = B)", found="colour")
        arr = rgb[..., 0]
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise LabelError("the mask is not a 2D slice", path=path, field=where, expected="2 dimensions (y, x)",
                         found=tuple(arr.shape))
    return arr


def check_values(arr: np.ndarray, path: Path, where: str) -> np.ndarray:
    """Integer labels from ``arr`` (bool → 0/1, whole floats → int64); refuses the rest."""
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        whole = finite & (arr == np.round(np.where(finite, arr, 0)))
        if not whole.all():
            bad = arr[~whole].flat[0]
            raise LabelError("label values must be whole numbers", path=path, field=where,
                             expected="integer labels", found=float(bad))
        if arr.size and (arr.min() < 0 or arr.max() > MAX_LABEL):
            raise LabelError("label values out of range", path=path, field=where, expected=f"0..{MAX_LABEL}",
                             found=f"{arr.min():g}..{arr.max():g}")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise LabelError("the mask is not numeric", path=path, field=where, expected="integer labels",
                         found=str(arr.dtype))
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > MAX_LABEL:
            raise LabelError("label values out of range", path=path, field=where, expected=f"0..{MAX_LABEL}",
                             found=f"{lo}..{hi}")
    return arr


def _counts(arr: np.ndarray, skip: int | None) -> dict[int, int]:
    if arr.dtype == np.uint8:
        n = np.bincount(arr.ravel(), minlength=1)
        vals = np.nonzero(n)[0]
        out = {int(v): int(n[v]) for v in vals}
    else:
        vals, n = np.unique(arr, return_counts=True)
        out = {int(v): int(c) for v, c in zip(vals.tolist(), n.tolist())}
    if skip is not None:
        out.pop(skip, None)
    return out


def _convert(arr: np.ndarray, dtype: np.dtype, src_unlabeled: int | None) -> np.ndarray:
    out = arr.astype(dtype)
    if src_unlabeled is not None:
        out[arr == src_unlabeled] = np.iinfo(dtype).max
    return np.ascontiguousarray(out)


class _Loader:
    """Reads, checks and converts source slice ``z`` on demand (picklable)."""

    def __init__(self, inp: LabelInput, index: dict[int, int], dtype: np.dtype) -> None:
        self.inp, self.index, self.dtype = inp, index, np.dtype(dtype)

    def __call__(self, z: int) -> np.ndarray:
        i = self.index[z]
        path, where = self.inp.where(i)
        return _convert(check_values(self.inp.read(i), path, where), self.dtype, self.inp.unlabeled)


# --- slices ------------------------------------------------------------------------------------


def resolve_slices(inp: LabelInput, given: Sequence[int] | None, from_names: list[int] | None,
                   n_slices: int) -> list[int]:
    """The image slice of each source slice, in source order."""
    hi = n_slices - 1
    if given is not None:
        zs = [int(z) for z in given]
        if len(zs) != inp.n:
            raise LabelError(f"{len(zs)} slice index(es) given for a source of {inp.n} slice(s)",
                             path=inp.path, field="--slices", expected=inp.n, found=len(zs))
        field_ = "--slices"
    elif from_names is not None:
        zs = list(from_names)
        field_ = "slice index from the file name"
    else:
        if inp.n != n_slices:
            raise LabelError(f"the source has {inp.n} slice(s) but the image has {n_slices}", path=inp.path,
                             field="slices", expected=n_slices, found=inp.n,
                             hint="pass --slices with the image slice of each source slice")
        return list(range(n_slices))
    seen: set[int] = set()
    for k, z in enumerate(zs):
        if z < 0 or z > hi:
            path = inp.files[k] if inp.kind == "masks" else inp.path
            raise LabelError("slice index out of range", path=path, field=field_, expected=f"0..{hi}", found=z,
                             hint=None if given is not None else "pass --slices to map the files to image slices")
        if z in seen:
            raise LabelError("a slice is given twice", path=inp.path, field=field_, expected="unique indices", found=z)
        seen.add(z)
    return zs


def parse_slices(tokens: Iterable[str | int] | None) -> list[int] | None:
    """``["3", "7", "10-12", "20,21"]`` → [3, 7, 10, 11, 12, 20, 21]; None stays None."""
    if tokens is None:
        return None
    out: list[int] = []
    for tok in tokens:
        for part in str(tok).replace(",", " ").split():
            m = re.fullmatch(r"(\d+)(?:(?:-|\.\.)(\d+))?", part)
            if not m:
                raise LabelError("not a slice index", field="--slices", expected="integers or ranges like 0-19",
                                 found=part)
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if b < a:
                raise LabelError("an empty slice range", field="--slices", expected="LOW-HIGH", found=part)
            out.extend(range(a, b + 1))
    return out


def _source_records(inp: LabelInput) -> list:
    """Files to hash (the writer does), or for an OME-Zarr folder one record whose
    sha256 is the tree checksum of its files (as ``provenance/checksums.tsv`` computes)."""
    if inp.kind != "zarr":
        return inp.paths
    from ..omezarr import checksum as cks

    entries = cks.scan(inp.path)
    return [{"path": str(inp.path.resolve()), "name": inp.path.name, "size": sum(e.size for e in entries),
             "sha256": cks.tree_checksum(entries), "n_files": len(entries), "checksum": "tree"}]


# --- the import --------------------------------------------------------------------------------


def import_labels(
    archive_path: Path | str,
    name: str,
    layer: str,
    source: Path | str,
    *,
    slices: Sequence[int | str] | None = None,
    kind: str = "ground-truth",
    note: str = "",
    creator: str | None = None,
    names: Mapping[int, str] | Iterable[str] | None = None,
    parents: Sequence[str] | None = None,
    options: WriteOptions | None = None,
) -> list[Result]:
    """Import ``source`` as the next version of ``layer`` of acquisition ``name``.

    ``layer`` may name the version (``mito@v3``): it must then be the next one; an
    existing version is refused (ImmutableError). ``parents`` default to the layer's
    previous version. ``names`` label the values (``{1: "mitochondrion"}`` or
    ``["1=mitochondrion"]``).
    """
    t0 = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    archive.require_acquisition(name)
    layer, version = L.parse_address(layer, "--layer")
    L.check_kind(kind)
    label_names = parse_names(names)
    if version is not None and any(v.version == version for v in L.versions(archive, name, layer)):
        raise ImmutableError(f"{L.address_of(layer, version)} exists and versions are immutable",
                             field="--layer", expected=f"a new version, {L.address_of(layer, L.next_version(archive, name, layer))}",
                             found=L.address_of(layer, version), hint="leave the version out: an import creates the next one")
    if parents is not None:
        parents = [L.resolve(archive, name, p, field="--parent").address for p in parents]
    geo = image_geometry(archive, name)
    nz, ny, nx = geo["shape"]

    inp, from_names = open_input(source)
    zs = resolve_slices(inp, parse_slices(slices), from_names, nz)

    # check every slice before anything is written
    counts: dict[int, int] = {}
    raw: dict[int, np.ndarray] = {}
    kept = 0
    annotated: list[int] = []
    for i, z in enumerate(zs):
        path, where = inp.where(i)
        where = f"{where} (image slice {z})" if inp.kind not in ("masks", "png") else f"slice {z}"
        arr = check_values(inp.read(i, where), path, where)
        if arr.shape != (ny, nx):
            raise LabelError("the slice's shape differs from the image's", path=path, field=where,
                             expected=(ny, nx), found=tuple(arr.shape))
        c = _counts(arr, inp.unlabeled)
        if not c:
            continue  # entirely unlabeled in the source: not annotated
        annotated.append(z)
        for v, n in c.items():
            counts[v] = counts.get(v, 0) + n
        if kept + arr.nbytes <= IN_MEMORY_BYTES:
            raw[z] = arr
            kept += arr.nbytes
    if not annotated:
        raise LabelError("nothing annotated in the source", path=inp.path, expected="at least one labelled slice",
                         found="only unlabeled voxels")
    max_label = max(counts)
    dtype = smallest_dtype(max(max_label, max(label_names, default=0)), path=inp.path, field="values")
    planes = {z: _convert(a, dtype, inp.unlabeled) for z, a in raw.items()}
    raw.clear()
    index = {z: i for i, z in enumerate(zs)}
    src = PlaneSource((nz, ny, nx), dtype, annotated, planes=planes, load=_Loader(inp, index, dtype),
                      paths=inp.paths)
    order = sorted(annotated)
    res = write_label_version(
        archive, name, layer, src, kind=kind, parents=parents, annotated={"slices": order},
        sources=_source_records(inp), note=note, creator=creator, names=label_names, label_values=sorted(counts),
        version=version, action="labels-import", started=started, options=options,
        extra_provenance={"import": {
            "source": str(Path(source).resolve()), "format": inp.kind,
            "slice_map": [{"source": (inp.files[i].name if inp.kind == "masks" else i), "slice": z}
                          for i, z in enumerate(zs)],
            "value_counts": {str(k): v for k, v in sorted(counts.items())},
            "source_unlabeled_value": inp.unlabeled,
        }},
    )
    data = dict(res.data)
    data.update(value_counts={str(k): v for k, v in sorted(counts.items())}, seconds=round(time.monotonic() - t0, 3))
    return [res.model_copy(update={"data": data})]


__all__ = ["LabelInput", "check_values", "import_labels", "open_input", "parse_slices", "resolve_slices"]
