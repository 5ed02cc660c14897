"""The reader abstraction: cheap support checks, lazy region reads, header metadata.

A :class:`Reader` recognises a kind of input (``is_supported`` looks only at names and
magic bytes) and ``open``\\ s it as a :class:`Source`. A Source is a 3D (z, y, x) volume,
single-channel, that reads any region on demand; it never loads the whole volume. Sources
are picklable: they hold paths and parameters, and reopen file handles lazily, so Dask
workers in other processes can read their own regions.

Errors: a real read error reaches the user as :class:`~curation.errors.CorruptSourceError`
naming the file; an unsupported file raises :class:`~curation.errors.UnsupportedSourceError`;
non-image signals raise :class:`~curation.errors.NotAnImageError`.
"""

from __future__ import annotations

import stat as _stat
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import SourceError


@dataclass(frozen=True)
class HeaderMetadata:
    """What a file header says, normalised.

    ``shape`` and ``voxel_size_nm`` are (z, y, x). A 2D image has z = 1. A voxel size is
    ``None`` on an axis the file does not calibrate (a plain TIFF, a single 2D slice's z).
    ``fields`` maps acquisition-metadata field paths (dotted, as in the metadata model,
    e.g. ``"acquisition.beam_energy_kv"``) to values found in vendor tags; ingest uses
    them to fill or cross-check the user's metadata. ``raw`` keeps the original header
    tags (JSON-safe) for provenance.
    """

    shape: tuple[int, int, int]
    dtype: str
    voxel_size_nm: tuple[float | None, float | None, float | None] = (None, None, None)
    vendor: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class Source(ABC):
    """A lazily read 3D volume from one or more files."""

    #: name of the reader that produced it, recorded in provenance
    reader: str = ""

    @property
    @abstractmethod
    def paths(self) -> list[Path]:
        """Every file the volume is read from, in order."""

    @property
    @abstractmethod
    def header(self) -> HeaderMetadata:
        """Header metadata, read cheaply at open time."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.header.shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.header.dtype)

    @abstractmethod
    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        """Read ``region`` (three slices with explicit start and stop) as a C-ordered
        ndarray of ``self.dtype``. Raises CorruptSourceError naming the file on failure."""

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        """True when ``region`` is known, without reading it, to hold only the fill value
        (e.g. unannotated slices of a sparse label layer). Writers then skip it."""
        return False

    def close(self) -> None:  # pragma: no cover - default no-op
        """Release open handles; reading again reopens them."""


class LayoutSource(Source):
    """A source over one file, described by a picklable *layout* that knows how to
    ``open()`` a handle and ``read(handle, region)`` (and optionally ``close(handle)``).

    The handle is opened on first read, dropped when pickled (a Dask worker reopens
    it) and released by :meth:`close`.
    """

    def __init__(self, layout: Any, header: HeaderMetadata) -> None:
        self._layout = layout
        self._header = header
        self._handle: Any = None

    @property
    def layout(self) -> Any:
        return self._layout

    @property
    def paths(self) -> list[Path]:
        return [Path(self._layout.path)]

    @property
    def header(self) -> HeaderMetadata:
        return self._header

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        region = normalize_region(region, self.shape)
        if self._handle is None:
            self._handle = self._layout.open()
        return self._layout.read(self._handle, region)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and hasattr(self._layout, "close"):
            self._layout.close(handle)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def __del__(self) -> None:
        # a handle may hold an open file; release it with the source (finalisers cannot
        # report errors, and a failed close loses nothing)
        try:
            self.close()
        except Exception:  # noqa: S110
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._layout.path!r}, shape={self.shape}, dtype={self.dtype})"


class Reader(ABC):
    """Recognises and opens one kind of input."""

    name: ClassVar[str]
    #: lower-case file suffixes this reader claims, e.g. (".dm3", ".dm4")
    suffixes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def is_supported(cls, path: Path) -> bool:
        """Cheap check: names and magic bytes only, never a full parse."""

    @classmethod
    @abstractmethod
    def open(cls, path: Path) -> Source:
        """Open ``path`` (a file, or a folder for stack readers) as a Source."""


def normalize_region(
    region: tuple[slice, slice, slice], shape: tuple[int, int, int]
) -> tuple[slice, slice, slice]:
    """Check ``region`` against ``shape`` and return it with explicit starts and stops.

    Each of the three slices may leave start/stop as ``None`` (meaning 0 / the axis size);
    steps other than 1 and bounds outside the volume raise ``ValueError``.
    """
    if len(region) != 3:
        raise ValueError(f"a region has 3 slices (z, y, x), got {len(region)}")
    out = []
    for axis, (sl, size) in enumerate(zip(region, shape)):
        if not isinstance(sl, slice):
            raise ValueError(f"region axis {'zyx'[axis]} must be a slice, got {sl!r}")
        if sl.step not in (None, 1):
            raise ValueError(f"region axis {'zyx'[axis]} has step {sl.step}; only 1 is allowed")
        start = 0 if sl.start is None else int(sl.start)
        stop = size if sl.stop is None else int(sl.stop)
        if not 0 <= start <= stop <= size:
            raise ValueError(
                f"region axis {'zyx'[axis]} [{start}:{stop}] is outside the volume [0:{size}]"
            )
        out.append(slice(start, stop))
    return out[0], out[1], out[2]


def require_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a readable regular file; else a SourceError naming it."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SourceError("file not found", path=p) from None
    except OSError as e:
        raise SourceError(f"cannot access the file: {e.strerror or e}", path=p) from e
    if _stat.S_ISDIR(st.st_mode):
        raise SourceError("is a folder, expected a file", path=p)
    if not _stat.S_ISREG(st.st_mode):
        raise SourceError("is not a regular file", path=p)
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise SourceError(f"cannot read the file: {e.strerror or e}", path=p) from e
    return p
