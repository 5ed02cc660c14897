"""One error tree for the whole package.

Every error is a :class:`CurationError`. Subclasses also inherit the matching standard
exception (``FileNotFoundError``, ``ValueError`` ...), so callers may catch either.
Each carries the ``path`` and ``field`` it concerns, what was ``expected`` and what was
``found``, and renders as one line a librarian can act on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CurationError(Exception):
    """Root of every error raised by curation."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        field: str | None = None,
        expected: Any = None,
        found: Any = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(self.path)
        if self.field:
            parts.append(self.field)
        head = ": ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        if self.expected is not None:
            text += f" (expected {_fmt(self.expected)}, found {_fmt(self.found)})"
        elif self.found is not None:  # nothing to expect: say only what was found
            text += f" (found {_fmt(self.found)})"
        if self.hint:
            text += f"; {self.hint}"
        return " ".join(text.split())  # always one line

    def __str__(self) -> str:
        return self.one_line()

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "path": self.path,
            "field": self.field,
            "expected": _jsonable(self.expected),
            "found": _jsonable(self.found),
            "hint": self.hint,
        }


def _fmt(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class OptionError(CurationError, ValueError):
    """A command option has a value that cannot work (a shard shape, a memory size ...)."""


class EngineError(CurationError, RuntimeError):
    """The Dask cluster could not be started or reached."""


class BlockError(CurationError, ValueError):
    """Arrays cannot be processed blockwise as asked (shapes differ, a bad block shape)."""


class PipelineError(CurationError, ValueError):
    """A pipeline definition is invalid."""


class PhantomSpecError(CurationError, ValueError):
    """A phantom specification cannot be generated (bad shape, sizes or density)."""


# --- metadata -------------------------------------------------------------------------


class MetadataError(CurationError, ValueError):
    """A metadata document is invalid. ``errors`` lists every finding."""

    def __init__(self, message: str, *, errors: list | None = None, **kw: Any) -> None:
        self.errors = list(errors or [])
        super().__init__(message, **kw)


# --- sources (instrument files) ---------------------------------------------------------


class SourceError(CurationError, ValueError):
    """An input file or folder cannot be ingested as it is."""


class UnsupportedSourceError(SourceError):
    """No reader handles this file (unknown extension or content)."""


class CorruptSourceError(SourceError):
    """A file claims a supported format but cannot be read: truncated or damaged."""


class NotAnImageError(SourceError):
    """The file holds a signal that is not an image (a spectrum, a plot ...)."""


class StackError(SourceError):
    """A folder of slices is inconsistent: a missing or duplicate slice, mixed shapes."""


class MismatchError(CurationError, ValueError):
    """A file header disagrees with the metadata (shape, dtype, voxel size)."""


# --- archive ------------------------------------------------------------------------------


class ArchiveError(CurationError):
    """An operation on a curation archive failed."""


class NotAnArchiveError(ArchiveError, FileNotFoundError):
    """The path is not a curation archive."""


class InvalidNameError(ArchiveError, ValueError):
    """A name (acquisition, layer, file) is not allowed."""


class AlreadyExistsError(ArchiveError, FileExistsError):
    """Something with that name already exists and is never overwritten."""


class NotFoundError(ArchiveError, LookupError):
    """A named acquisition, layer or version does not exist."""


class LockedError(ArchiveError, BlockingIOError):
    """Another process holds the archive's write lock."""


class ToolError(ArchiveError, RuntimeError):
    """An external tool (git, git-annex, DataLad) failed."""


class IngestInterrupted(ArchiveError):
    """An ingest stopped part way (I/O error, worker lost ...); a re-run resumes it."""


class InsufficientSpaceError(ArchiveError, OSError):
    """The output cannot fit in the free space of the archive's file system."""


class StallError(IngestInterrupted, TimeoutError):
    """No block finished for the stall timeout while work remained; the staging is kept."""


class RecordError(ArchiveError, ValueError):
    """A stored record (provenance, lineage, journal) is unreadable or does not match its model."""


class TransactionError(ArchiveError):
    """An interrupted write could neither be finished nor undone."""


class DirtyError(ArchiveError):
    """An acquisition has uncommitted changes, so what is read is not what is recorded."""


class VerificationError(ArchiveError):
    """Stored data does not match its recorded checksums or the NGFF specification."""


# --- labels, packaging ----------------------------------------------------------------------


class LabelError(CurationError, ValueError):
    """A label source or label operation is invalid."""


class ImmutableError(LabelError, PermissionError):
    """Writing into an existing, immutable version."""


class AnalysisError(CurationError, ValueError):
    """An analysis or evaluation cannot run on these inputs (shapes, voxel sizes, options)."""


class PackagingError(CurationError, ValueError):
    """A package cannot be written (missing metadata, unsafe names ...)."""


# --- the web catalog -----------------------------------------------------------------------


class WebError(CurationError):
    """A request to the web catalog (``curate serve``) cannot be served."""


class ForbiddenError(WebError, PermissionError):
    """An edit refused: the server is read-only (no --allow-edit), or the request lacks
    its CSRF token or comes from another origin."""


class RequestTooLargeError(WebError, ValueError):
    """A request body larger than the server accepts."""


# --- segmentation ---------------------------------------------------------------------------


class SegmentationError(CurationError, ValueError):
    """A segmentation input (volume, labels, slices, parameters) cannot work as given."""


class TrainingDataError(SegmentationError):
    """The ground truth cannot train a model: no annotated voxels, shapes differ, too few slices."""


class ModelPackageError(SegmentationError):
    """A model package is incomplete or its card disagrees with its files."""


class ModelIntegrityError(ModelPackageError):
    """A model file does not match its recorded sha256, or holds more than tensors (a pickle)."""
