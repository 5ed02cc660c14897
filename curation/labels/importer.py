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
last group of digits in the stem): when the image was ingested from numbered per-slice
files (``images.010.png`` ...), a mask's number is matched to the source file with the
same number (``mitos_3D.010.png`` goes to the z of ``images.010.png``, z 0); otherwise
the numbers are slice indices, 0-based or 1-based when only one reading fits, and
refused with both readings when both do (``--numbering z|z1`` settles it). For a stack
or an array without ``slices``, the source must have as many slices as the image.

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
from typing import Any

import numpy as np

from ..errors import ImmutableError, LabelError
from ..provenance import Extent, FileRef, ImportDetails
from ..provenance.runs import SliceMapEntry
from ..records import Result, notneeded
from ..repository.archive import now_iso, open_archive
from ..repository.transaction import file_stamps
from ..safeload import read_json
from . import layers as L
from .store import (
    IN_MEMORY_BYTES,
    LabelWrite,
    LayeredSource,
    PlaneSource,
    WriteOptions,
    label_transaction,
    parse_names,
    smallest_dtype,
    store_label_version,
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


def _open_level(group: Any, ds: str, path: Path) -> Any:
    """The level-0 array of a label image; an array zarr refuses to open (a pickle or other
    object codec, an unknown data type) is reported as such, naming the array."""
    meta = None
    for name in (".zarray", "zarr.json"):
        f = path / ds / name
        if f.is_file():
            meta = read_json(f, error=LabelError, max_bytes=1024 * 1024)
            break
    if isinstance(meta, dict):
        codecs = [meta.get("compressor"), *(meta.get("filters") or []), *(meta.get("codecs") or [])]
        ids = [str(c.get("id") or c.get("name")) for c in codecs if isinstance(c, dict)]
        unsafe = [i for i in ids if i in _OBJECT_CODECS]
        if unsafe or meta.get("dtype") in ("|O", "object"):
            raise LabelError(f"the label array uses the {unsafe[0] if unsafe else 'object'} codec, which stores "
                             "Python objects; zarr refuses to read it and a label layer never needs it",
                             path=path / ds, field="codec", expected="integer labels with a numeric codec",
                             found=", ".join(ids) or str(meta.get("dtype")))
    try:
        return group[ds]
    except KeyError:
        raise LabelError("the first multiscale level is missing", path=path, field="multiscales[0].datasets[0]",
                         expected="a level-0 array", found=ds) from None
    except Exception as exc:  # noqa: BLE001 - zarr's many errors on a bad array: name the array
        raise LabelError(f"zarr cannot open the label array: {' '.join(str(exc).split())[:200]}", path=path / ds,
                         expected="a readable integer zarr array") from None


#: codecs that store arbitrary Python objects (refused: they can run code when read)
_OBJECT_CODECS = {"pickle", "json2", "msgpack2", "vlen-utf8", "vlen-bytes", "vlen-array", "categorize"}


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
    except (KeyError, IndexError, TypeError) as exc:
        raise LabelError("the first multiscale level is missing", path=path, field="multiscales[0].datasets[0]",
                         expected="a level-0 array", found=type(exc).__name__) from exc
    arr = _open_level(group, str(ds), path)
    shape = tuple(arr.shape)
    if len(shape) < 2 or any(n != 1 for n in shape[:-3]):
        raise LabelError("the label array is not a (z, y, x) volume", path=path, field=f"{ds}.shape",
                         expected="(z, y, x), extra leading axes of length 1", found=shape)
    unl = None
    for prop in (ome.get("image-label") or {}).get("properties", []) or []:
        if isinstance(prop, dict) and str(prop.get("name", "")).lower() == "unlabeled":
            value = prop.get("label-value")
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
                raise LabelError("the unlabeled value is not a label value", path=path,
                                 field="image-label.properties.label-value", expected="an integer >= 0",
                                 found=str(value)[:40])
            unl = value
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

NUMBERINGS = ("source", "z", "z1")


def ranges(values: Sequence[int]) -> str:
    """[10, 11, 12, 15] -> "10-12, 15"."""
    vals = sorted(set(int(v) for v in values))
    out: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ", ".join(out)


def source_numbers(source_names: Sequence[str] | None) -> list[int] | None:
    """The number in each of the image's per-slice source file names (z order), when every
    name has one and no two share it."""
    if not source_names:
        return None
    nums = [_stem_index(Path(n)) for n in source_names]
    if any(n is None for n in nums) or len(set(nums)) != len(nums):
        return None
    return [int(n) for n in nums]  # type: ignore[arg-type]


def resolve_slices(inp: LabelInput, given: Sequence[int] | None, from_names: list[int] | None,
                   n_slices: int, *, image_sources: Sequence[str] | None = None,
                   numbering: str | None = None) -> tuple[list[int], str]:
    """The image slice of each source slice, in source order, and how it was decided:
    "given" (``--slices``), "source" (a mask's file number matched to the number of the
    image's source file at that z, as ingest recorded them), "z" / "z1" (file numbers are
    0-based slice indices / 1-based slice numbers), or "stack" (one source slice per image
    slice). Two possible readings and nothing recorded to settle them: refused, with both.
    """
    hi = n_slices - 1
    if numbering is not None and numbering not in NUMBERINGS:
        raise LabelError("unknown numbering", field="--numbering", expected=" | ".join(NUMBERINGS), found=numbering)
    if given is not None:
        zs = [int(z) for z in given]
        if len(zs) != inp.n:
            raise LabelError(f"{len(zs)} slice index(es) given for a source of {inp.n} slice(s)",
                             path=inp.path, field="--slices", expected=inp.n, found=len(zs))
        _check_range(inp, zs, hi, "--slices")
        return zs, "given"
    if from_names is None:
        if inp.n != n_slices:
            raise LabelError(f"the source has {inp.n} slice(s) but the image has {n_slices}", path=inp.path,
                             field="slices", expected=n_slices, found=inp.n,
                             hint="pass --slices with the image slice of each source slice")
        return list(range(n_slices)), "stack"
    files = f"{inp.files[0].name}" + (f" ... {inp.files[-1].name}" if inp.n > 1 else "")
    zs, numbering = numbers_to_slices(from_names, n_slices, image_sources=image_sources, numbering=numbering,
                                      path=inp.path, files=files)
    _check_range(inp, zs, hi, f"slice index from the file name ({numbering})")
    return zs, numbering


def numbers_to_slices(numbers: Sequence[int], n_slices: int, *, image_sources: Sequence[str] | None,
                      numbering: str | None, path: Path, files: str) -> tuple[list[int], str]:
    """The z of each number found in file names (see :func:`resolve_slices`)."""
    hi = n_slices - 1
    nums = source_numbers(image_sources)
    if numbering is None:
        if nums is not None:
            numbering = "source"
        else:
            zero = all(0 <= n <= hi for n in numbers)
            one = all(1 <= n <= n_slices for n in numbers)
            if zero and one:
                raise LabelError(
                    "the numbers in the mask file names can be read two ways, and the image was not read "
                    "one file per slice, so nothing recorded settles it", path=path, field="slice numbers",
                    expected=f"--numbering z (0-based: z {ranges(numbers)}) or --numbering z1 "
                             f"(1-based, as ImageJ counts: z {ranges([n - 1 for n in numbers])})",
                    found=f"file numbers {ranges(numbers)} ({files})",
                    hint="or give the image slice of each file with --slices")
            numbering = "z" if zero else "z1" if one else "z"
    if numbering == "source":
        if nums is None:
            raise LabelError("the image was not read one numbered file per slice, so mask file numbers cannot "
                             "be matched to its source files", path=path, field="--numbering",
                             expected="--numbering z or z1, or --slices", found="source")
        index = {num: z for z, num in enumerate(nums)}
        missing = [n for n in numbers if n not in index]
        if missing:
            names = list(image_sources or [])
            as_z = [n for n in numbers if 0 <= n <= hi]
            raise LabelError(
                "mask file numbers match no source file of the image", path=path, field="slice numbers",
                expected=f"the numbers of the image's source files, {ranges(nums)} ({names[0]} ... {names[-1]} "
                         f"are z 0-{hi})",
                found=f"file numbers {ranges(numbers)} ({files}); {ranges(missing)} match none",
                hint=("if the numbers are z indices pass --numbering z" if len(as_z) == len(numbers) else
                      "rename the masks after the image's source files")
                     + f", or map each file to a z with --slices (e.g. --slices {ranges(as_z or [0]).replace(', ', ' ')})")
        return [index[n] for n in numbers], numbering
    if numbering == "z1":
        return [n - 1 for n in numbers], numbering
    return list(numbers), "z"


def _check_range(inp: LabelInput, zs: Sequence[int], hi: int, field_: str) -> None:
    seen: set[int] = set()
    for k, z in enumerate(zs):
        if z < 0 or z > hi:
            path = inp.files[k] if inp.kind == "masks" else inp.path
            raise LabelError("slice index out of range", path=path, field=field_, expected=f"0..{hi}", found=z,
                             hint=None if field_ == "--slices" else "pass --slices to map the files to image slices")
        if z in seen:
            raise LabelError("a slice is given twice", path=inp.path, field=field_, expected="unique indices", found=z)
        seen.add(z)


#: larger slice indices are refused outright (a 4 TB volume at 8 nm has about 10^5 slices)
MAX_SLICE = 10**7


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
            if b >= MAX_SLICE:  # no volume has that many slices; a range that long would exhaust memory
                raise LabelError("a slice index beyond any volume", field="--slices",
                                 expected=f"indices below {MAX_SLICE}", found=part)
            if b < a:
                raise LabelError("an empty slice range", field="--slices", expected="LOW-HIGH", found=part)
            out.extend(range(a, b + 1))
    return out


def _source_records(inp: LabelInput) -> list:
    """Files to hash (the writer does), or for an OME-Zarr folder one reference whose
    sha256 is the tree checksum of its files (as ``provenance/checksums.tsv`` computes)."""
    if inp.kind != "zarr":
        return inp.paths
    from ..omezarr import checksum as cks

    entries = cks.scan(inp.path)
    return [FileRef(path=str(inp.path.resolve()), name=inp.path.name, size=sum(e.size for e in entries),
                    sha256=cks.tree_checksum(entries), n_files=len(entries), checksum="tree")]


# --- the import --------------------------------------------------------------------------------


def import_labels(
    archive_path: Path | str,
    name: str,
    layer: str,
    source: Path | str,
    *,
    slices: Sequence[int | str] | None = None,
    numbering: str | None = None,
    kind: str = "ground-truth",
    note: str = "",
    creator: str | None = None,
    names: Mapping[int, str] | Iterable[str] | None = None,
    parents: Sequence[str] | None = None,
    replace: bool = False,
    options: WriteOptions | None = None,
) -> list[Result]:
    """Import ``source`` as the next version of ``layer`` of acquisition ``name``.

    The new version builds on the layer's latest version (or the first ``parents``): it
    keeps that version's annotations and adds the slices given (a slice given again
    replaces the old one, and the record says so). ``replace`` starts from nothing.
    ``layer`` may name the version (``mito@v3``): it must be the next one; an existing
    version is refused (ImmutableError). ``names`` label the values (``{1:
    "mitochondrion"}`` or ``["1=mitochondrion"]``). ``numbering``: how numbers in mask
    file names map to slices (see :func:`resolve_slices`). An import that changes
    nothing is ``notneeded`` and stores no version.
    """
    t0 = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    layer, version = L.parse_address(layer, "--layer")
    L.check_kind(kind)
    label_names = parse_names(names)
    if version is not None and any(v.version == version for v in view.layer(layer)):
        raise ImmutableError(f"{L.address_of(layer, version)} exists and versions are immutable",
                             field="--layer", expected=f"a new version, {L.address_of(layer, L.next_version(view, layer))}",
                             found=L.address_of(layer, version), hint="leave the version out: an import creates the next one")
    nz, ny, nx = view.geometry.shape

    inp, from_names = open_input(source)
    zs, how = resolve_slices(inp, parse_slices(slices), from_names, nz, image_sources=view.source_names(),
                             numbering=numbering)

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
    job = {"layer": layer, "source": str(Path(source).resolve()), "stamps": file_stamps(inp.paths),
           "slices": zs, "kind": kind, "note": note, "creator": creator,
           "names": {str(k): v for k, v in label_names.items()}, "parents": list(parents or []) or None,
           "replace": replace, "version": version}
    images = view.source_names()
    with label_transaction(archive, name, "labels-import", job=job, options=options) as (tx, view):
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        parent_list = None if parents is None else [view.label(p, field="--parent").address for p in parents]
        base = None
        if not replace:
            if parent_list:
                base = view.label(parent_list[0])
            elif view.layer(layer):
                base = view.layer(layer)[-1]
        base_z = base.lineage.annotated.z_planes() if base else []
        all_names = {**(base.lineage.names if base else {}), **label_names}
        max_label = max([max(counts), max(all_names, default=0)] + ([max(base.lineage.label_values, default=0)]
                                                                      if base else []))
        dtype = smallest_dtype(max_label, path=inp.path, field="values")
        planes = {z: _convert(a, dtype, inp.unlabeled) for z, a in raw.items()}
        raw.clear()
        index = {z: i for i, z in enumerate(zs)}
        loader = _Loader(inp, index, dtype)
        top = PlaneSource((nz, ny, nx), dtype, annotated, planes=planes, load=loader, paths=inp.paths)
        overridden = sorted(set(annotated) & set(base_z))
        if base is not None and not set(annotated) - set(base_z) and all_names == base.lineage.names \
                and _same_planes(base, top, overridden):
            return [*tx.recovered, notneeded(
                "labels-import", archive.relative(base.path),
                f"nothing to import: every slice of {inp.path.name} is already in {base.address} as it is",
                acquisition=name, layer=layer, address=base.address, slices=overridden)]
        src = LayeredSource(top, base.array(0) if base else None, base.unlabeled_value if base else None, base_z)
        extent = Extent(slices=sorted(set(annotated) | set(base.lineage.annotated.slices if base else [])),
                        regions=list(base.lineage.annotated.regions) if base else [])
        values = sorted(set(counts) | set(base.lineage.label_values if base else [])) if not overridden else None
        details = ImportDetails(
            source=str(Path(source).resolve()), format=inp.kind, numbering=how,
            slice_map=[SliceMapEntry(source=inp.files[i].name if inp.kind == "masks" else i, slice=z,
                                     image_source=images[z] if images else None) for i, z in enumerate(zs)],
            value_counts={str(k): v for k, v in sorted(counts.items())}, source_unlabeled_value=inp.unlabeled,
            base=base.address if base else None, overridden=overridden)
        w = LabelWrite(layer=layer, source=src, annotated=extent, kind=kind, parents=parent_list,
                       sources=_source_records(inp), note=note, creator=creator, names=all_names,
                       label_values=values, version=version, action="labels-import", started=started,
                       details=details, content_key={"base": base.address if base else None})
        res = store_label_version(tx, view, w, options)
    data = dict(res.data)
    data.update(value_counts={str(k): v for k, v in sorted(counts.items())}, base=details.base,
                overridden=overridden, slices_added=sorted(set(annotated) - set(base_z)), numbering=how,
                seconds=round(time.monotonic() - t0, 3))
    msg = res.message
    if base is not None:
        msg += (f"; built on {base.address}: {len(data['slices_added'])} slice(s) added"
                + (f", {len(overridden)} replaced ({ranges(overridden)})" if overridden else ""))
    return [*tx.recovered, res.model_copy(update={"data": data, "message": msg})]


def _same_planes(base, top: PlaneSource, zs: Sequence[int]) -> bool:
    """Whether the base version already holds exactly ``top``'s planes at ``zs``."""
    arr = base.array(0)
    for z in zs:
        old = np.asarray(arr[z])
        new = top.plane(z)
        conv = old.astype(new.dtype)
        conv[old == base.unlabeled_value] = np.iinfo(new.dtype).max
        if not np.array_equal(conv, new):
            return False
    return True


__all__ = ["LabelInput", "check_values", "import_labels", "open_input", "parse_slices", "resolve_slices"]
