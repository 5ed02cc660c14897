"""TIFF files: single images, multi-page stacks, ImageJ hyperstacks, OME-TIFF, FEI and
Zeiss SEM TIFFs.

The first series, level 0 of a pyramid, is read. Its axes reduce to (z, y, x): at most one
axis besides Y and X may be longer than 1 (that becomes z), samples (RGB) are accepted
only when every colour channel is equal, real channel axes are refused.

Region reads never decode the whole volume: uncompressed contiguous data is read with
positioned reads (``os.pread``, :mod:`curation.readers.pread`) of exactly the rows a
region needs, at the offset tifffile reports; anything else (compressed, tiled, scattered
pages) is read through tifffile's zarr store (``tifffile.imread(path, aszarr=True)``),
which decodes only the strips or tiles the region touches (with ordinary reads).

Why not a memory map of the file: its pages count in the process's resident memory, and
on a multi-gigabyte file a Dask worker pauses on them for ever (issue 13); see
:mod:`curation.readers.pread`. Nothing here keeps a long-lived mapping of a source.

A header is checked against the file before anything is read (:func:`_check_claims`): a
page or a series that claims more pixels than the file could hold is refused at once.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptSourceError, SourceError
from .base import HeaderMetadata, LayoutSource, Reader, require_file
from .pread import PositionedFile, read_index
from .vendor import as_float, fei_info, jsonable, length_nm, unit_kind, zeiss_info

SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: page tags left out of ``raw``: offsets, lookup tables, binary blobs, parsed elsewhere
_RAW_SKIP = {
    "StripOffsets", "StripByteCounts", "TileOffsets", "TileByteCounts", "ColorMap",
    "JPEGTables", "IJMetadataByteCounts", "IJMetadata", "FEI_HELIOS", "FEI_SFEG", "CZ_SEM",
    "ImageDescription", "JEOL_Header", "XMP", "ICCProfile", "IPTCNAA", "Photoshop",
}


def sniff(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in MAGIC
    except OSError:
        return False


def _tiff_error(path: Path, e: Exception) -> CorruptSourceError:
    return CorruptSourceError(
        f"cannot be read as TIFF ({type(e).__name__}: {e})", path=path,
    )


@dataclass(frozen=True)
class TiffLayout:
    """How to read (z, y, x) regions of a TIFF file's first series: picklable."""

    path: str
    series_shape: tuple[int, ...]
    roles: str  # one letter per series axis: z, y, x, c (colour samples), '-' (size 1)
    stored_dtype: str
    dtype: str
    shape: tuple[int, int, int]
    data_offset: int | None = None  # set when the whole series is contiguous and uncompressed
    colour: int = 0  # number of colour samples that must be equal (0: none)
    alpha: bool = False  # a trailing alpha sample that must be opaque

    @property
    def memmappable(self) -> bool:
        return self.data_offset is not None

    def open(self) -> Any:
        """A handle for :meth:`read`: a file for positioned reads or a (zarr array, store) pair."""
        if self.data_offset is not None:
            return PositionedFile(self.path)
        try:
            import tifffile
            import zarr

            store = tifffile.imread(self.path, aszarr=True, series=0, level=0)
            return (zarr.open(store, mode="r"), store)
        except (OSError, ValueError, KeyError, IndexError) as e:
            raise CorruptSourceError(
                f"cannot open the image data ({type(e).__name__}: {e})", path=self.path
            ) from e

    @staticmethod
    def close(handle: Any) -> None:
        if isinstance(handle, tuple):
            handle[1].close()
        elif isinstance(handle, PositionedFile):
            handle.close()

    def read(self, handle: Any, region: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = region
        index: list[Any] = []
        kept: list[str] = []
        for role in self.roles:
            if role == "z":
                index.append(zs)
            elif role == "y":
                index.append(ys)
            elif role == "x":
                index.append(xs)
            elif role == "c":
                index.append(slice(None))
            else:
                index.append(0)
                continue
            kept.append(role)
        try:
            if isinstance(handle, PositionedFile):
                data = read_index(handle, int(self.data_offset or 0), np.dtype(self.stored_dtype),
                                  self.series_shape, tuple(index))
            else:
                data = np.asarray(handle[0][tuple(index)])
        except CorruptSourceError:
            raise
        except Exception as e:  # decoder errors, truncated strips, I/O errors
            raise CorruptSourceError(
                f"cannot read region z {zs.start}:{zs.stop}, y {ys.start}:{ys.stop}, "
                f"x {xs.start}:{xs.stop} ({type(e).__name__}: {e})", path=self.path,
            ) from e
        order = [kept.index(r) for r in "zyxc" if r in kept]
        data = data.transpose(order)
        if "z" not in kept:
            data = data[np.newaxis]
        if "c" in kept:
            where = f" in z {zs.start}..{zs.stop - 1}" if self.shape[0] > 1 else ""
            data = _single_channel(data, self.colour, self.alpha, self.path, where)
        return np.ascontiguousarray(data, dtype=np.dtype(self.dtype))


def _single_channel(data: np.ndarray, colour: int, alpha: bool, path: str, where: str = "") -> np.ndarray:
    """(z, y, x, c) → (z, y, x) when every colour channel equals the first and any alpha
    channel is opaque; SourceError otherwise."""
    first = data[..., 0]
    for c in range(1, colour):
        if not np.array_equal(first, data[..., c]):
            raise SourceError(
                "is a colour image: its colour channels differ", path=path,
                expected="equal channels (a grey image stored as RGB)",
                found=f"channel {c} differs from channel 0{where}",
                hint="convert it to greyscale first",
            )
    if alpha:
        opaque = np.iinfo(data.dtype).max if data.dtype.kind in "ui" else 1.0
        if not np.all(data[..., colour] == opaque):
            raise SourceError(
                "has a transparent alpha channel", path=path,
                expected="an opaque image", found="alpha values below the maximum",
                hint="flatten the image onto a background and save it as greyscale",
            )
    return first


def _plan(tif: Any, path: Path) -> tuple[TiffLayout, list[str]]:
    """Reduce series 0 (level 0) to a (z, y, x) layout, or refuse."""
    notes: list[str] = []
    if len(tif.pages) and tif.pages[0] is not None:  # before tifffile reads every page's header
        _check_page(path, tif.pages[0])
    if not tif.series:
        raise CorruptSourceError("holds no image", path=path)
    series = tif.series[0]
    if len(tif.series) > 1:
        notes.append(f"the file holds {len(tif.series)} image series; series 0 is read")
    if len(series.levels) > 1:
        notes.append(f"level 0 of {len(series.levels)} pyramid levels is read")
    page = series.keyframe
    stored = np.dtype(series.dtype)
    if stored.kind == "c":
        raise SourceError(
            "complex data cannot be ingested as an EM image", path=path, field="data type",
            expected="real-valued pixels", found=str(stored),
        )
    if stored.kind not in "uifb":
        raise SourceError(
            "has a pixel type that cannot be ingested", path=path, field="data type",
            expected="integer or float pixels", found=str(stored),
        )
    dtype = stored.newbyteorder("=")
    if stored.kind == "b":
        dtype = np.dtype("u1")
        notes.append("bilevel (1-bit) image read as uint8 0/1")

    axes, shape = series.axes, tuple(int(n) for n in series.shape)
    roles: list[str] = []
    stack_axes: list[tuple[str, int]] = []
    colour, alpha = 0, False
    for letter, size in zip(axes, shape):
        if letter == "Y":
            roles.append("y")
        elif letter == "X":
            roles.append("x")
        elif letter == "S" and size > 1:
            extras = tuple(int(e) for e in (page.extrasamples or ()))
            photometric = int(page.photometric)
            n_alpha = sum(1 for e in extras if e in (1, 2))
            colour = size - n_alpha
            alpha = n_alpha == 1 and extras[-1] in (1, 2)
            if photometric not in (2, 6) and not (photometric in (0, 1) and colour == 1 and alpha):
                raise SourceError(
                    "has several samples per pixel (multi-channel)", path=path,
                    expected="1 sample per pixel", found=f"{size} samples, photometric {page.photometric.name}",
                )
            if n_alpha > 1 or (n_alpha == 1 and not alpha):
                raise SourceError(
                    "has extra samples per pixel", path=path,
                    expected="grey, RGB or RGBA", found=f"{size} samples",
                )
            roles.append("c")
        elif letter == "C" and size > 1:
            raise SourceError(
                "is a multi-channel image", path=path, field="channels",
                expected="a single channel", found=f"{size} channels (axes {axes})",
                hint="save each channel to its own file and ingest the one you need",
            )
        elif size > 1:
            roles.append("z")
            stack_axes.append((letter, size))
        else:
            roles.append("-")
    if len(stack_axes) > 1:
        raise SourceError(
            "has more than one stack axis", path=path, field="axes",
            expected="at most one of Z, T, I (a 3D volume)",
            found=", ".join(f"{a}={n}" for a, n in stack_axes),
        )
    if "y" not in roles or "x" not in roles:
        raise SourceError("has no 2D image plane", path=path, field="axes", expected="Y and X", found=axes)
    if stack_axes and stack_axes[0][0] not in "ZIQ":
        names = {"T": "time", "C": "channel", "R": "tile", "E": "lambda"}
        letter = stack_axes[0][0]
        notes.append(f"TIFF axis {letter!r} ({names.get(letter, 'other')}) of size {stack_axes[0][1]} read as z")
    if colour > 1:
        notes.append(
            f"{'RGBA' if alpha else 'RGB'} image whose colour channels must all be equal: "
            "one channel is read as grey (checked on the first slice, and on every region read)"
        )
    elif alpha:
        notes.append("grey + alpha image: the grey channel is read (alpha checked opaque on every read)")
    if int(page.photometric) == 0:
        notes.append("MINISWHITE image (0 is white): pixel values are read as stored, not inverted")
    if int(page.photometric) == 3:
        notes.append(
            "palette (colour-mapped) image: the stored pixel values are read as grey levels; "
            "the colour map is ignored"
        )

    def size_of(role: str) -> int:
        return shape[roles.index(role)] if role in roles else 1

    zyx = (size_of("z"), size_of("y"), size_of("x"))
    offset = series.dataoffset
    memmappable = (
        offset is not None
        and int(page.compression) == 1
        and int(getattr(page, "fillorder", 1)) == 1
        and int(getattr(page, "predictor", 1)) == 1
        and int(page.bitspersample) == stored.itemsize * 8
        and stored.kind != "b"
    )
    _check_claims(tif, path, page, shape)
    _check_extent(tif, path, series, memmappable, int(offset or 0), stored.itemsize * int(np.prod(shape)))
    layout = TiffLayout(
        path=str(path),
        series_shape=shape,
        roles="".join(roles),
        stored_dtype=stored.newbyteorder(tif.byteorder).str if stored.itemsize > 1 else stored.str,
        dtype=dtype.str,
        shape=zyx,
        data_offset=int(offset) if memmappable else None,
        colour=colour if colour > 1 else (1 if alpha else 0),
        alpha=alpha,
    )
    return layout, notes


#: how many times its stored size a page's pixels can be, per TIFF compression: none 1,
#: PackBits 64 (2 bytes for a run of 128), LZW about 2700 (12-bit codes of strings up to
#: ~4000 bytes), Deflate 1032 (its format's limit). Other codecs (JPEG, zstd ...) have no
#: useful bound: only the output's free space limits them (checked by ingest).
_MAX_RATIO = {1: 1.0, 32773: 64.0, 5: 4096.0, 8: 1032.0, 32946: 1032.0}
#: slack for headers, padding and odd writers
_SLACK = 64 * 1024


def _claim_error(path: Path, what: str, claimed: int, holds: int) -> CorruptSourceError:
    return CorruptSourceError(
        f"its header claims more image data than the file can hold ({what})", path=path,
        expected=f"at most {_size(holds)}", found=f"{_size(claimed)} claimed",
        hint="the header is damaged or forged; nothing was read",
    )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _check_claims(tif: Any, path: Path, page: Any, shape: tuple[int, ...]) -> None:
    """Refuse, before any pixel is read, a header whose claimed size the file cannot back:
    the series' pixels against the file size, and the first page's pixels against its own
    strips or tiles (times the compression's largest possible ratio)."""
    size = int(tif.filehandle.size)
    per_sample = int(page.bitspersample) / 8
    claimed = float(np.prod([float(n) for n in shape])) * per_sample
    ratio = _MAX_RATIO.get(int(page.compression))
    if ratio is None:
        return
    _check_page(path, page)
    if claimed > size * ratio + _SLACK:
        dims = "×".join(str(n) for n in shape)
        raise _claim_error(path, f"{dims} pixels in a file of {_size(size)}", int(claimed), int(size * ratio))


def _check_page(path: Path, page: Any) -> None:
    """One page's claimed pixels against the bytes of its own strips or tiles."""
    ratio = _MAX_RATIO.get(int(page.compression))
    if ratio is None:
        return
    page_bytes = float(np.prod([float(n) for n in page.shape])) * int(page.bitspersample) / 8
    stored = sum(int(c) for c in page.databytecounts)
    if page_bytes > stored * ratio + _SLACK:
        raise _claim_error(path, f"a page of {'×'.join(str(int(n)) for n in page.shape)} pixels "
                           f"stored in {stored} bytes", int(page_bytes), int(stored * ratio))


def _check_extent(tif: Any, path: Path, series: Any, memmappable: bool, offset: int, nbytes: int) -> None:
    """Refuse a truncated file at open time: the series' bytes (contiguous case) or the
    first and last pages' strips / tiles must lie inside the file."""
    size = tif.filehandle.size
    if memmappable:
        end = offset + nbytes
    else:
        pages = [series.keyframe]
        if len(series.pages) > 1 and series.pages[-1] is not None:
            pages.append(series.pages[-1])
        end = 0
        for page in pages:
            for start, count in zip(page.dataoffsets, page.databytecounts):
                end = max(end, int(start) + int(count))
    if end > size:
        raise CorruptSourceError(
            "is truncated", path=path, expected=f"image data up to byte {end}",
            found=f"{size} bytes",
        )


def _open_tiff(path: Path) -> Any:
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise SourceError(f"cannot read the file: {e.strerror or e}", path=path) from e
    except Exception as e:  # TiffFileError, struct.error, ValueError ...
        raise _tiff_error(path, e) from e
    try:
        # index every page first: tifffile's page iterator (used by ``series``) follows an
        # IFD chain that points back at itself forever; indexing detects the cycle and stops
        len(tif.pages)
    except Exception as e:
        tif.close()
        raise _tiff_error(path, e) from e
    return tif


def peek_tiff(path: str | Path) -> TiffLayout:
    """The layout only (shape, dtype, how to read): for the slices of a stack."""
    p = require_file(path)
    with _open_tiff(p) as tif:
        try:
            return _plan(tif, p)[0]
        except SourceError:
            raise
        except Exception as e:
            raise _tiff_error(p, e) from e


def inspect_tiff(path: str | Path) -> tuple[TiffLayout, HeaderMetadata]:
    """Layout and header metadata (voxel size, vendor fields, raw tags)."""
    p = require_file(path)
    with _open_tiff(p) as tif:
        try:
            layout, notes = _plan(tif, p)
            header = _header(tif, p, layout, notes)
        except SourceError:
            raise
        except Exception as e:
            raise _tiff_error(p, e) from e
    if layout.colour:  # check the first slice now, so a colour image is refused at open
        handle = layout.open()
        try:
            layout.read(handle, (slice(0, 1), slice(0, layout.shape[1]), slice(0, layout.shape[2])))
        finally:
            layout.close(handle)
    return layout, header


# --- header metadata --------------------------------------------------------------------------


def _resolution_nm(page: Any, notes: list[str]) -> tuple[float | None, float | None]:
    """(y, x) pixel size from XResolution/YResolution when the unit is a length."""
    unit = int(getattr(page, "resolutionunit", 1))
    per = {3: 1e7, 4: 1e6, 5: 1e3}.get(unit)  # centimetre, millimetre, micrometre in nm
    tags = page.tags
    if "XResolution" not in tags:
        return None, None
    if per is None:
        if unit == 2:
            xres = _ratio(tags["XResolution"].value)
            if xres:
                notes.append(
                    f"TIFF resolution is {xres:g} dots per inch (a display setting); "
                    "not used as pixel size"
                )
        return None, None
    xres = _ratio(tags["XResolution"].value)
    yres = _ratio(tags["YResolution"].value) if "YResolution" in tags else xres
    return (per / yres if yres else None, per / xres if xres else None)


def _ratio(value: Any) -> float | None:
    if isinstance(value, tuple) and len(value) == 2:
        num, den = as_float(value[0]), as_float(value[1])
        return num / den if num and den else None
    return as_float(value)


def _ome_voxel(tif: Any) -> tuple[float | None, float | None, float | None] | None:
    try:
        root = ET.fromstring(tif.ome_metadata)
    except (ET.ParseError, TypeError):
        return None
    for el in root.iter():
        if el.tag.endswith("}Pixels") or el.tag == "Pixels":
            out = []
            for axis in "ZYX":
                value = el.get(f"PhysicalSize{axis}")
                unit = el.get(f"PhysicalSize{axis}Unit", "µm")  # the OME schema default
                out.append(length_nm(value, unit) if value is not None else None)
            return out[0], out[1], out[2]
    return None


def _header(tif: Any, path: Path, layout: TiffLayout, notes: list[str]) -> HeaderMetadata:
    page = tif.series[0].keyframe
    yx = layout.shape[1:]
    is_stack = layout.shape[0] > 1 or "z" in layout.roles
    vendor: str | None = None
    fields: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    voxel: list[float | None] = [None, None, None]

    for tag in page.tags.values():
        if tag.name not in _RAW_SKIP and not str(tag.name).isdigit():
            raw[tag.name] = jsonable(tag.value)
        elif str(tag.name).isdigit() and 65000 <= tag.code < 65100:
            raw[f"tag_{tag.code}"] = jsonable(tag.value)

    if tif.is_fei and tif.fei_metadata:
        info = fei_info(tif.fei_metadata, yx)
        raw["fei_metadata"] = jsonable(tif.fei_metadata)
    elif tif.is_sem and tif.sem_metadata:
        info = zeiss_info(tif.sem_metadata, yx)
        raw["sem_metadata"] = jsonable({k: v for k, v in tif.sem_metadata.items() if k})
    else:
        info = None
    if info is not None:
        vendor, fields = info.vendor, info.fields
        voxel[1], voxel[2] = info.pixel_yx_nm
        notes.extend(info.notes)
    elif tif.is_ome and (ome := _ome_voxel(tif)) is not None:
        voxel = list(ome)
        vendor = "OME"
    elif 65009 in page.tags or 65003 in page.tags:
        vendor = "Gatan"
        voxel = _dm_tags_voxel(page.tags, is_stack, notes)
    elif tif.is_imagej and tif.imagej_metadata is not None:
        voxel = _imagej_voxel(tif.imagej_metadata, page, is_stack, notes)
        ij = {k: v for k, v in tif.imagej_metadata.items() if k not in ("Labels", "Ranges", "LUTs")}
        raw["imagej_metadata"] = jsonable(ij)
    else:
        voxel[1], voxel[2] = _resolution_nm(page, notes)
    if not is_stack:
        voxel[0] = None
    return HeaderMetadata(
        shape=layout.shape,
        dtype=np.dtype(layout.dtype).name,
        voxel_size_nm=(voxel[0], voxel[1], voxel[2]),
        vendor=vendor,
        fields=fields,
        raw=raw,
        notes=tuple(notes),
    )


def _imagej_voxel(ij: dict[str, Any], page: Any, is_stack: bool, notes: list[str]) -> list[float | None]:
    unit = ij.get("unit")
    out: list[float | None] = [None, None, None]
    if unit is None or unit_kind(unit) != "length":
        if unit is not None and unit_kind(unit) == "other":
            notes.append(f"ImageJ unit {unit!r} is not a length; voxel size left unset")
        return out
    tags = page.tags
    xres = _ratio(tags["XResolution"].value) if "XResolution" in tags else None
    yres = _ratio(tags["YResolution"].value) if "YResolution" in tags else xres
    out[2] = length_nm(1.0 / xres, unit) if xres else None
    out[1] = length_nm(1.0 / yres, unit) if yres else None
    if is_stack and ij.get("spacing") is not None:
        out[0] = length_nm(ij.get("spacing"), unit)
    return out


def _dm_tags_voxel(tags: Any, is_stack: bool, notes: list[str]) -> list[float | None]:
    """DigitalMicrograph's private TIFF tags: 65003/65004/65005 units of x/y/z, 65009/65010/
    65011 scales of x/y/z."""

    def value(code: int) -> Any:
        return tags[code].value if code in tags else None

    out: list[float | None] = [None, None, None]
    for i, (axis, scale_code, unit_code) in enumerate((("z", 65011, 65005), ("y", 65010, 65004), ("x", 65009, 65003))):
        if i == 0 and not is_stack:
            continue
        scale, unit = value(scale_code), value(unit_code)
        if scale is None:
            continue
        if isinstance(unit, bytes):
            unit = unit.decode("latin-1", errors="replace")
        out[i] = length_nm(scale, unit)
        if out[i] is None and unit_kind(unit) == "other":
            notes.append(f"axis {axis} is calibrated in {unit!r}, not a length; its voxel size is left unset")
    return out


# --- the source ----------------------------------------------------------------------------------


class TiffSource(LayoutSource):
    """The first series of a TIFF file as a (z, y, x) volume."""

    reader = "tiff"


class TiffReader(Reader):
    """TIFF, BigTIFF, ImageJ and OME-TIFF; FEI and Zeiss SEM metadata."""

    name = "tiff"
    suffixes = SUFFIXES

    @classmethod
    def is_supported(cls, path: Path) -> bool:
        p = Path(path)
        if p.suffix.lower() in SUFFIXES:
            return True
        return p.is_file() and sniff(p)

    @classmethod
    def open(cls, path: Path) -> TiffSource:
        layout, header = inspect_tiff(path)
        return TiffSource(layout, header)

