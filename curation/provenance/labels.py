"""Label-version records: the lineage a label image carries in its ``curation``
attribute, and the run record that wrote it (``provenance/labels/LAYER_vN.json``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Extent, FileRef, Part, Record, StorageInfo
from .runs import AnnotatorScore, PlaneRef, RunRecord, Scalar

#: what a label version is: drawn by people, agreed by a crowd, predicted, or derived
KINDS = ("ground-truth", "consensus", "prediction", "probability", "instances")


class ConsensusSummary(Part):
    """Who took part in a consensus and how they agreed with it."""

    method: str
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    annotators: list[AnnotatorScore] = Field(default_factory=list)
    flagged: list[str] = Field(default_factory=list)


class PaintedPlane(Part):
    plane: Literal["xy", "xz", "yz"]
    index: int = Field(ge=0)
    voxels: int = Field(ge=0)


class PaintSummary(Part):
    """What an edit painted: the tool, how many strokes, the planes touched, planes checked whole."""

    tool: str
    strokes: int = Field(ge=0)
    planes: list[PaintedPlane] = Field(default_factory=list)
    complete: list[PlaneRef] = Field(default_factory=list)


class LabelLineage(Record):
    """Lineage of one label version, stored in its group's ``curation`` attribute."""

    schema_key: Literal["LabelLineage"] = "LabelLineage"
    acquisition: str | None = None
    layer: str
    version: int = Field(ge=1)
    address: str
    kind: Literal["ground-truth", "consensus", "prediction", "probability", "instances"]
    parents: list[str] = Field(default_factory=list)
    creator: str
    created: str
    tool_version: str
    sources: list[FileRef] = Field(default_factory=list)
    annotated: Extent
    note: str = ""
    unlabeled_value: int
    dtype: str
    label_values: list[int] = Field(default_factory=list)
    #: label value -> name (image-label properties, without background and unlabeled)
    names: dict[int, str] = Field(default_factory=dict)
    consensus: ConsensusSummary | None = None
    painted: PaintSummary | None = None
    #: id of the run record that computed it (predictions, instances)
    run: str | None = None


class LabelVersionRecord(RunRecord):
    """The run that wrote a label version, with the version's lineage and storage."""

    schema_key: Literal["LabelVersionRecord"] = "LabelVersionRecord"  # type: ignore[assignment]
    layer: str
    version: int = Field(ge=1)
    address: str
    group: str  # "labels/mito_v1", relative to the image
    lineage: LabelLineage
    storage: StorageInfo
