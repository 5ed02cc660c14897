"""A segmentation pipeline: what to train, how, and how to predict (``pipelines/*.yaml``).

One frozen pydantic model, :class:`SegmentationPipeline`, declares everything a training run
and a prediction depend on, so that a model card can record it whole and a prediction can be
repeated from it. The JSON Schema of the model is ``schemas/pipeline.schema.json``.

Sizes (patch, tile, halo, overlap) are in voxels of the *model grid*: the volume resampled
to ``resampling.voxel_size_nm``. Axes are always (z, y, x); a 2D pipeline gives (y, x).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import PipelineError
from ..safeyaml import load_yaml, read_yaml

SCHEMA_VERSION = "1.0.0"
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class Target(_Model):
    """What is segmented."""

    name: str = Field(min_length=1, max_length=128)
    """What the foreground is, in words (``mitochondria``)."""
    foreground: list[Annotated[int, Field(ge=0)]] | Literal["nonzero"] = "nonzero"
    """Label values that count as foreground; every other annotated value is background.
    ``nonzero``: every value but 0. Unannotated voxels never count."""


class Architecture(_Model):
    """The network: a U-Net (``curation/segmentation/unet.py``)."""

    kind: Literal["unet"] = "unet"
    dims: Literal["2d", "2.5d", "3d"]
    """2d: one slice at a time; 2.5d: the slice and ``context_slices`` neighbours on each side
    as channels; 3d: volumes."""
    context_slices: Annotated[int, Field(ge=0, le=8)] = 0
    """2.5d only: neighbouring slices on each side fed as channels."""
    width: Annotated[int, Field(ge=2, le=256)] = 16
    """Channels of the top level."""
    depth: Annotated[int, Field(ge=1, le=6)] = 4
    """Levels (resolutions) of the U-Net."""
    growth: Annotated[int, Field(ge=1, le=4)] = 2
    """Channel factor from one level to the next."""
    norm: Literal["batch", "none"] = "batch"
    """BatchNorm (a fixed affine map at prediction, so tiles do not change the result) or none."""

    @property
    def spatial_dims(self) -> int:
        return 3 if self.dims == "3d" else 2

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1 if self.dims == "2.5d" else 1

    @property
    def multiple(self) -> int:
        """Patch and tile sizes, and tile origins, are multiples of this."""
        return size_multiple(self.depth)

    @property
    def receptive_radius(self) -> int:
        return receptive_radius(self.depth)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`curation.segmentation.unet.UNet`."""
        return {"dims": self.spatial_dims, "in_channels": self.in_channels, "out_channels": 1,
                "width": self.width, "depth": self.depth, "growth": self.growth, "norm": self.norm}

    @model_validator(mode="after")
    def _context(self) -> Architecture:
        if self.dims == "2.5d" and self.context_slices < 1:
            raise ValueError("a 2.5d network needs context_slices >= 1 (neighbours on each side)")
        if self.dims != "2.5d" and self.context_slices:
            raise ValueError(f"context_slices applies to 2.5d networks only, not {self.dims}")
        return self


class Normalization(_Model):
    """How raw intensities become network input."""

    method: Literal["percentiles", "none"] = "percentiles"
    """percentiles: map the ``low`` and ``high`` percentiles to 0 and 1 (robust to outliers);
    none: use the values as they are (as float32)."""
    low: Annotated[float, Field(ge=0, lt=100)] = 1.0
    high: Annotated[float, Field(gt=0, le=100)] = 99.5
    reference: Literal["input", "training"] = "input"
    """At prediction: percentiles of the volume being segmented (input), or the values the
    training volume had (recorded in the model card)."""

    @model_validator(mode="after")
    def _order(self) -> Normalization:
        if self.high <= self.low:
            raise ValueError(f"high percentile {self.high} must exceed low {self.low}")
        return self


class VoxelSize(_Model):
    """A voxel size in nanometres; an axis left out keeps the data's own size."""

    z: Annotated[float, Field(gt=0)] | None = None
    y: Annotated[float, Field(gt=0)] | None = None
    x: Annotated[float, Field(gt=0)] | None = None

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        return (self.z, self.y, self.x)


class Resampling(_Model):
    """The voxel size the network works at; data of another size are resampled to it and
    predictions resampled back."""

    voxel_size_nm: VoxelSize = VoxelSize()
    tolerance: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Relative difference under which no resampling happens; a factor this close to a whole
    number becomes that number (so 5.9 nm data at a 12 nm target are binned 2x exactly)."""


class Loss(_Model):
    """Weights of the loss terms; only annotated voxels count in either."""

    bce: Annotated[float, Field(ge=0)] = 1.0
    """Binary cross-entropy."""
    dice: Annotated[float, Field(ge=0)] = 1.0
    """Soft Dice loss over the batch."""

    @model_validator(mode="after")
    def _some(self) -> Loss:
        if self.bce == 0 and self.dice == 0:
            raise ValueError("at least one of bce and dice must have a weight above 0")
        return self


class Optimizer(_Model):
    """Optimiser and learning-rate schedule (fitted to the iterations the run will make)."""

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: Annotated[float, Field(gt=0, le=10)] = 2e-3
    """Peak learning rate."""
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    momentum: Fraction = 0.9
    """SGD only."""
    schedule: Literal["one-cycle", "cosine", "constant"] = "one-cycle"
    """one-cycle: linear warm-up, then cosine decay to ``final_lr`` x lr at the last iteration;
    cosine: the same without warm-up; constant: lr throughout."""
    warmup: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """Fraction of the iterations spent warming up (one-cycle)."""
    final_lr: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Learning rate at the end, as a fraction of ``lr``."""


class Validation(_Model):
    """Annotated slices held out to choose the best checkpoint."""

    slices: Literal["farthest"] | list[Annotated[int, Field(ge=0)]] = "farthest"
    """farthest: the annotated slices farthest from the other annotated slices (neighbouring
    slices flatter a model); or the slice indices to hold out."""
    count: Annotated[int, Field(ge=0, le=64)] = 1
    """How many slices ``farthest`` holds out (0: no validation; the last weights are kept)."""
    every: PositiveInt = 200
    """Iterations per epoch: validation Dice is measured after each."""


class Training(_Model):
    """The training run."""

    patch: list[PositiveInt] = Field(min_length=2, max_length=3)
    """Patch size in model-grid voxels: (y, x) for 2d and 2.5d, (z, y, x) for 3d."""
    batch: Annotated[int, Field(ge=1, le=1024)] = 8
    iterations: PositiveInt | None = 10000
    """Optimiser steps; with ``max_minutes`` too, whichever comes first."""
    max_minutes: Annotated[float, Field(gt=0)] | None = None
    """Time budget: the run measures its speed, fits the iterations (and the learning-rate
    schedule) to the budget, and records the iterations it made so a rerun can repeat them."""
    seed: Annotated[int, Field(ge=0)] = 0
    threads: Annotated[int, Field(ge=0, le=1024)] = 0
    """CPU threads (0: the faster of one thread and every core, measured at the start; on a
    busy machine one thread can beat two). Results are deterministic for a seed and a thread
    count, and the count used is recorded."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision of the forward pass (weights stay fp32). auto: bf16 where the CPU or
    GPU runs it natively, else fp32."""
    foreground_crops: Fraction = 0.5
    """Fraction of patches centred on a foreground voxel (the rest on any annotated voxel)."""
    validation: Validation = Validation()

    @model_validator(mode="after")
    def _stop(self) -> Training:
        if self.iterations is None and self.max_minutes is None:
            raise ValueError("give iterations, max_minutes or both: training needs a stopping point")
        return self


class Intensity(_Model):
    """Random intensity changes, after normalisation."""

    scale: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Contrast: multiply by a factor in [1 - scale, 1 + scale]."""
    shift: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Brightness: add a value in [-shift, shift]."""
    gamma: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Raise to a power in [1 - gamma, 1 + gamma] (on values clipped to [0, 1])."""


class Affine(_Model):
    """Random rotation (in the slice plane) and scaling."""

    rotate_deg: Annotated[float, Field(ge=0, le=180)] = 180.0
    scale: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    probability: Fraction = 0.5


class Elastic(_Model):
    """Random smooth deformation: displacements on a coarse grid, interpolated."""

    magnitude: Annotated[float, Field(ge=0, le=64)] = 4.0
    """Standard deviation of the displacement, in voxels."""
    spacing: Annotated[int, Field(ge=4, le=512)] = 32
    """Distance between control points, in voxels."""
    probability: Fraction = 0.3


class Augmentation(_Model):
    """Random changes to each training patch (geometry changes apply to labels as well)."""

    flips: bool = True
    """Mirror along each axis of the patch."""
    rotate90: bool = True
    """Rotate by multiples of 90 degrees in the slice plane (and swap axes of isotropic 3D patches)."""
    intensity: Intensity | None = Intensity()
    noise: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Standard deviation of added Gaussian noise (normalised units)."""
    affine: Affine | None = None
    elastic: Elastic | None = None


class Inference(_Model):
    """Blockwise prediction."""

    tile: list[PositiveInt] = Field(min_length=2, max_length=3)
    """Network input size in model-grid voxels, halo included: (y, x) or (z, y, x)."""
    halo: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    """Context on each side of a tile that is computed but not used. auto: the network's
    receptive radius, so a tile's prediction equals a prediction of the whole volume."""
    overlap: Annotated[int, Field(ge=0)] = 32
    """Tiles of a block overlap by this much and are blended with a smooth (cosine) weight."""
    batch: Annotated[int, Field(ge=1, le=1024)] = 4
    """Tiles per forward pass."""
    tri_axis: bool = False
    """Tri-axis prediction (TAP): predict along z, y and x and combine the three views."""
    combine: Literal["mean", "vote"] = "mean"
    """TAP: mean of the three probabilities, or 2-of-3 vote of the thresholded views."""
    threshold: Fraction = 0.5
    """Probability at and above which a voxel is foreground."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Forward-pass precision. fp32 on CPU is deterministic for a thread count."""


class SegmentationPipeline(_Model):
    """A segmentation pipeline (``pipelines/NAME.yaml``)."""

    schema_version: Literal["1.0.0"] = SCHEMA_VERSION
    name: str = Field(pattern=_NAME)
    """Short name: lower case letters, digits, ``.``, ``_``, ``-``."""
    description: str = Field(min_length=1, max_length=2000)
    target: Target
    architecture: Architecture
    normalization: Normalization = Normalization()
    resampling: Resampling = Resampling()
    loss: Loss = Loss()
    optimizer: Optimizer = Optimizer()
    training: Training
    augmentation: Augmentation = Augmentation()
    inference: Inference
    intended_use: str = ""
    """What the model is for, in words (copied into the model card)."""
    limitations: str = ""
    """What it is known not to do well (copied into the model card)."""

    @model_validator(mode="after")
    def _shapes(self) -> SegmentationPipeline:
        arch = self.architecture
        nd, m = arch.spatial_dims, arch.multiple
        for field, sizes in (("training.patch", self.training.patch), ("inference.tile", self.inference.tile)):
            if len(sizes) != nd:
                raise ValueError(f"{field} must give {nd} sizes for a {arch.dims} network "
                                 f"({'z, y, x' if nd == 3 else 'y, x'}), not {len(sizes)}")
            bad = [s for s in sizes if s % m]
            if bad:
                raise ValueError(f"{field} sizes must be multiples of {m} for a U-Net of depth {arch.depth}, "
                                 f"not {bad}")
        core = min(self.inference.tile) - 2 * self.halo
        if core < max(m, self.inference.overlap + 1):
            raise ValueError(f"inference.tile {self.inference.tile} leaves no room inside a halo of {self.halo} "
                             f"and an overlap of {self.inference.overlap}: use larger tiles or a smaller halo")
        if self.inference.tri_axis:
            vs = self.resampling.voxel_size_nm.as_tuple()
            if any(v is None for v in vs) or not math.isclose(min(vs), max(vs), rel_tol=1e-6):  # type: ignore[type-var]
                raise ValueError("tri-axis prediction needs an isotropic resampling.voxel_size_nm with z, y and "
                                 f"x given (the three views must see the same voxels), found {vs}")
            if nd == 3 and len(set(self.inference.tile)) != 1:
                raise ValueError("tri-axis prediction with a 3d network needs a cubic inference.tile")
        if self.inference.combine == "vote" and not self.inference.tri_axis:
            raise ValueError("inference.combine 'vote' needs tri_axis: true (it votes among three views)")
        return self

    @property
    def halo(self) -> int:
        """The halo in model-grid voxels (``auto`` resolved, a multiple of the size multiple)."""
        arch = self.architecture
        h = arch.receptive_radius if self.inference.halo == "auto" else int(self.inference.halo)
        return -(-h // arch.multiple) * arch.multiple


def size_multiple(depth: int) -> int:
    """Spatial sizes and tile origins of a U-Net of ``depth`` levels are multiples of this
    (the same rule as ``architectures/unet_v1.py``, kept here so pipelines load without torch)."""
    return 2 ** (depth - 1)


def receptive_radius(depth: int) -> int:
    """How far the output of a U-Net of ``depth`` levels sees, each side (an upper bound; the
    same rule as ``architectures/unet_v1.py``)."""
    radius = 0
    for level in range(depth):
        scale = 2**level
        radius += 2 * scale
        if level < depth - 1:
            radius += 4 * scale
    return radius


# --- reading ---------------------------------------------------------------------------------


def pipelines_dir() -> Path:
    """The pipelines shipped with curation (``pipelines/`` beside the package)."""
    return Path(__file__).resolve().parents[2] / "pipelines"


def pipeline_from_dict(doc: Any, *, path: str | Path | None = None) -> SegmentationPipeline:
    """Validate a parsed document; a PipelineError names the first wrong field."""
    if not isinstance(doc, dict):
        raise PipelineError("a segmentation pipeline is a mapping of fields", path=path,
                            expected="name, description, target, architecture, training, inference ...",
                            found=type(doc).__name__)
    try:
        return SegmentationPipeline.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        found = err.get("input") if err["type"] != "missing" else None
        if isinstance(found, (dict, list)):
            found = None
        raise PipelineError(err["msg"].removeprefix("Value error, ") + more, path=path, field=field,
                            found=found) from None


def load_pipeline(source: str | Path) -> SegmentationPipeline:
    """A pipeline from a YAML file, or by name from the shipped ``pipelines/`` folder."""
    path = Path(source)
    if not path.suffix and re.match(_NAME, str(source)) and not path.exists():
        shipped = pipelines_dir() / f"{source}.yaml"
        if not shipped.is_file():
            names = sorted(p.stem for p in pipelines_dir().glob("*.yaml"))
            raise PipelineError("no such pipeline", field="--pipeline", expected=" | ".join(names) or "a YAML file",
                                found=str(source))
        path = shipped
    return pipeline_from_dict(read_yaml(path, error=PipelineError), path=path)


def parse_pipeline(text: str, *, path: str | Path | None = None) -> SegmentationPipeline:
    """A pipeline from YAML text."""
    return pipeline_from_dict(load_yaml(text, path=path, error=PipelineError), path=path)


def with_overrides(pipeline: SegmentationPipeline, overrides: dict[str, Any]) -> SegmentationPipeline:
    """A copy with dotted fields replaced (``{"training.seed": 3, "training.max_minutes": 5}``),
    validated again."""
    doc = pipeline.model_dump(mode="json")
    for dotted, value in overrides.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise PipelineError("no such pipeline field", field=dotted)
            node = node[key]
        if leaf not in node:
            raise PipelineError("no such pipeline field", field=dotted)
        node[leaf] = value
    return pipeline_from_dict(doc)


def pipeline_yaml(pipeline: SegmentationPipeline) -> str:
    """The pipeline as YAML (every field, defaults included)."""
    import yaml

    return yaml.safe_dump(pipeline.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
