"""Folders of 2D slices (TIFF, PNG or DM), and lists of slice files, as one (z, y, x) volume.

Slices are ordered by the last integer in each file's stem (``images.010.png`` → 10).
Opening checks the whole set before any pixel is read: no gap or duplicate in the
numbering, one file format, one shape, one dtype, 2D slices only. Every slice's header is
read (tifffile IFDs, PNG IHDR chunks, DM tags), never its pixels, except the first slice
of a colour set, which is decoded to refuse colour images up front.

The stack's header comes from the first slice (xy calibration, vendor fields); the
calibration of the middle and last slices is compared with it. z is never calibrated by
a folder of slices: the metadata supplies it.
"""

from __future__ import annotations

import re
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptSourceError, SourceError, StackError
from .base import HeaderMetadata, Reader, Source, normalize_region, require_file
from .dm import DMLayout, inspect_dm
from .tiff import TiffLayout, _single_channel, inspect_tiff, peek_tiff

FORMATS: dict[str, str] = {
    ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".dm3": "DM", ".dm4": "DM",
}
#: files that operating systems and tools leave behind, ignored in slice folders
JUNK = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", "icon\r"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PARALLEL_FROM = 16  # read slice headers in threads from this many slices on


# --- PNG slices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PngLayout:
    """A PNG slice: decoded whole (PNG has no random access), then cropped."""

    path: str
    shape: tuple[int, int, int]  # (1, y, x)
    dtype: str
    colour: bool  # colour type with RGB / palette samples (checked equal when read)

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        import imageio.v3 as iio

        try:
            data = np.asarray(iio.imread(self.path))
        except Exception as e:  # truncated or damaged stream
            raise CorruptSourceError(
                f"cannot decode the PNG image ({type(e).__name__}: {e})", path=self.path
            ) from e
        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        if data.shape[:2] != self.shape[1:]:
            raise CorruptSourceError(
                "decodes to another size than its header states", path=self.path,
                expected=self.shape[1:], found=data.shape[:2],
            )
        data = data[region[1], region[2]]
        if data.ndim == 3:
            channels = data.shape[2]
            alpha = channels in (2, 4)
            data = _single_channel(data[np.newaxis], channels - int(alpha), alpha, self.path)[0]
        if data.dtype != np.dtype(self.dtype):
            raise SourceError(
                "decodes to another pixel type than its header states", path=self.path,
                expected=np.dtype(self.dtype).name, found=data.dtype.name,
            )
        return np.ascontiguousarray(data[np.newaxis])


def peek_png(path: str | Path) -> PngLayout:
    """A PNG's size and pixel type from its IHDR chunk (no decoding)."""
    p = require_file(path)
    with open(p, "rb") as f:
        head = f.read(33)
    if head[:8] != PNG_SIGNATURE:
        raise CorruptSourceError(
            "is not a PNG file", path=p, field="signature",
            expected="the 8-byte PNG signature", found=repr(head[:8]),
        )
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise CorruptSourceError("is truncated or damaged: no IHDR chunk", path=p)
    width, height, depth, colour_type = struct.unpack(">IIBB", head[16:26])
    if width == 0 or height == 0:
        raise CorruptSourceError("has an empty image size in its header", path=p, found=(height, width))
    if colour_type not in (0, 2, 3, 4, 6):
        raise CorruptSourceError("has an invalid colour type", path=p, found=colour_type)
    if depth == 16 and colour_type != 0:
        raise SourceError(
            "is a 16-bit colour PNG, which cannot be decoded without loss", path=p,
            expected="a greyscale PNG", found=f"16-bit, colour type {colour_type}",
            hint="save it as a 16-bit greyscale PNG or TIFF",
        )
    dtype = "uint16" if depth == 16 else "uint8"
    return PngLayout(str(p), (1, int(height), int(width)), np.dtype(dtype).str, colour_type != 0)


# --- slice plumbing ------------------------------------------------------------------------------

Layout = TiffLayout | PngLayout | DMLayout


def _kind(path: Path) -> str | None:
    """'TIFF', 'PNG' or 'DM' by suffix, else by the first bytes; None for anything else."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is not None or not path.is_file():
        return kind
    from .dm import sniff as sniff_dm
    from .tiff import sniff as sniff_tiff

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head == PNG_SIGNATURE:
        return "PNG"
    if sniff_tiff(path):
        return "TIFF"
    return "DM" if sniff_dm(path) else None


def _peek(path: Path) -> Layout:
    kind = _kind(path)
    if kind == "TIFF":
        return peek_tiff(path)
    if kind == "PNG":
        return peek_png(path)
    return inspect_dm(path)[0]


def _inspect(path: Path) -> tuple[Layout, HeaderMetadata]:
    kind = _kind(path)
    if kind == "TIFF":
        return inspect_tiff(path)
    if kind == "DM":
        return inspect_dm(path)
    layout = peek_png(path)
    notes: tuple[str, ...] = ()
    if layout.colour:
        layout.read((slice(0, 1), slice(0, layout.shape[1]), slice(0, layout.shape[2])))
        notes = (
            "colour PNG slices: their channels are equal in the first slice and are read as "
            "grey; every slice is checked when read",
        )
    header = HeaderMetadata(
        shape=layout.shape, dtype=np.dtype(layout.dtype).name, notes=notes,
        raw={"png": {"width": layout.shape[2], "height": layout.shape[1]}},
    )
    return layout, header


def _read_slice(layout: Layout, ys: slice, xs: slice) -> np.ndarray:
    region = (slice(0, 1), ys, xs)
    if isinstance(layout, PngLayout):
        return layout.read(region)[0]
    handle = layout.open()
    try:
        return layout.read(handle, region)[0]
    finally:
        layout.close(handle)


def slice_index(path: Path) -> int | None:
    """The slice number: the last integer in the file's stem (``images.010.png`` → 10)."""
    groups = re.findall(r"\d+", Path(path).stem)
    return int(groups[-1]) if groups else None


def _is_junk(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in JUNK


def list_slices(folder: str | Path) -> tuple[list[Path], list[str]]:
    """The slice files in ``folder`` (naturally sorted) and notes; refuses unknown files."""
    from natsort import natsorted

    root = Path(folder)
    try:
        entries = list(root.iterdir())
    except OSError as e:
        raise SourceError(f"cannot list the folder: {e.strerror or e}", path=root) from e
    slices, unknown, folders = [], [], []
    for entry in entries:
        if _is_junk(entry):
            continue
        if entry.is_dir():
            folders.append(entry.name)
        elif entry.suffix.lower() in FORMATS:
            slices.append(entry)
        else:
            unknown.append(entry.name)
    if unknown:
        shown = ", ".join(natsorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
        raise StackError(
            f"holds {len(unknown)} file(s) that are not slices: {shown}", path=root,
            expected="only TIFF, PNG or DM slice files", found=f"{len(unknown)} other file(s)",
            hint="move other files out of the slice folder",
        )
    if not slices:
        raise StackError(
            "holds no slice files", path=root, expected="TIFF, PNG or DM slices",
            found=f"subfolders {natsorted(folders)}" if folders else "an empty folder",
        )
    notes = [f"subfolder(s) ignored: {', '.join(natsorted(folders))}"] if folders else []
    return natsorted(slices, key=lambda p: p.name), notes


def outside_links(folder: str | Path, *, follow: bool = False) -> dict[str, str]:
    """Slice files of ``folder`` that are symbolic links to a file outside it, as
    ``{link: resolved target}``.

    Such a link makes the ingest read (and with ``--keep-raw`` store) a file nobody put in
    the folder, so it is refused unless ``follow``; the caller then records each target in
    the provenance. Links that stay inside the folder are ordinary."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    real_root = root.resolve()
    out: dict[str, str] = {}
    for entry in sorted(root.iterdir()):
        if not entry.is_symlink() or _is_junk(entry):
            continue
        target = entry.resolve()
        if target.parent == real_root or real_root in target.parents:
            continue
        if not follow:
            raise StackError(
                f"slice {entry.name!r} is a symbolic link to a file outside the folder", path=root,
                expected="slice files inside the folder", found=f"{entry.name} -> {target}",
                hint="copy the file in, or give --follow-symlinks to read it and record where it lies",
            )
        out[str(entry)] = str(target)
    return out


def _check_tiff_slice(path: Path, where: Path) -> None:
    """Refuse a TIFF slice that is not one 2D image: several pages, or planes stored as the
    colour samples of one page (how tifffile saves a (3, y, x) array), saying which."""
    require_file(path)  # a named pipe would block the read below
    if _kind(path) != "TIFF":
        return
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            spp, planar = int(page.samplesperpixel), int(page.planarconfig)
    except Exception:  # noqa: BLE001 - the reader reports damaged files in its own words
        return
    if pages > 1:
        raise StackError(
            f"slice {path.name!r} is a multi-page TIFF of {pages} pages (a 3D stack)", path=where,
            expected="one 2D image per slice file", found=f"{pages} pages",
            hint="ingest a multi-page file on its own, not inside a folder of slices",
        )
    if spp > 1 and planar == 2:
        raise StackError(
            f"slice {path.name!r} holds {spp} planes stored as the colour samples of one page "
            f"(planar {'RGBA' if spp == 4 else 'RGB' if spp == 3 else 'multi-sample'})", path=where,
            expected="one 2D greyscale image per slice file", found=f"{spp} samples per pixel, planar",
            hint="save each plane as its own slice file, or ingest the file on its own",
        )


def order_slices(paths: list[Path], where: Path | None = None) -> list[Path]:
    """Slice files in slice order, after checking numbering and formats."""
    where = where or (paths[0].parent if paths else None)
    numbered: dict[int, Path] = {}
    unnumbered = [p for p in paths if slice_index(p) is None]
    if unnumbered:
        raise StackError(
            f"slice file {unnumbered[0].name!r} has no slice number in its name", path=where,
            expected="a number in every slice file name (e.g. slice_0001.tif)",
            found=f"{len(unnumbered)} file(s) without one",
        )
    for p in paths:
        i = slice_index(p)
        assert i is not None
        if i in numbered:
            raise StackError(
                f"slice {i} is duplicated: {numbered[i].name!r} and {p.name!r}", path=where,
                expected="one file per slice number", found="two files",
            )
        numbered[i] = p
    kinds: dict[str, list[Path]] = {}
    for p in paths:
        kinds.setdefault(_kind(p) or p.suffix, []).append(p)
    if len(kinds) > 1:
        listing = ", ".join(f"{len(v)} {k} (e.g. {v[0].name!r})" for k, v in sorted(kinds.items()))
        raise StackError(
            f"mixes file formats: {listing}", path=where, expected="one format", found=len(kinds),
        )
    order = sorted(numbered)
    gaps = [(a, b) for a, b in zip(order, order[1:]) if b != a + 1]
    if gaps:
        a, b = gaps[0]
        missing = f"slice {a + 1}" if b == a + 2 else f"slices {a + 1}..{b - 1}"
        more = f"; {len(gaps) - 1} more gap(s)" if len(gaps) > 1 else ""
        raise StackError(
            f"{missing} missing between {numbered[a].name!r} and {numbered[b].name!r}{more}",
            path=where, expected="consecutive slice numbers",
            found=f"{len(order)} slices numbered {order[0]}..{order[-1]}",
        )
    return [numbered[i] for i in order]


# --- the source -------------------------------------------------------------------------------


class StackSource(Source):
    """A list of 2D slice files as a (z, y, x) volume."""

    reader = "stack"

    def __init__(self, layouts: list[Layout], header: HeaderMetadata) -> None:
        self._layouts = list(layouts)
        self._header = header

    @property
    def paths(self) -> list[Path]:
        return [Path(layout.path) for layout in self._layouts]

    @property
    def header(self) -> HeaderMetadata:
        return self._header

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = normalize_region(region, self.shape)
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop)):
            out[i] = _read_slice(self._layouts[z], ys, xs)
        return out

    def __repr__(self) -> str:
        return f"StackSource({len(self._layouts)} slices from {self.paths[0].parent}, dtype={self.dtype})"


def open_stack(paths: list[Path], *, folder: Path | None = None, notes: list[str] | None = None) -> StackSource:
    """Open several slice files (in any order) as one stack, after checking them all."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if _kind(p) is None:
            raise StackError(
                f"{p.name!r} is not a slice file", path=folder or p.parent,
                expected="TIFF, PNG or DM slices", found=p.suffix or "no suffix",
            )
    ordered = order_slices(paths, folder) if len(paths) > 1 else paths
    if len(ordered) > 1:
        for p in ordered:
            _check_tiff_slice(p, folder or p.parent)
    first_layout, first = _inspect(ordered[0])
    rest = ordered[1:]
    if len(rest) >= _PARALLEL_FROM:
        with ThreadPoolExecutor(max_workers=8) as pool:
            layouts = [first_layout, *pool.map(_peek, rest)]
    else:
        layouts = [first_layout, *(_peek(p) for p in rest)]
    where = folder or ordered[0].parent
    if len(ordered) > 1:
        for p, layout in zip(ordered, layouts):
            if layout.shape[0] != 1:
                raise StackError(
                    f"slice {p.name!r} is itself a 3D stack of {layout.shape[0]} images", path=where,
                    expected="2D slices", found=f"shape {layout.shape}",
                    hint="ingest a multi-page file on its own, not inside a folder of slices",
                )
    expected_yx, expected_dtype = first_layout.shape[1:], np.dtype(first_layout.dtype)
    for p, layout in zip(ordered, layouts):
        if layout.shape[1:] != expected_yx:
            raise StackError(
                f"slice {p.name!r} differs in size from {ordered[0].name!r}", path=where,
                expected=expected_yx, found=layout.shape[1:],
            )
        if np.dtype(layout.dtype) != expected_dtype:
            raise StackError(
                f"slice {p.name!r} differs in pixel type from {ordered[0].name!r}", path=where,
                expected=expected_dtype.name, found=np.dtype(layout.dtype).name,
            )
    all_notes = list(notes or []) + list(first.notes)
    for i in sorted({len(ordered) // 2, len(ordered) - 1} - {0}):
        other = _inspect(ordered[i])[1]
        if not _same_xy(first.voxel_size_nm[1:], other.voxel_size_nm[1:]):
            all_notes.append(
                f"xy calibration differs between slices: {ordered[0].name!r} has "
                f"{_fmt_yx(first.voxel_size_nm[1:])}, {ordered[i].name!r} has "
                f"{_fmt_yx(other.voxel_size_nm[1:])}; the first slice's is used"
            )
    raw = dict(first.raw)
    raw["_stack"] = {"slices": len(ordered), "first": ordered[0].name, "last": ordered[-1].name}
    header = HeaderMetadata(
        shape=(len(ordered), *expected_yx),  # type: ignore[arg-type]
        dtype=expected_dtype.name,
        voxel_size_nm=(None, first.voxel_size_nm[1], first.voxel_size_nm[2]),
        vendor=first.vendor,
        fields=dict(first.fields),
        raw=raw,
        notes=tuple(all_notes),
    )
    return StackSource(layouts, header)


def _same_xy(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    for u, v in zip(a, b):
        if (u is None) != (v is None):
            return False
        if u is not None and abs(u - v) > 1e-6 * max(abs(u), abs(v)):
            return False
    return True


def _fmt_yx(yx: tuple[Any, ...]) -> str:
    return "(" + ", ".join("uncalibrated" if v is None else f"{v:g} nm" for v in yx) + ")"


def open_folder(folder: str | Path) -> Source:
    """A folder of slices; a folder holding a single file opens as that file."""
    root = Path(folder)
    files, notes = list_slices(root)
    if len(files) == 1:
        from . import get_reader  # the package imports this module: import late

        return get_reader(files[0]).open(files[0])
    return open_stack(files, folder=root, notes=notes)


class StackReader(Reader):
    """A folder of 2D slices (TIFF, PNG or DM)."""

    name = "stack"
    suffixes = ()

    @classmethod
    def is_supported(cls, path: Path) -> bool:
        return Path(path).is_dir()

    @classmethod
    def open(cls, path: Path) -> Source:
        return open_folder(path)


class PngReader(Reader):
    """A single PNG image (z = 1)."""

    name = "png"
    suffixes = (".png",)

    @classmethod
    def is_supported(cls, path: Path) -> bool:
        p = Path(path)
        if p.suffix.lower() == ".png":
            return True
        try:
            with open(p, "rb") as f:
                return f.read(8) == PNG_SIGNATURE
        except OSError:
            return False

    @classmethod
    def open(cls, path: Path) -> StackSource:
        return open_stack([Path(path)])
