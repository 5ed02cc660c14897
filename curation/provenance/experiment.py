"""Details of a learning-curve run (``provenance/runs/learning-curve-N.json``): what was
asked, every draw's training and scores, the curve with its confidence intervals, the
marginal gain per added slice, the projection for more slices and the ranked candidates.

Intervals: ``interval`` names how they were made ("t": Student t over the draws of one
k; gains: Welch t between consecutive k; the projection: a bootstrap over the draws).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from .analysis import AnalysisFiles
from .base import Part, ZyxFloat


class LearningCurveSettings(Part):
    """What ``curate experiment learning-curve`` was asked, after defaults were applied."""

    labels: str  # LAYER@vN whose annotated slices train and score
    pipeline: str  # the segmentation pipeline's name
    #: sha256 of the pipeline as trained (its YAML with every field), before per-draw seeds
    pipeline_sha256: str
    #: dotted pipeline fields replaced for this experiment (a tiny demo network ...)
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    slices: list[int] = Field(min_length=1)  # the k values
    repeats: int = Field(ge=1)
    seed: int = Field(ge=0)
    #: per training: a time budget (iterations fitted to it) or a fixed number of iterations
    max_minutes: float | None = None
    iterations: int | None = None
    held_out: list[int]  # the annotated slices every draw is scored on
    gap: int = Field(0, ge=0)
    pool: list[int]  # the annotated slices draws come from
    add: int | None = Field(None, ge=1)
    max_candidates: int = Field(64, ge=1)
    confidence: float = 0.95
    interval: Literal["t"] = "t"
    device: str = "cpu"
    threads: int | None = None
    voxel_size_nm: ZyxFloat


class DrawRecord(Part):
    """One training: its slices and seed, how long it ran, its held-out scores (pooled
    over the held-out slices' annotated voxels)."""

    k: int = Field(ge=1)
    repeat: int = Field(ge=0)
    slices: list[int]
    seed: int
    iterations: int = Field(ge=0)
    stopped_by: str
    train_seconds: float
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    dice: float
    iou: float
    #: the model on every pool slice (the current ground truth), not a random draw
    current: bool = False


class CurvePointRecord(Part):
    """The mean Dice and IoU at k slices with their 95% t intervals (None with one draw)."""

    k: int = Field(ge=1)
    draws: int = Field(ge=1)
    dice_mean: float
    dice_low: float | None = None
    dice_high: float | None = None
    dice_sd: float | None = None
    iou_mean: float
    iou_low: float | None = None
    iou_high: float | None = None


class GainRecord(Part):
    """Dice gained per added slice from ``k_from`` to ``k_to``: the difference of the
    mean Dice over ``k_to - k_from``, with Welch's 95% interval."""

    k_from: int
    k_to: int
    per_slice: float
    low: float | None = None
    high: float | None = None


class ProjectionRecord(Part):
    """What ``add`` more slices would buy from the ``current`` ones, by the fitted curve."""

    current: int = Field(ge=1)
    add: int = Field(ge=1)
    #: "power": a - b·k^-c; "log": a + b·ln k
    model: Literal["power", "log"]
    params: list[float]
    dice_now: float
    dice_then: float
    gain: float
    gain_low: float
    gain_high: float
    dice_then_low: float
    dice_then_high: float
    #: bootstrap refits the interval comes from
    resamples: int = Field(ge=0)
    #: Dice of the model trained on every current slice, measured (not fitted)
    dice_measured_now: float | None = None


class CandidateRecord(Part):
    """An unannotated slice scored by the current model's uncertainty."""

    slice: int = Field(ge=0)
    #: mean binary entropy of the predicted probability, bits (1: a coin toss everywhere)
    entropy_bits: float
    rank: int = Field(ge=1)
    suggested: bool = False


class LearningCurveDetails(Part):
    kind: Literal["learning-curve"] = "learning-curve"
    settings: LearningCurveSettings
    draws: list[DrawRecord]
    points: list[CurvePointRecord]
    gains: list[GainRecord] = Field(default_factory=list)
    projection: ProjectionRecord | None = None
    candidates: list[CandidateRecord] = Field(default_factory=list)
    files: AnalysisFiles


__all__ = ["CandidateRecord", "CurvePointRecord", "DrawRecord", "GainRecord", "LearningCurveDetails",
           "LearningCurveSettings", "ProjectionRecord"]
