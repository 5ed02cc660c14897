"""Training a segmentation network from sparse ground truth.

:func:`train` takes what an archive holds (image, labels whose dtype maximum means
unlabeled, annotated slices, voxel size) and a :class:`SegmentationPipeline`, and returns a
:class:`TrainingResult`: the best weights by validation Dice, the history of every epoch,
and what a model card needs to say how they were made. It never prints; progress goes to an
optional callback.

Only annotated voxels count in the loss (weighted BCE + soft Dice). Validation holds out
whole annotated slices (by default those farthest from the others) and measures Dice after
each epoch (``training.validation.every`` iterations) by predicting them as prediction
would, tile by tile.

Time budget: with ``max_minutes`` the run times a few steps on a throwaway copy of the
network, fits the number of iterations to the budget and lays the learning-rate schedule
over them; if the machine slows down it shortens the plan at an epoch boundary. The plan
(``[(at_iteration, total), ...]``) is returned, and passing it back as ``plan=`` repeats the
run exactly (same seed, same thread count) without looking at the clock.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SegmentationError, TrainingDataError
from .architectures import build_network
from .augment import PatchSampler
from .card import now_iso
from .data import Material, Slab, model_voxel_size, prepare
from .inference import InferencePlan, Predictor, predict_model_region
from .metrics import dice
from .pipeline import SegmentationPipeline

#: warm-up and timed steps of the speed measurement behind a time budget
CALIBRATION_STEPS = (1, 3)
#: share of the budget kept free for validation passes and the final copy
BUDGET_MARGIN = 0.03


@dataclass(frozen=True)
class Progress:
    """One report to the progress callback."""

    phase: str  # "calibrating", "training", "validated", "done"
    iteration: int
    iterations: int  # the current plan
    epoch: int
    loss: float | None
    lr: float
    elapsed_s: float
    dice: float | None = None  # validation Dice (phase "validated")
    best_dice: float | None = None


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    iteration: int
    loss: float  # mean training loss over the epoch
    dice: float | None  # validation Dice after it
    lr: float
    elapsed_s: float


@dataclass
class TrainingResult:
    """A trained network and how it was made."""

    model: torch.nn.Module  # evaluation mode, the best weights
    state_dict: dict[str, torch.Tensor]
    pipeline: SegmentationPipeline
    history: list[EpochRecord]
    best: EpochRecord | None
    training_slices: list[int]
    validation_slices: list[int]
    normalization: tuple[float, float] | None
    voxel_size_nm: tuple[float, float, float]  # of the data
    model_voxel_size_nm: tuple[float, float, float]
    factors: tuple[float, float, float]
    iterations: int  # made
    plan: list[tuple[int, int]]  # revisions of the planned total: (at iteration, total)
    stopped_by: str  # "iterations" or "time"
    seconds: float
    threads: int
    device: str
    precision: str
    seed: int
    parent: dict[str, Any] | None = None
    calibration_s_per_iteration: float | None = None
    sample: np.ndarray | None = field(default=None, repr=False)  # raw model-grid input from the training data
    started_at: str = ""  # ISO 8601, UTC
    finished_at: str = ""


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise SegmentationError("fp16 training needs a GPU", field="training.precision",
                                    expected="auto, fp32 or bf16 on CPU", found=precision)
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def lr_at(pipeline: SegmentationPipeline, iteration: int, total: int) -> float:
    """Learning rate at ``iteration`` of ``total`` under the pipeline's schedule."""
    opt = pipeline.optimizer
    p = min(1.0, iteration / max(total, 1))
    low = opt.lr * opt.final_lr
    if opt.schedule == "constant":
        return opt.lr
    warm = opt.warmup if opt.schedule == "one-cycle" else 0.0
    if p < warm:
        return opt.lr * (0.1 + 0.9 * p / warm)
    q = (p - warm) / max(1e-12, 1 - warm)
    return low + (opt.lr - low) * 0.5 * (1 + math.cos(math.pi * q))


def masked_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                pipeline: SegmentationPipeline) -> torch.Tensor:
    """Weighted BCE + soft Dice over annotated voxels only (weight 0 elsewhere)."""
    logits = logits.float()
    total = weight.sum().clamp_min(1.0)
    loss = logits.new_zeros(())
    if pipeline.loss.bce:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        loss = loss + pipeline.loss.bce * (bce * weight).sum() / total
    if pipeline.loss.dice:
        p = torch.sigmoid(logits)
        inter = (weight * p * target).sum()
        denom = (weight * p).sum() + (weight * target).sum()
        loss = loss + pipeline.loss.dice * (1 - (2 * inter + 1.0) / (denom + 1.0))
    return loss


def _optimizer(pipeline: SegmentationPipeline, params) -> torch.optim.Optimizer:
    opt = pipeline.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay, nesterov=True)
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(params, lr=opt.lr, weight_decay=opt.weight_decay)


def train(pipeline: SegmentationPipeline, image: Any, labels: Any, annotated: Sequence[int] | Mapping[str, Any],
          voxel_size_nm: Sequence[float], *, init: Mapping[str, Any] | None = None, device: str = "cpu",
          plan: Sequence[tuple[int, int]] | None = None, threads: int | None = None,
          on_progress: Callable[[Progress], None] | None = None) -> TrainingResult:
    """Train the pipeline's network (see the module doc).

    ``init``: fine-tune from these weights (``{"state_dict": ..., "parent": {...}}``, e.g.
    from :func:`curation.segmentation.package.load_model`); the architecture must match.
    ``plan``: repeat a recorded run's iteration plan instead of fitting one to the clock.
    ``threads``: CPU threads (default: the pipeline's; 0 there means the faster of one and
    every core, measured at the start). Pass a recorded run's ``threads`` with its ``plan``
    to repeat it bit for bit.
    """
    started = time.perf_counter()
    started_at = now_iso()
    cfg = pipeline.training
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SegmentationError("no CUDA device is available", field="--device", expected="cpu", found=device)
    precision = resolve_precision(cfg.precision, dev)
    material = prepare(pipeline, image, labels, annotated, voxel_size_nm)
    threads = int(threads or cfg.threads or 0)
    candidates = [threads] if threads else sorted({1, os.cpu_count() or 1})
    with _torch_threads(candidates[-1]):
        torch.manual_seed(cfg.seed)
        model = build_network(pipeline.architecture)
        parent = None
        if init is not None:
            parent = dict(init.get("parent") or {})
            try:
                model.load_state_dict(init["state_dict"], strict=True)
            except RuntimeError as exc:
                raise TrainingDataError("the initial model's weights do not fit this pipeline's architecture",
                                        field="--init", expected=pipeline.architecture.kwargs(),
                                        found=" ".join(str(exc).split())[:200]) from None
        # channels-last layouts: oneDNN's and cuDNN's fastest convolutions (3x on this CPU with bf16)
        layout = torch.channels_last if pipeline.architecture.spatial_dims == 2 else torch.channels_last_3d
        model = model.to(dev).to(memory_format=layout)
        runner = _Runner(pipeline, model, material, dev, precision, layout)
        per_it = val_s = None
        if len(candidates) > 1 or (cfg.max_minutes is not None and not plan):
            # the fastest thread count now (a busy machine can make one thread beat two), and
            # the speed the time budget is fitted to
            timings = {n: runner.calibrate(n) for n in candidates}
            threads = min(timings, key=lambda n: timings[n][0])
            per_it, val_s = timings[threads]
        threads = threads or candidates[0]
        torch.set_num_threads(threads)
        if plan:
            total, planned = int(plan[0][1]), [tuple(p) for p in plan]
        elif cfg.max_minutes is not None:
            assert per_it is not None and val_s is not None
            budget = cfg.max_minutes * 60 * (1 - BUDGET_MARGIN) - (time.perf_counter() - started)
            epochs_guess = budget / max(per_it * cfg.validation.every + val_s, 1e-9)
            total = max(1, int((budget - epochs_guess * val_s) / per_it))
            if cfg.iterations is not None:
                total = min(total, cfg.iterations)
            planned = [(0, total)]
        else:
            assert cfg.iterations is not None
            total, planned = cfg.iterations, [(0, cfg.iterations)]
        result = runner.run(total, planned, replay=bool(plan), started=started, on_progress=on_progress)
    result.parent = parent
    result.threads, result.device, result.precision = threads, str(dev), precision
    result.calibration_s_per_iteration = per_it
    result.voxel_size_nm = tuple(float(v) for v in voxel_size_nm)  # type: ignore[assignment]
    result.model_voxel_size_nm = model_voxel_size(voxel_size_nm, material.factors)
    result.sample = _raw_sample(material)
    result.seconds = time.perf_counter() - started
    result.started_at, result.finished_at = started_at, now_iso()
    return result


def _raw_sample(material: Material, edge: int = 512) -> np.ndarray:
    """A centre crop of the first training slab with its normalisation undone (the test tile
    of the model package is cut from it)."""
    image = material.train[0].image
    sl = tuple(slice(max(0, (n - edge) // 2), max(0, (n - edge) // 2) + edge) for n in image.shape)
    crop = image[sl]
    if material.normalization is None:
        return crop.copy()
    lo, hi = material.normalization
    return (crop.astype(np.float64) * (hi - lo) + lo).astype(np.float32)


class _Runner:
    def __init__(self, pipeline: SegmentationPipeline, model: torch.nn.Module, material: Material,
                 device: torch.device, precision: str, layout: torch.memory_format) -> None:
        self.pipeline, self.model, self.material = pipeline, model, material
        self.device, self.precision, self.layout = device, precision, layout
        self.rng = np.random.default_rng(pipeline.training.seed)
        self.sampler = PatchSampler(material.train, pipeline, self.rng)
        self.optimizer = _optimizer(pipeline, model.parameters())
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.layout)

    def step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch) -> float:
        x, t, w = (self._to(a) for a in batch)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = model(x)
        loss = masked_loss(logits, t, w, self.pipeline)
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return float(loss.detach())

    def calibrate(self, threads: int) -> tuple[float, float]:
        """Seconds per iteration and per validation pass with ``threads`` threads, on
        throwaway copies (the run's own random streams are not touched)."""
        torch.set_num_threads(threads)
        model = copy.deepcopy(self.model)
        optimizer = _optimizer(self.pipeline, model.parameters())
        sampler = PatchSampler(self.material.train, self.pipeline, np.random.default_rng(2**32 - 1))
        warm, timed = CALIBRATION_STEPS
        for _ in range(warm):
            self.step(model, optimizer, sampler.batch(self.pipeline.training.batch))
        t0 = time.perf_counter()
        for _ in range(timed):
            self.step(model, optimizer, sampler.batch(self.pipeline.training.batch))
        per_it = (time.perf_counter() - t0) / timed
        t1 = time.perf_counter()
        if self.material.validation:
            self.validate(model)
        return per_it, time.perf_counter() - t1

    def validate(self, model: torch.nn.Module) -> float | None:
        if not self.material.validation:
            return None
        model.eval()
        predictor = Predictor(model, batch=self.pipeline.inference.batch, device=str(self.device),
                              precision="bf16" if self.precision == "bf16" else "fp32")
        inter = p_sum = t_sum = 0.0
        for slab in self.material.validation:
            prob, z = _predict_slab(self.pipeline, predictor, slab)
            w = slab.weight[z] > 0.5
            pred = prob >= self.pipeline.inference.threshold
            truth = slab.target[z] > 0.5
            inter += float(np.count_nonzero(pred & truth & w))
            p_sum += float(np.count_nonzero(pred & w))
            t_sum += float(np.count_nonzero(truth & w))
        model.train()
        return dice(inter, p_sum, t_sum)

    def run(self, total: int, planned: list, *, replay: bool, started: float,
            on_progress: Callable[[Progress], None] | None) -> TrainingResult:
        cfg = self.pipeline.training
        budget_s = None if (replay or cfg.max_minutes is None) else cfg.max_minutes * 60 * (1 - BUDGET_MARGIN)
        revisions = {int(a): int(b) for a, b in planned[1:]} if replay else {}
        history: list[EpochRecord] = []
        best: EpochRecord | None = None
        best_state = None
        losses: list[float] = []
        stopped_by = "iterations"
        it = 0
        lr = lr_at(self.pipeline, 0, total)
        self.model.train()

        def report(phase: str, loss: float | None, d: float | None = None) -> None:
            if on_progress is not None:
                on_progress(Progress(phase, it, total, len(history), loss, lr, time.perf_counter() - started, d,
                                     best.dice if best else None))

        while it < total:
            if it in revisions:
                total = revisions[it]
                if it >= total:
                    break
            lr = lr_at(self.pipeline, it, total)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = self.step(self.model, self.optimizer, self.sampler.batch(cfg.batch))
            if not math.isfinite(loss):
                raise SegmentationError("training diverged: the loss is not finite", field="optimizer.lr",
                                        found=loss, hint="lower the learning rate")
            losses.append(loss)
            it += 1
            report("training", loss)
            out_of_time = budget_s is not None and time.perf_counter() - started >= budget_s
            if it % cfg.validation.every == 0 or it == total or out_of_time:
                d = self.validate(self.model)
                rec = EpochRecord(len(history) + 1, it, float(np.mean(losses)), d, lr, time.perf_counter() - started)
                history.append(rec)
                losses = []
                if best is None or (d is not None and (best.dice is None or d > best.dice)) or d is None:
                    best = rec
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                report("validated", rec.loss, d)
                if budget_s is not None and it < total:
                    elapsed = time.perf_counter() - started
                    if out_of_time or elapsed >= budget_s:
                        stopped_by = "time"
                        planned.append((it, it))  # a replay stops here too
                        break
                    projected = elapsed + (total - it) * (elapsed / it) * 1.0
                    if projected > budget_s * 1.02:
                        new_total = max(it + 1, int(it + (budget_s - elapsed) / (elapsed / it)))
                        if new_total < total:
                            total = new_total
                            planned.append((it, total))
        if it < total and stopped_by != "time":
            stopped_by = "iterations"
        if best_state is None:  # stopped before the first epoch ended
            best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(best_state)
        self.model.eval()
        model = self.model.to(memory_format=torch.contiguous_format)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        self.model = model
        report("done", None)
        m = self.material
        return TrainingResult(model, state, self.pipeline, history, best, m.training_slices, m.validation_slices,
                              m.normalization, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), m.factors, it, list(planned),
                              stopped_by, 0.0, 0, str(self.device), self.precision, self.pipeline.training.seed)


def _predict_slab(pipeline: SegmentationPipeline, predictor: Predictor, slab: Slab) -> tuple[np.ndarray, int]:
    """Probability of a validation slab's annotated plane (model grid, tiles as in prediction);
    returns (plane, its index in the slab's target)."""
    shape = slab.image.shape
    if pipeline.architecture.dims == "3d":
        z = int(np.argmax(slab.weight.reshape(slab.weight.shape[0], -1).sum(axis=1)))
        region = [(z, z + 1), (0, shape[1]), (0, shape[2])]
    else:
        k = pipeline.architecture.context_slices
        z, region = 0, [(k, k + 1), (0, shape[1]), (0, shape[2])]
    return predict_model_region(pipeline, predictor, slab.image, region)[0], z


__all__ = ["EpochRecord", "InferencePlan", "Progress", "TrainingResult", "lr_at", "masked_loss", "train"]
