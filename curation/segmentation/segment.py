"""Segmenting a volume with a stored model, and repeating it: the calls the archive makes.

:func:`segment` predicts a volume blockwise with a verified model (see
:func:`curation.segmentation.package.load_model`) into the arrays the caller provides (for
the archive: the staged probability and prediction layers) and returns the
:class:`PredictionParameters` that fix the result: model and weights sha256, normalisation
values, grids, tiles, views, threshold, device, precision and thread count. Stored with the
prediction's lineage, they are all :func:`reproduce` needs to compute the same arrays again
into scratch space and compare them with the stored ones, bit for bit on CPU, within
bioimage.io's tolerance on a GPU.

Nothing here knows about scheduling: ``blocks`` and ``on_block`` let a caller run a subset
(resuming after a crash) and record progress; :func:`plan_for` and
:func:`~curation.segmentation.inference.predict_block` let a Dask engine run blocks itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from ..errors import ModelIntegrityError, SegmentationError
from .card import code_commit
from .data import percentiles
from .inference import Block, BlockwiseSummary, InferencePlan, plan_inference, predict_blockwise
from .package import LoadedModel
from .reproduce import Comparison, PredictionParameters, compare_arrays

def _normalization(model: LoadedModel, image: Any) -> tuple[float, float] | None:
    norm = model.pipeline.normalization
    if norm.method == "none":
        return None
    if norm.reference == "training":
        return model.card.training_data.normalization_values
    return percentiles(image, norm.low, norm.high)


def plan_for(model: LoadedModel, image: Any, voxel_size_nm: Sequence[float], *, tri_axis: bool | None = None,
             block_shape: Sequence[int] | None = None,
             normalization: tuple[float, float] | None | Literal["measure"] = "measure") -> InferencePlan:
    """The inference plan of ``image`` with ``model`` (normalisation measured unless given)."""
    values = _normalization(model, image) if normalization == "measure" else normalization
    return plan_inference(model.pipeline, tuple(image.shape), voxel_size_nm, normalization=values,
                          tri_axis=tri_axis, block_shape=block_shape)


def parameters_of(model: LoadedModel, plan: InferencePlan, *, device: str, precision: str, threads: int,
                  batch: int) -> PredictionParameters:
    p = plan.pipeline
    card = model.card
    return PredictionParameters(
        model=f"{card.name}@v{card.version}" if card.version else card.name, weights_sha256=model.weights_sha256,
        architecture_sha256=card.files.architecture_sha256, pipeline=p.name, shape=plan.shape,
        voxel_size_nm=plan.voxel_size_nm, factors=plan.factors, model_voxel_size_nm=plan.model_voxel_size_nm,
        normalization=plan.normalization, normalization_reference=p.normalization.reference,
        tri_axis=len(plan.views) == 3, views=[("z", "y", "x")[v] for v in plan.views], combine=p.inference.combine,
        threshold=p.inference.threshold, tile=list(p.inference.tile), halo=p.halo, overlap=p.inference.overlap,
        batch=batch, block_shape=plan.block_shape, device=device, precision=precision,  # type: ignore[arg-type]
        threads=threads, torch=torch.__version__, curation_commit=code_commit())


def segment(model: LoadedModel, image: Any, voxel_size_nm: Sequence[float], probability: Any,
            prediction: Any | None = None, *, views: Mapping[str, Any] | None = None, tri_axis: bool | None = None,
            device: str = "cpu", precision: str | None = None, threads: int | None = None,
            batch: int | None = None, block_shape: Sequence[int] | None = None,
            blocks: Sequence[Block] | None = None,
            on_block: Callable[[int, int, Block], None] | None = None,
            plan: InferencePlan | None = None) -> tuple[PredictionParameters, BlockwiseSummary]:
    """Predict ``image`` into ``probability`` (uint8 0-255) and ``prediction`` (uint8 0/1), and,
    when ``views`` maps "z", "y", "x" to arrays, each TAP view's probability."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SegmentationError("no CUDA device is available", field="--device", expected="cpu", found=device)
    plan = plan or plan_for(model, image, voxel_size_nm, tri_axis=tri_axis, block_shape=block_shape)
    if views and len(plan.views) != 3:
        raise SegmentationError("per-axis views exist only with tri-axis prediction", field="--keep-views",
                                hint="add --tri-axis")
    precision = precision or model.pipeline.inference.precision
    threads = int(threads or torch.get_num_threads() or os.cpu_count() or 1)
    batch = int(batch or model.pipeline.inference.batch)
    predictor = model.predictor(device=device, precision=precision, threads=threads, batch=batch)
    params = parameters_of(model, plan, device=device, precision=precision, threads=threads, batch=batch)
    summary = predict_blockwise(plan, predictor, image, probability, prediction, views=dict(views or {}),
                                blocks=blocks, on_block=on_block)
    return params, summary


def plan_of(model: LoadedModel, params: PredictionParameters) -> InferencePlan:
    """The plan a recorded prediction ran with (its normalisation values, views, blocks)."""
    if params.weights_sha256 != model.weights_sha256:
        raise ModelIntegrityError("the model's weights are not those the prediction was made with",
                                  field="weights_sha256", expected=params.weights_sha256, found=model.weights_sha256)
    plan = plan_inference(model.pipeline, params.shape, params.voxel_size_nm, normalization=params.normalization,
                          tri_axis=params.tri_axis, block_shape=params.block_shape)
    if plan.factors != tuple(params.factors):
        raise SegmentationError("the recorded grids differ from those this code computes", field="factors",
                                expected=list(params.factors), found=list(plan.factors))
    return plan


def reproduce(model: LoadedModel, image: Any, params: PredictionParameters, stored: Mapping[str, Any],
              scratch: Mapping[str, Any], *, mode: Literal["auto", "exact", "tolerance"] = "auto",
              device: str | None = None) -> dict[str, Comparison]:
    """Recompute a recorded prediction into ``scratch`` arrays and compare each with ``stored``
    (keys: "probability", "prediction", and "z", "y", "x" for kept views).

    The recorded device, precision, thread count, batch and blocks are used, so a CPU
    prediction must repeat bit for bit (mode auto: exact); on a GPU, or with another
    ``device``, mode auto applies bioimage.io's tolerance."""
    unknown = set(stored) - {"probability", "prediction", "z", "y", "x"}
    if unknown or set(stored) != set(scratch):
        raise SegmentationError("stored and scratch arrays must name the same outputs", field="outputs",
                                expected="probability, prediction, z, y, x", found=sorted(set(stored) ^ set(scratch)
                                                                                          | unknown))
    plan = plan_of(model, params)
    device = device or params.device
    if mode == "auto":
        mode = "exact" if device == "cpu" and params.device == "cpu" else "tolerance"
    views = {k: scratch[k] for k in ("z", "y", "x") if k in scratch}
    segment(model, image, params.voxel_size_nm, scratch["probability"], scratch.get("prediction"), views=views,
            device=device, precision=params.precision, threads=params.threads, batch=params.batch, plan=plan)
    return {name: compare_arrays(stored[name], scratch[name], mode=mode) for name in stored}
