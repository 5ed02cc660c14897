"""Public test helpers: in-memory sources and EM-like volume generators.

Used by curation's own tests and benchmarks, and available to anyone writing a reader
or a pipeline step against curation.
"""

from .metadata import minimal_metadata, write_metadata
from .sources import ArraySource, FlakySource, em_like_volume

__all__ = ["ArraySource", "FlakySource", "em_like_volume", "minimal_metadata", "write_metadata"]
