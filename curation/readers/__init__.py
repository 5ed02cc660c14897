"""Readers: instrument files and folders of slices as lazily read (z, y, x) volumes.

``open_source(paths)`` is the entry point::

    source = open_source(["run1/slices"])        # a folder of TIFF / PNG / DM slices
    source = open_source(["volume.dm4"])         # one file, 2D or 3D
    source = open_source(["a_001.tif", "a_002.tif"])  # several files: a stack of them
    source.header.voxel_size_nm, source.read((slice(0, 8), slice(0, 512), slice(0, 512)))

Readers are found in this order: the built-ins (DigitalMicrograph, TIFF, PNG), readers
added with :func:`register_reader`, readers installed as entry points in the group
``curation.readers`` (each names a :class:`~curation.readers.base.Reader` subclass), and
last the bioio fallback, which claims a file only when an installed bioio plugin reads
its format. A file's suffix is matched first; then each reader sniffs its first bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import SourceError, UnsupportedSourceError
from ..units import UNIT_TO_NM, to_nm
from .base import HeaderMetadata, Reader, Source, normalize_region, require_file
from .bioio_reader import BioioReader, BioioSource
from .dm import DMReader, DMSource
from .stack import PngReader, StackReader, StackSource, open_folder, open_stack
from .tiff import TiffReader, TiffSource

__all__ = [
    "BUILTIN_READERS",
    "ENTRY_POINT_GROUP",
    "UNIT_TO_NM",
    "BioioReader",
    "BioioSource",
    "DMReader",
    "DMSource",
    "HeaderMetadata",
    "PngReader",
    "Reader",
    "Source",
    "StackReader",
    "StackSource",
    "TiffReader",
    "TiffSource",
    "get_reader",
    "normalize_region",
    "open_folder",
    "open_source",
    "open_stack",
    "plugin_errors",
    "readers",
    "register_reader",
    "reload_plugins",
    "to_nm",
    "unregister_reader",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "curation.readers"
BUILTIN_READERS: tuple[type[Reader], ...] = (DMReader, TiffReader, PngReader)

_registered: list[type[Reader]] = []
_entry_point_readers: list[type[Reader]] | None = None
_entry_point_errors: list[str] = []


def _load_entry_points() -> list[type[Reader]]:
    global _entry_point_readers
    if _entry_point_readers is None:
        from importlib.metadata import entry_points

        found: list[type[Reader]] = []
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                obj = ep.load()
            except Exception as e:  # a broken plugin must not break every other format
                _entry_point_errors.append(f"{ep.name} ({ep.value}): {type(e).__name__}: {e}")
                log.warning("reader plugin %s cannot be loaded: %s", ep.name, e)
                continue
            if not (isinstance(obj, type) and issubclass(obj, Reader)):
                _entry_point_errors.append(f"{ep.name} ({ep.value}): not a Reader subclass")
                log.warning("reader plugin %s is not a Reader subclass", ep.name)
                continue
            found.append(obj)
        _entry_point_readers = found
    return _entry_point_readers


def reload_plugins() -> None:
    """Forget the entry-point readers found so far; the next lookup scans again."""
    global _entry_point_readers
    _entry_point_readers = None
    _entry_point_errors.clear()


def plugin_errors() -> list[str]:
    """Entry-point readers that failed to load, one line each."""
    _load_entry_points()
    return list(_entry_point_errors)


def register_reader(reader: type[Reader]) -> type[Reader]:
    """Add a reader (tried after the built-ins, before entry points); usable as a decorator."""
    if not (isinstance(reader, type) and issubclass(reader, Reader)):
        raise TypeError(f"{reader!r} is not a Reader subclass")
    if reader not in _registered:
        _registered.append(reader)
    return reader


def unregister_reader(reader: type[Reader]) -> None:
    if reader in _registered:
        _registered.remove(reader)


def readers() -> list[type[Reader]]:
    """Every file reader, in the order they are tried (the bioio fallback last)."""
    out: list[type[Reader]] = []
    for r in (*BUILTIN_READERS, *_registered, *_load_entry_points(), BioioReader):
        if r not in out:
            out.append(r)
    return out


def get_reader(path: Path | str) -> type[Reader]:
    """The reader that claims ``path``: a folder → the stack reader; a file → by suffix,
    then by content. UnsupportedSourceError when none does."""
    p = Path(path)
    if p.is_dir():
        return StackReader
    require_file(p)  # missing or unreadable: say so, never "unsupported format"
    name = p.name.lower()
    candidates = [r for r in readers() if r is not BioioReader]
    for r in candidates:
        if any(name.endswith(s.lower()) for s in r.suffixes):
            return r
    for r in candidates:
        if r.is_supported(p):
            return r
    if BioioReader.is_supported(p):
        return BioioReader
    broken = plugin_errors()
    raise UnsupportedSourceError(
        "no reader handles this file", path=p,
        expected="DM3/DM4, TIFF, PNG, a folder of slices, or a format an installed bioio plugin reads",
        found=p.suffix or "a file without suffix",
        hint=(
            f"reader plugins that failed to load: {'; '.join(broken)}" if broken
            else "for other microscopy formats install a bioio plugin (e.g. bioio-bioformats)"
        ),
    )


def open_source(paths: Sequence[Path | str] | Path | str) -> Source:
    """Open one file, one folder of slices, or several slice files as one Source."""
    if isinstance(paths, str | Path):
        paths = [paths]
    items = [Path(p) for p in paths]
    if not items:
        raise SourceError("nothing to open: no path given")
    if len(items) == 1:
        p = items[0]
        return get_reader(p).open(p)
    folders = [p for p in items if p.is_dir()]
    if folders:
        raise SourceError(
            "several inputs must all be slice files", path=folders[0],
            expected="files", found="a folder", hint="give one folder, or the files inside it",
        )
    missing = [p for p in items if not p.exists()]
    if missing:
        raise SourceError("file not found", path=missing[0])
    return open_stack(items)
