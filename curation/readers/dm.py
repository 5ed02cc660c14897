"""Gatan DigitalMicrograph DM3/DM4 files.

RosettaSciIO (``rsciio.digitalmicrograph.file_reader(path, lazy=True)``) parses the tag
tree; it never loads pixel data there. Its lazy array gives the shape and dtype, its tags
the byte offset and byte order of the image data. Regions are then read with positioned
reads (``os.pread``, :mod:`curation.readers.pread`) of exactly the rows they need
(RosettaSciIO's own lazy array is chunked in blocks of up to 128 MiB, far more than a
small region needs).

Why positioned reads and not a memory map of the file: a map's pages count in resident
memory, and a Dask worker cannot tell them from anonymous memory, so a multi-gigabyte 3D
DM4 read through a long-lived map makes Dask pause the worker and the ingest stall
(issue 13). With ``pread`` a block owns the buffer it reads into and nothing else.

Before RosettaSciIO builds its lazy array, the tag tree's claimed dimensions are checked
against the file's size (:func:`_check_claims`): a header patched to claim 100000³ pixels
would otherwise make it plan millions of chunks, which takes minutes.

What is refused, and why:

- complex data (DM types 3, 5, 13 and packed FFTs 27/28): not an EM intensity image;
- RGB / RGBA (types 8, 23): convert to greyscale in DigitalMicrograph first;
- spectra, spectrum images (EELS, EDS, CL spectra) and 1D plots: NotAnImageError;
- files holding several image signals: the user must pick one.

Bool images (type 14) are read as uint8 0/1, with a note.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptSourceError, NotAnImageError, SourceError
from .base import HeaderMetadata, LayoutSource, Reader, require_file
from .pread import PositionedFile, read_index
from .vendor import gatan_info, jsonable, length_nm, unit_kind

SUFFIXES = (".dm3", ".dm4")
COMPLEX_TYPES = {3: "complex64", 5: "packed complex64", 13: "complex128",
                 27: "packed FFT complex64", 28: "packed FFT complex128"}
RGB_TYPES = {8: "RGBA", 23: "RGB"}
SPECTRAL_SIGNALS = {"EELS", "EDS", "EDS_TEM", "EDS_SEM", "EDX"}
ENERGY_UNITS = {"ev", "kev", "mev"}


def sniff(path: Path) -> int | None:
    """The DM version (3 or 4) when the first bytes look like a DM header, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if len(head) < 16:
        return None
    version = struct.unpack(">i", head[:4])[0]
    if version == 3:
        flag = struct.unpack(">i", head[8:12])[0]
    elif version == 4:
        flag = struct.unpack(">i", head[12:16])[0]
    else:
        return None
    return version if flag in (0, 1) else None


def _check_header(path: Path) -> int:
    """Version, after checking the header is sane and the file is as long as it says."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 16:
        raise CorruptSourceError(
            "is too short to be a DigitalMicrograph file", path=path,
            expected="at least 16 header bytes", found=f"{len(head)} bytes",
        )
    version = struct.unpack(">i", head[:4])[0]
    if version not in (3, 4):
        raise CorruptSourceError(
            "is not a readable DigitalMicrograph file: damaged or not DM at all",
            path=path, field="header version", expected="3 or 4", found=version,
        )
    if version == 4:
        declared, flag, header = struct.unpack(">Q", head[4:12])[0], head[12:16], 24
    else:
        declared, flag, header = struct.unpack(">I", head[4:8])[0], head[8:12], 20
    if struct.unpack(">i", flag)[0] not in (0, 1):
        raise CorruptSourceError(
            "has a damaged DigitalMicrograph header", path=path,
            field="byte-order flag", expected="0 or 1", found=struct.unpack(">i", flag)[0],
        )
    # the root length counts everything after a 16-byte header (DM3; GMS adds 4 bytes of
    # padding) or a 24-byte one (DM4); only 16 is certain across writers
    if size < declared + 16:
        raise CorruptSourceError(
            "is truncated", path=path, expected=f"{declared + header} bytes (from its header)",
            found=f"{size} bytes",
        )
    return version


def _check_claims(path: Path) -> None:
    """Refuse images whose claimed dimensions need more bytes than the file holds."""
    from rsciio.digitalmicrograph._api import DigitalMicrographReader

    size = file_size = path.stat().st_size

    class Bounded(DigitalMicrographReader):
        """Refuses a tag array that claims more elements than bytes remain in the file:
        RosettaSciIO builds such arrays element by element (an array of 10^9 empty structs
        loops for minutes before any size check; found by atheris)."""

        def read_array(self, size, enc_eltype, extra=None, skip=False):  # noqa: A002 - rsciio calls it by name
            if not skip and (size < 0 or size > file_size - self.f.tell()):
                raise CorruptSourceError(
                    "a tag claims an array longer than the file", path=path, field=f"tag array at byte {self.f.tell()}",
                    expected=f"at most {max(file_size - self.f.tell(), 0)} elements", found=f"{size} elements",
                    hint="the header is damaged or forged; nothing was read",
                )
            return super().read_array(size, enc_eltype, extra=extra, skip=skip)

    with open(path, "rb") as f:
        reader = Bounded(f)
        reader.parse_file()
        images = reader.get_image_dictionaries() or []
    for k, imdict in enumerate(images):
        data = imdict.get("ImageData") if isinstance(imdict, dict) else None
        dims = data.get("Dimensions") if isinstance(data, dict) else None
        if not isinstance(dims, dict) or not dims:
            continue
        try:
            shape = [int(n) for n in dims.values()]
            depth = max(int(data.get("PixelDepth", 1)), 1)
        except (TypeError, ValueError):
            continue  # the full parse reports unusable tags
        claimed = float(np.prod([float(n) for n in shape])) * depth
        if claimed > size + 64 * 1024 or min(shape) < 0:
            raise CorruptSourceError(
                "its header claims more image data than the file can hold", path=path,
                field=f"ImageList.TagGroup{k}.ImageData.Dimensions",
                expected=f"at most {size} bytes of pixels",
                found=f"{'×'.join(str(n) for n in reversed(shape))} pixels of {depth} bytes",
                hint="the header is damaged or forged; nothing was read",
            )


def _parse(path: Path) -> list[dict[str, Any]]:
    """RosettaSciIO's signal dicts; every parse failure becomes a CorruptSourceError."""
    from rsciio.digitalmicrograph import file_reader

    try:
        _check_claims(path)
        return list(file_reader(str(path), lazy=True))
    except CorruptSourceError:
        raise
    except ValueError as e:
        if "RGBA" in str(e):  # rsciio refuses RGB(A) lazily; we refuse it anyway
            raise _rgb_error(path, "RGB/RGBA") from e
        raise CorruptSourceError(f"cannot be parsed as DigitalMicrograph: {e}", path=path) from e
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise SourceError(f"cannot read the file: {e.strerror or e}", path=path) from e
    except Exception as e:  # struct.error, DM3TagIDError, KeyError, EOFError, MemoryError ...
        raise CorruptSourceError(
            "cannot be parsed as DigitalMicrograph: its tag structure is damaged "
            f"({type(e).__name__}: {e})", path=path,
        ) from e


def _rgb_error(path: Path, found: str) -> SourceError:
    return SourceError(
        "RGB images are refused", path=path, expected="a greyscale image", found=found,
        hint="convert it to greyscale (e.g. in DigitalMicrograph) and ingest that",
    )


def _describe(sig: dict[str, Any]) -> str:
    data = sig["data"]
    title = sig.get("metadata", {}).get("General", {}).get("title") or "untitled"
    shape = "×".join(str(n) for n in data.shape)
    return f"{title!r} ({shape} {data.dtype})"


def _kind(sig: dict[str, Any]) -> str:
    """'image', 'plot' (1D), 'spectrum' (spectral axis) or 'nd' (more than 3 axes)."""
    data = sig["data"]
    signal_type = sig.get("metadata", {}).get("Signal", {}).get("signal_type", "") or ""
    imdict = sig["original_metadata"]["ImageList"]["TagGroup0"]
    fmt = str(((imdict.get("ImageTags") or {}).get("Meta Data") or {}).get("Format", "")).lower()
    units = [str(ax.get("units", "")).strip().lower() for ax in sig["axes"]]
    names = [str(ax.get("name", "")) for ax in sig["axes"]]
    if data.ndim <= 1:
        return "plot"
    if (
        any(u in ENERGY_UNITS for u in units)
        or any(n in ("Energy loss", "Energy") for n in names)
        or signal_type in SPECTRAL_SIGNALS
        or fmt.startswith("spectrum")
    ):
        return "spectrum"
    if data.ndim > 3:
        return "nd"
    return "image"


@dataclass(frozen=True)
class DMLayout:
    """Where an image's pixels lie in its file: enough to read any region."""

    path: str
    offset: int
    stored_dtype: str  # with byte order, e.g. '<i2'
    dtype: str  # what reads return, native byte order
    shape: tuple[int, int, int]  # (z, y, x); z = 1 for 2D
    boolean: bool = False  # DM bool images: any nonzero byte reads as 1

    def open(self) -> PositionedFile:
        return PositionedFile(self.path)

    @staticmethod
    def close(handle: PositionedFile) -> None:
        handle.close()

    def read(self, fh: PositionedFile, region: tuple[slice, slice, slice]) -> np.ndarray:
        try:
            part = read_index(fh, self.offset, np.dtype(self.stored_dtype), self.shape, region)
            if self.boolean:
                part = part != 0
            return np.ascontiguousarray(part, dtype=np.dtype(self.dtype))
        except (OSError, ValueError) as e:
            raise CorruptSourceError(f"cannot read the image data ({e})", path=self.path) from e


def inspect_dm(path: str | Path) -> tuple[DMLayout, HeaderMetadata]:
    """Parse a DM file's tags (no pixel data) into a layout and header metadata."""
    p = require_file(path)
    _check_header(p)
    signals = _parse(p)
    notes: list[str] = []
    if not signals:
        raise NotAnImageError("holds no image", path=p, expected="one image", found="no signal")
    kinds = [_kind(s) for s in signals]
    images = [s for s, k in zip(signals, kinds) if k == "image"]
    if not images:
        sig, kind = signals[0], kinds[0]
        signal_type = sig.get("metadata", {}).get("Signal", {}).get("signal_type") or ""
        axes = ", ".join(
            f"{ax.get('name') or '?'} [{ax.get('units') or 'no unit'}]" for ax in sig["axes"]
        )
        label = f"{signal_type} " if signal_type else ""
        what = {
            "plot": "a 1D plot",
            "spectrum": f"{label}spectrum image" if sig["data"].ndim > 1 else f"{label}spectrum",
            "nd": f"{sig['data'].ndim}-dimensional dataset",
        }[kind]
        if kind != "plot":
            what = ("an " if what[0].lower() in "aeiou" else "a ") + what
        raise NotAnImageError(
            f"holds {what}, not an image", path=p, field="signal type",
            expected="a 2D or 3D image", found=f"{signal_type or kind} signal with axes {axes}",
        )
    if len(images) > 1:
        listing = "; ".join(_describe(s) for s in images)
        raise SourceError(
            f"holds {len(images)} image signals: {listing}", path=p,
            expected="one image per file",
            found=f"{len(images)} images",
            hint="export the image to ingest into its own file in DigitalMicrograph",
        )
    for s, k in zip(signals, kinds):
        if k != "image":
            notes.append(f"skipped signal {_describe(s)}: {'a 1D plot' if k == 'plot' else 'not an image'}")
    sig = images[0]
    data = sig["data"]
    imdict = sig["original_metadata"]["ImageList"]["TagGroup0"]
    image_data = imdict.get("ImageData", {})
    dm_type = int(image_data.get("DataType", -1))

    dtype = np.dtype(data.dtype)
    if dm_type in COMPLEX_TYPES or dtype.kind == "c":
        raise SourceError(
            "complex data cannot be ingested as an EM image", path=p, field="data type",
            expected="real-valued pixels",
            found=f"DM data type {dm_type} ({COMPLEX_TYPES.get(dm_type, dtype.name)})",
        )
    if dm_type in RGB_TYPES or dtype.names is not None:
        raise _rgb_error(p, f"DM data type {dm_type} ({RGB_TYPES.get(dm_type, 'RGB')})")
    stored = dtype
    boolean = dtype == np.bool_
    if boolean:
        stored, dtype = np.dtype("u1"), np.dtype("u1")
        notes.append("boolean image (DM data type 14) read as uint8 0/1")
    if dtype.kind not in "uif":
        raise SourceError(
            "has a pixel type that cannot be ingested", path=p, field="data type",
            expected="integer or float pixels", found=f"DM data type {dm_type} ({dtype})",
        )
    endian = str((image_data.get("Data") or {}).get("endian", "little")).lower()
    stored = stored.newbyteorder(">" if endian == "big" else "<")

    shape = tuple(int(n) for n in data.shape)
    zyx = (1, *shape) if len(shape) == 2 else shape
    try:
        offset = int(image_data["Data"]["offset"])
        count = int(image_data["Data"]["size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptSourceError("has no image data location in its tags", path=p) from e
    if count != int(np.prod(shape)):
        raise CorruptSourceError(
            "has inconsistent image tags", path=p, field="ImageData.Data.size",
            expected=int(np.prod(shape)), found=count,
        )
    end = offset + count * stored.itemsize
    if end > os.path.getsize(p):
        raise CorruptSourceError(
            "is truncated", path=p, expected=f"image data up to byte {end}",
            found=f"{os.path.getsize(p)} bytes",
        )

    voxel: list[float | None] = []
    axis_names = "zyx" if len(shape) == 3 else "yx"
    for name, ax in zip(axis_names, sig["axes"]):
        units, scale = ax.get("units", ""), ax.get("scale", 1.0)
        nm = length_nm(scale, units)
        voxel.append(nm)
        if nm is None:
            kind = unit_kind(units)
            if kind == "other":
                what = " (reciprocal space: a diffraction pattern?)" if "1/" in str(units) else ""
                notes.append(
                    f"axis {name} is calibrated in {units!r}{what}, not a length; "
                    "its voxel size is left unset"
                )
            elif kind == "length":
                notes.append(f"axis {name} has an unusable scale {scale!r}; voxel size left unset")
            elif float(scale or 1.0) != 1.0:
                notes.append(f"axis {name} has scale {scale!r} but no unit; voxel size left unset")
    if len(shape) == 2:
        voxel.insert(0, None)

    tags = imdict.get("ImageTags") or {}
    vinfo = gatan_info(tags if isinstance(tags, dict) else {})
    notes.extend(vinfo.notes)
    raw = jsonable(imdict)
    raw["_title"] = sig.get("metadata", {}).get("General", {}).get("title", "")
    raw["_signal_type"] = sig.get("metadata", {}).get("Signal", {}).get("signal_type", "")

    layout = DMLayout(str(p), offset, stored.str, dtype.newbyteorder("=").str, zyx, boolean)
    header = HeaderMetadata(
        shape=zyx,  # type: ignore[arg-type]
        dtype=dtype.name,
        voxel_size_nm=(voxel[0], voxel[1], voxel[2]),
        vendor="Gatan",
        fields=vinfo.fields,
        raw=raw,
        notes=tuple(notes),
    )
    return layout, header


class DMSource(LayoutSource):
    """One DM image as a (z, y, x) volume; 2D images have z = 1 (positioned reads)."""

    reader = "dm"


class DMReader(Reader):
    """Gatan DigitalMicrograph ``.dm3`` / ``.dm4``."""

    name = "dm"
    suffixes = SUFFIXES

    @classmethod
    def is_supported(cls, path: Path) -> bool:
        p = Path(path)
        if p.suffix.lower() in SUFFIXES:
            return True
        return p.is_file() and sniff(p) is not None

    @classmethod
    def open(cls, path: Path) -> DMSource:
        layout, header = inspect_dm(path)
        return DMSource(layout, header)
