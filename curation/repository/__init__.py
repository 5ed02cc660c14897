"""The DataLad-versioned curation archive: layout, lock, acquisitions, history."""

from .archive import Archive, init_archive, open_archive

__all__ = ["Archive", "init_archive", "open_archive"]
