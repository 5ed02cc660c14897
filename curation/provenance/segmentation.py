"""Details of training and prediction runs, and the model reference a run reads.

``TrainDetails`` (``curate train``, ``models/provenance/MODEL_vN.json``): the model
version made, where its package lies, the training data and the parent model.
``SegmentDetails`` (``curate segment``, ``provenance/runs/segmentation-N.json``): the
model read, the :class:`~curation.segmentation.reproduce.PredictionParameters` that fix
the bytes, the label versions written, and how fast it went. Together with the label
lineage (``lineage.run``) they say how to compute a prediction again (``curate
reproduce``) and the DataLad run record in the commit message repeats it (``datalad
rerun``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..segmentation.reproduce import Comparison, PredictionParameters
from .base import ModelRef, Part, Sha256


class TrainDetails(Part):
    kind: Literal["train"] = "train"
    model: str  # MODEL@vN written
    package: str  # models/MODEL/vN, relative to the archive root
    pipeline: str
    acquisition: str
    labels: str  # LAYER@vN trained on
    parent: str | None = None  # MODEL@vN fine-tuned from
    weights_sha256: Sha256
    best_dice: float | None = None
    iterations: int
    seed: int
    device: str
    threads: int
    max_minutes: float | None = None
    #: the bioimage.io format check passed before the version was stored
    bioimageio_valid: bool


class SegmentOutputs(Part):
    probability: str  # LAYER@vN of kind probability
    prediction: str  # LAYER@vN of kind prediction
    #: per-axis probability layers of a tri-axis prediction kept with --keep-views
    views: dict[str, str] = Field(default_factory=dict)


class SegmentDetails(Part):
    kind: Literal["segment"] = "segment"
    model: str  # MODEL@vN
    parameters: PredictionParameters
    outputs: SegmentOutputs
    keep_views: bool = False
    blocks: int
    voxels: int
    seconds: float
    voxels_per_second: float
    #: the command `datalad rerun` repeats (also in the commit message)
    command: list[str] = Field(default_factory=list)


class ReproductionResult(Part):
    """What ``curate reproduce`` found (not stored in the archive; reported)."""

    kind: Literal["reproduce"] = "reproduce"
    acquisition: str
    address: str
    run: str
    comparisons: dict[str, Comparison]
    identical: bool
    passed: bool


__all__ = ["ModelRef", "ReproductionResult", "SegmentDetails", "SegmentOutputs", "TrainDetails"]
