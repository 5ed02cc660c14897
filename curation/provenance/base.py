"""The building blocks of every record curation writes: a frozen, versioned base model
and the small parts records share (tool, agent, file and archive references, storage).

A *record* is a document on disk (``provenance/*.json``, a label group's ``curation``
attribute, the transaction journal). It carries ``schema_key`` (which model) and
``schema_version``; :mod:`curation.provenance.io` reads any version ever written and
migrates it. A *part* is a piece of a record; it has no key or version of its own.

All models are frozen and forbid unknown fields: a record that does not match its
model is refused with the file and field named, never half-read.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: version of every record model in this release (records written before carry 1.0.0)
SCHEMA_VERSION = "2.0.0"
SCHEMA_BASE = "https://curation.example.org/schemas"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256")]
Zyx = tuple[int, int, int]
ZyxFloat = tuple[float, float, float]


class Part(BaseModel):
    """A piece of a record: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Record(Part):
    """A document on disk: ``schema_key`` names its model, ``schema_version`` its version."""

    schema_key: str
    schema_version: Literal["2.0.0"] = SCHEMA_VERSION


# --- who and what ------------------------------------------------------------------------------


class ToolInfo(Part):
    name: str = "curation"
    version: str


class Agent(Part):
    """Who ran it: the git identity (``Name <email>``) or login name, and where."""

    name: str
    user: str | None = None
    host: str | None = None


class EngineInfo(Part):
    """Where a job's tasks ran (see :mod:`curation.engine`)."""

    scheduler: str
    threads: int = Field(ge=1)
    memory_limit: int = Field(ge=0)
    #: the engine: a thread pool, an in-process Dask cluster, worker processes, an external
    #: scheduler, or a caller's Dask client (absent in records written before it was recorded)
    kind: Literal["threads", "cluster", "processes", "external", "client"] | None = None
    #: seconds without a finished block after which the job fails instead of waiting
    stall_timeout: float | None = Field(default=None, gt=0)


# --- references: what a run read and wrote -------------------------------------------------------


class FileRef(Part):
    """A file (or, with ``checksum: tree``, a folder) read by a run, with its digest."""

    kind: Literal["file"] = "file"
    path: str
    name: str
    size: int = Field(ge=0)
    sha256: Sha256
    #: what the file was to the run: source, mask, annotations, metadata ...
    role: str = "source"
    #: "tree": ``sha256`` is the tree checksum of a folder's files (an OME-Zarr input)
    checksum: Literal["file", "tree"] = "file"
    n_files: int | None = None
    #: where a symbolic link pointed when it was read
    resolved: str | None = None


class LabelRef(Part):
    """A label version of an acquisition read by a run (a parent, a truth, a mask)."""

    kind: Literal["label"] = "label"
    address: str
    acquisition: str | None = None
    role: str = "parent"
    tree_sha256: Sha256 | None = None


class ImageRef(Part):
    """An acquisition's image read by a run (prediction, analysis)."""

    kind: Literal["image"] = "image"
    acquisition: str
    path: str
    tree_sha256: Sha256 | None = None
    role: str = "image"


class ModelRef(Part):
    """A model version of the archive's ``models`` dataset, read by a run."""

    kind: Literal["model"] = "model"
    address: str  # MODEL@vN
    weights_sha256: Sha256
    architecture_sha256: Sha256 | None = None
    #: the package folder, relative to the archive root
    path: str | None = None
    role: str = "model"


Input = Annotated[FileRef | LabelRef | ImageRef | ModelRef, Field(discriminator="kind")]


class OutputRef(Part):
    """Something a run wrote, relative to the acquisition's root."""

    kind: Literal["image", "label", "file", "table", "plot", "report", "raw-copy", "model"]
    path: str
    address: str | None = None
    tree_sha256: Sha256 | None = None
    n_files: int | None = None
    bytes: int | None = None


# --- what was stored ---------------------------------------------------------------------------------


class StorageInfo(Part):
    """The stored files of an OME-Zarr group, as ``checksums.tsv`` lists them."""

    tree_sha256: Sha256
    n_files: int = Field(ge=0)
    bytes: int = Field(ge=0)
    n_shards: int = Field(ge=0)
    stored_shards: int = Field(ge=0)


class Box(Part):
    """A box of voxels, stops exclusive, per axis ``[start, stop]``."""

    z: tuple[int, int]
    y: tuple[int, int]
    x: tuple[int, int]


class Extent(Part):
    """What a label version annotates: whole z slices and boxes (everything else is unlabeled)."""

    slices: list[int] = Field(default_factory=list)
    regions: list[Box] = Field(default_factory=list)

    @field_validator("slices")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        return sorted(set(int(z) for z in v))

    def z_planes(self) -> list[int]:
        """Every slice with some annotation: whole slices and slices a box crosses."""
        zs = set(self.slices)
        for box in self.regions:
            zs.update(range(box.z[0], box.z[1]))
        return sorted(zs)

    def is_empty(self) -> bool:
        return not self.slices and not self.regions


def is_sha256(text: str | None) -> bool:
    return bool(text) and bool(_SHA256.match(str(text)))
