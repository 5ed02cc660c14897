"""Pipeline step kinds of the segmentation package: ``train`` and ``segment``.

::

    - train:
        pipeline: nuclear-pores-3d       # a shipped pipeline or a YAML file (relative to the pipeline file)
        labels: pores@v1
        name: pores-3d
        overrides: {training.iterations: 60, training.max_minutes: null}
    - segment: {model: pores-3d@v1, layer: pores-predicted}

So a pipeline file chains ingest -> labels -> train -> segment -> analyze.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..pipelines.registry import RunContext, StepParams, step_kind
from ..records import Result


class TrainParams(StepParams):
    pipeline: str
    labels: str
    name: str | None = None
    device: str = "cpu"
    seed: int | None = None
    max_minutes: float | None = Field(None, gt=0)
    init: str | None = None
    threads: int | None = Field(None, ge=1)
    #: dotted pipeline fields, e.g. ``training.iterations: 60``
    overrides: dict[str, Any] = Field(default_factory=dict)


@step_kind("train", TrainParams)
def train_step(p: TrainParams, ctx: RunContext) -> list[Result]:
    """Train a segmentation pipeline on a label version and store the model as MODEL@vN."""
    from .pipeline import pipelines_dir
    from .training_run import train_model

    pipeline: Any = p.pipeline
    if pipeline.endswith((".yaml", ".yml")) and not (pipelines_dir() / pipeline).exists():
        pipeline = ctx.path(pipeline)
    return train_model(ctx.archive, pipeline, ctx.acquisition, p.labels, name=p.name, device=p.device, seed=p.seed,
                       max_minutes=p.max_minutes, init=p.init, overrides=p.overrides or None, threads=p.threads)


class SegmentParams(StepParams):
    model: str
    layer: str | None = None
    tri_axis: bool | None = None
    keep_views: bool = False
    device: str = "cpu"
    threads: int | None = Field(None, ge=1)
    block_shape: tuple[int, int, int] | None = None
    note: str = ""


@step_kind("segment", SegmentParams)
def segment_step(p: SegmentParams, ctx: RunContext) -> list[Result]:
    """Predict the acquisition with MODEL@vN into probability and prediction layers."""
    from .prediction_run import segment_acquisition

    return segment_acquisition(ctx.archive, ctx.acquisition, p.model, tri_axis=p.tri_axis, keep_views=p.keep_views,
                               device=p.device, layer=p.layer, threads=p.threads, block_shape=p.block_shape,
                               note=p.note)


