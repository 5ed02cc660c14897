"""The ingest record (``provenance/ingest.json``): where an acquisition came from and
how its image was written.

It is a :class:`~curation.provenance.runs.RunRecord` (inputs: the source files with
size and sha256, in z order; outputs: the image and ``metadata.json``) plus what only
an ingest knows: the reader, the header as read, how the metadata was reconciled with
it, and the pyramid plan of the image.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from .base import FileRef, Part, Sha256, Zyx, ZyxFloat
from .runs import RunRecord


class LevelRecord(Part):
    path: str
    shape: Zyx
    factor: Zyx
    scale_nm: ZyxFloat
    translation_nm: ZyxFloat


class PlanRecord(Part):
    """A :class:`~curation.omezarr.layout.PyramidPlan`, as stored."""

    shape: Zyx
    dtype: str
    chunk: Zyx
    shard: Zyx
    levels: list[LevelRecord] = Field(min_length=1)

    @classmethod
    def from_plan(cls, plan) -> "PlanRecord":
        return cls.model_validate(plan.to_dict())

    def to_plan(self):
        from ..omezarr.layout import Level, PyramidPlan

        return PyramidPlan(tuple(self.shape), self.dtype, tuple(self.chunk), tuple(self.shard),  # type: ignore[arg-type]
                           tuple(Level(lv.path, tuple(lv.shape), tuple(lv.factor), tuple(lv.scale_nm),  # type: ignore[arg-type]
                                       tuple(lv.translation_nm)) for lv in self.levels))

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        return tuple(self.levels[0].scale_nm)  # type: ignore[return-value]

    def chunk_of(self, level: int) -> tuple[int, int, int]:
        """The inner chunk shape of ``level`` (the common chunk, clipped to the level)."""
        return tuple(min(c, n) for c, n in zip(self.chunk, self.levels[level].shape))  # type: ignore[return-value]


class HeaderRecord(Part):
    """What the source's header said, normalised (see readers.base.HeaderMetadata)."""

    shape: Zyx
    dtype: str
    voxel_size_nm: tuple[float | None, float | None, float | None] = (None, None, None)
    vendor: str | None = None
    fields: dict[str, JsonValue] = Field(default_factory=dict)
    raw: dict[str, JsonValue] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class MetadataSource(Part):
    """The metadata file given at ingest and how it met the header."""

    file: str
    sha256: Sha256
    filled_from_header: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class ImageRecord(Part):
    path: str
    ngff_version: str = "0.5"
    zarr_format: int = 3
    codec: str
    plan: PlanRecord
    tree_sha256: Sha256
    n_files: int = Field(ge=0)
    bytes: int = Field(ge=0)
    n_shards: int = Field(ge=0)


class IngestRecord(RunRecord):
    schema_key: Literal["IngestRecord"] = "IngestRecord"  # type: ignore[assignment]
    reader: str
    raw_copy: str | None = None
    header: HeaderRecord
    metadata: MetadataSource
    image: ImageRecord
    resumed_shards: int = 0
    write_seconds: float | None = None

    @property
    def sources(self) -> list[FileRef]:
        """The source files, in the order the reader read them (z order for slice folders)."""
        return self.files("source")
