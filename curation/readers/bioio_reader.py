"""The generic fallback: any format an installed bioio plugin reads (bioio-bioformats,
bioio-czi, bioio-nd2 ...). Never required: without bioio, or without a plugin for the
file, this reader simply claims nothing.

bioio presents every image as ``TCZYX`` (plus ``S`` for RGB samples) through a lazy
``dask_data`` array; this reader reduces it to a single-channel (z, y, x) volume or
refuses: more than one channel, or both time points and z planes, cannot be one volume.
bioio reports pixel sizes without units unless a plugin fills ``dimension_properties``;
unit-less sizes are reported in the notes and never used as a voxel size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptSourceError, SourceError, UnsupportedSourceError
from .base import HeaderMetadata, Reader, Source, normalize_region, require_file
from .tiff import _single_channel
from .vendor import jsonable, length_nm

_EXTENSIONS: dict[str, list[str]] | None = None  # extension → plugin names, cached


def plugin_extensions() -> dict[str, list[str]]:
    """Installed bioio plugins by the file extensions they claim ({} without bioio)."""
    global _EXTENSIONS
    if _EXTENSIONS is None:
        try:
            from bioio.plugins import get_plugins
        except ImportError:
            _EXTENSIONS = {}
        else:
            found: dict[str, list[str]] = {}
            for ext, entries in get_plugins(use_cache=True).items():
                names = [e.entrypoint.name for e in entries]
                found[ext.lower() if ext.startswith(".") else "." + ext.lower()] = names
            _EXTENSIONS = found
    return _EXTENSIONS


class BioioSource(Source):
    """One scene of a bioio-readable file as a (z, y, x) volume."""

    reader = "bioio"

    def __init__(
        self, path: Path, plugin: type | None, index: tuple[Any, ...], roles: str,
        colour: int, alpha: bool, header: HeaderMetadata,
    ) -> None:
        self._path = Path(path)
        self._plugin = plugin  # the bioio Reader class (pickled by reference)
        self._index = index  # per dimension: an int, or None for z / y / x / samples
        self._roles = roles  # per dimension: z, y, x, c (samples) or '-'
        self._colour = colour
        self._alpha = alpha
        self._header = header
        self._dask: Any = None

    @property
    def paths(self) -> list[Path]:
        return [self._path]

    @property
    def header(self) -> HeaderMetadata:
        return self._header

    def _data(self) -> Any:
        if self._dask is None:
            image = _bioimage(self._path, self._plugin)
            self._dask = image.dask_data
        return self._dask

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        zs, ys, xs = normalize_region(region, self.shape)
        index: list[Any] = []
        kept: list[str] = []
        for fixed, role in zip(self._index, self._roles):
            if role in "zyxc":
                index.append({"z": zs, "y": ys, "x": xs, "c": slice(None)}[role])
                kept.append(role)
            else:
                index.append(fixed)
        try:
            data = np.asarray(self._data()[tuple(index)].compute(scheduler="synchronous"))
        except SourceError:
            raise
        except Exception as e:
            raise CorruptSourceError(
                f"cannot read region through bioio ({type(e).__name__}: {e})", path=self._path
            ) from e
        data = data.transpose([kept.index(r) for r in "zyxc" if r in kept])
        if "z" not in kept:
            data = data[np.newaxis]
        if "c" in kept:
            data = _single_channel(data, self._colour, self._alpha, str(self._path), f" in z {zs.start}..")
        return np.ascontiguousarray(data, dtype=self.dtype)

    def close(self) -> None:
        self._dask = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_dask"] = None
        return state


def _bioimage(path: Path, plugin: type | None) -> Any:
    from bioio import BioImage

    try:
        return BioImage(path, reader=plugin)
    except Exception as e:
        name = type(e).__name__
        if name == "UnsupportedFileFormatError":
            raise UnsupportedSourceError(
                "no installed bioio plugin reads this file", path=path, found=path.suffix,
                hint="install the bioio plugin for its format (e.g. bioio-bioformats)",
            ) from e
        raise CorruptSourceError(f"cannot be read through bioio ({name}: {e})", path=path) from e


def inspect_bioio(path: Path) -> BioioSource:
    p = require_file(path)
    image = _bioimage(p, None)
    plugin = type(image.reader)
    notes: list[str] = []
    scenes = list(getattr(image, "scenes", ()) or ())
    if len(scenes) > 1:
        notes.append(f"the file holds {len(scenes)} scenes; the first, {scenes[0]!r}, is read")
    dims = image.dims
    order = str(dims.order)
    sizes = {d: int(getattr(dims, d)) for d in order}
    stored = np.dtype(image.dtype)
    if stored.kind == "c":
        raise SourceError(
            "complex data cannot be ingested as an EM image", path=p, field="data type",
            expected="real-valued pixels", found=str(stored),
        )
    if stored.kind not in "uifb":
        raise SourceError("has a pixel type that cannot be ingested", path=p, found=str(stored))
    dtype = np.dtype("u1") if stored.kind == "b" else stored.newbyteorder("=")
    if stored.kind == "b":
        notes.append("boolean image read as uint8 0/1")
    if sizes.get("C", 1) > 1:
        raise SourceError(
            "is a multi-channel image", path=p, field="channels", expected="a single channel",
            found=f"{sizes['C']} channels", hint="export the channel you need to its own file",
        )
    stacks = [d for d in order if d not in "YXSC" and sizes[d] > 1]
    if len(stacks) > 1:
        raise SourceError(
            "has more than one stack axis", path=p, field="axes", expected="at most one of Z, T",
            found=", ".join(f"{d}={sizes[d]}" for d in stacks),
        )
    colour, alpha = 0, False
    if sizes.get("S", 1) > 1:
        n = sizes["S"]
        if n not in (3, 4):
            raise SourceError("has several samples per pixel", path=p, expected="1, 3 or 4", found=n)
        colour, alpha = 3, n == 4
        notes.append("RGB image whose colour channels must all be equal: one is read as grey")
    if stacks and stacks[0] != "Z":
        notes.append(f"bioio dimension {stacks[0]!r} of size {sizes[stacks[0]]} read as z")
    roles, index = [], []
    for d in order:
        if d == "Y":
            roles.append("y")
        elif d == "X":
            roles.append("x")
        elif d == "S" and colour:
            roles.append("c")
        elif stacks and d == stacks[0]:
            roles.append("z")
        else:
            roles.append("-")
        index.append(None if roles[-1] != "-" else 0)
    shape = (sizes[stacks[0]] if stacks else 1, sizes["Y"], sizes["X"])

    voxel: list[float | None] = [None, None, None]
    sizes_um = image.physical_pixel_sizes
    props = getattr(image, "dimension_properties", None)
    unitless = []
    for i, d in enumerate("ZYX"):
        value = getattr(sizes_um, d, None)
        unit = getattr(getattr(props, d, None), "unit", None) if props is not None else None
        if value is None:
            continue
        if unit:
            voxel[i] = length_nm(value, unit)
        else:
            unitless.append(f"{d}={value}")
    if unitless:
        notes.append(
            f"bioio reports pixel sizes without units ({', '.join(unitless)}); not used, "
            "set the voxel size in the metadata"
        )
    if shape[0] == 1 or (stacks and stacks[0] != "Z"):
        voxel[0] = None
    header = HeaderMetadata(
        shape=shape,  # type: ignore[arg-type]
        dtype=dtype.name,
        voxel_size_nm=(voxel[0], voxel[1], voxel[2]),
        fields={},
        raw=jsonable({"bioio_reader": f"{plugin.__module__}.{plugin.__qualname__}", "dims": order, "sizes": sizes, "scenes": scenes[:16]}),
        notes=tuple(notes),
    )
    return BioioSource(p, plugin, tuple(index), "".join(roles), colour, alpha, header)


class BioioReader(Reader):
    """Fallback for formats an installed bioio plugin reads; the last reader tried."""

    name = "bioio"
    suffixes = ()

    @classmethod
    def is_supported(cls, path: Path) -> bool:
        name = Path(path).name.lower()
        return any(name.endswith(ext) for ext in plugin_extensions())

    @classmethod
    def open(cls, path: Path) -> BioioSource:
        return inspect_bioio(Path(path))
