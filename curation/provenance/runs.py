"""The run record: one shape for every operation that computes something.

Ingest, label import, aggregation, metadata updates, and later training, prediction and
analysis each write a :class:`RunRecord` (or a subclass that adds typed sections, such
as :class:`~curation.provenance.ingest.IngestRecord`). Consumers (RO-Crate
``CreateAction``s, reports, the catalog) read the common fields: ``action``, ``agent``,
``started``/``finished``, ``inputs``, ``outputs``, and ``details``, whose model depends
on the action (``details.kind``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue

from .analysis import AnalysisDetails, EvaluationDetails
from .segmentation import SegmentDetails, TrainDetails
from .base import Agent, EngineInfo, FileRef, ImageRef, Input, LabelRef, OutputRef, Part, Record, ToolInfo
from .experiment import LearningCurveDetails

Scalar = float | int | str | bool | None


# --- details, one model per action ------------------------------------------------------------------


class SliceMapEntry(Part):
    """Where one source slice of a label import went."""

    source: str | int  # a file name, or an index into a stack
    slice: int  # the image's z
    image_source: str | None = None  # the image's source file at that z, when there is one


class ImportDetails(Part):
    kind: Literal["labels-import"] = "labels-import"
    source: str
    format: str
    #: how numbers in mask file names were read: "source" (the image's source file
    #: numbers), "z" (0-based slice index), "z1" (1-based slice number), "given" (--slices)
    numbering: str | None = None
    slice_map: list[SliceMapEntry] = Field(default_factory=list)
    value_counts: dict[str, int] = Field(default_factory=dict)
    source_unlabeled_value: int | None = None
    #: the version this one builds on (its annotations kept unless given again), or None (--replace)
    base: str | None = None
    #: slices the base annotated that this import gave again (the new masks win)
    overridden: list[int] = Field(default_factory=list)


class AnnotatorScore(Part):
    annotator: str
    n_slices: int
    dice: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    area_ratio: float | None = None
    flagged: bool = False
    reasons: list[str] = Field(default_factory=list)


class AggregationInput(Part):
    path: str
    format: str
    n_annotators: int
    slices: list[int]


class AggregationDetails(Part):
    kind: Literal["labels-aggregate"] = "labels-aggregate"
    method: str
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    input: AggregationInput
    annotators: list[AnnotatorScore] = Field(default_factory=list)
    flagged: list[str] = Field(default_factory=list)
    #: what was accepted but changed on the way in (polyline vertices clipped to the slice)
    warnings: list[str] = Field(default_factory=list)


class FieldChange(Part):
    field: str
    old: JsonValue = None
    new: JsonValue = None


class MetadataUpdateDetails(Part):
    kind: Literal["metadata-update"] = "metadata-update"
    changes: list[FieldChange]
    geometry_changed: bool = False
    previous_sha256: str
    sha256: str
    #: new tree checksums of OME-Zarr groups whose zarr.json was rewritten (scale change)
    trees: dict[str, str] = Field(default_factory=dict)


class PlaneRef(Part):
    """A plane of the volume: its orientation and its index along the normal (level 0)."""

    plane: Literal["xy", "xz", "yz"]
    index: int = Field(ge=0)


class Stroke(PlaneRef):
    """A brush stroke: every voxel within ``radius`` of the polyline gets ``value``."""

    value: int = Field(ge=0)
    radius: float = Field(ge=0.5, le=128)
    points: list[tuple[float, float]] = Field(min_length=1)


class PaintEdit(Part):
    """An edit as painted in the viewer or given to ``curate labels paint`` (replayable)."""

    base: str | None = None
    layer: str | None = None
    note: str | None = None
    creator: str | None = None
    strokes: list[Stroke] = Field(default_factory=list)
    complete: list[PlaneRef] = Field(default_factory=list)


class PaintDetails(Part):
    kind: Literal["labels-paint"] = "labels-paint"
    tool: str
    edit: PaintEdit


class GenericDetails(Part):
    """Details of an action without a model of its own (kept as given)."""

    kind: Literal["generic"] = "generic"
    values: dict[str, JsonValue] = Field(default_factory=dict)


Details = Annotated[ImportDetails | AggregationDetails | MetadataUpdateDetails | PaintDetails | AnalysisDetails
                    | EvaluationDetails | TrainDetails | SegmentDetails | LearningCurveDetails | GenericDetails,
                    Field(discriminator="kind")]


# --- the record ------------------------------------------------------------------------------------


class RunRecord(Record):
    """One run: who, when, with what, from what, into what."""

    schema_key: Literal["RunRecord"] = "RunRecord"
    #: stable within the acquisition: "ingest", "labels/mito_v1", "runs/metadata-update-2"
    id: str
    action: str
    acquisition: str | None = None
    started: str
    finished: str
    #: None in records written before 2.0.0 without one: the commit's author is the agent
    agent: Agent | None = None
    tool: ToolInfo
    libraries: dict[str, str] = Field(default_factory=dict)
    #: the command line, when the run came from one (what `datalad rerun` repeats)
    command: list[str] | None = None
    #: fingerprint of the request (inputs and parameters): the same command again is the same job
    job: str | None = None
    inputs: list[Input] = Field(default_factory=list)
    outputs: list[OutputRef] = Field(default_factory=list)
    details: Details | None = None
    engine: EngineInfo | None = None
    seconds: float | None = None
    note: str = ""

    def files(self, role: str | None = None) -> list[FileRef]:
        return [i for i in self.inputs if isinstance(i, FileRef) and (role is None or i.role == role)]

    def labels(self, role: str | None = None) -> list[LabelRef]:
        return [i for i in self.inputs if isinstance(i, LabelRef) and (role is None or i.role == role)]

    def images(self) -> list[ImageRef]:
        return [i for i in self.inputs if isinstance(i, ImageRef)]


def details_from(value: dict[str, Any] | None) -> Any:
    """A details model from its JSON form (``kind`` picks the model)."""
    if value is None:
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(Details).validate_python(value)
