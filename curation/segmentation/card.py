"""The curation model card: how a model was made, in the ``config.curation`` section of its
bioimage.io RDF.

:class:`ModelCard` is a frozen, versioned pydantic model (``schemas/model_card.schema.json``).
It names the training data down to commits and tree checksums, holds the whole pipeline
(every hyperparameter), the seed, thread count, iteration plan and device of the run, the
validation slices and Dice per epoch, the software that ran, the parent model of a
fine-tuning, and the sha256 of every file of the package, so a card that does not match its
files is refused on loading.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .pipeline import SegmentationPipeline

CARD_SCHEMA_VERSION = "1.0.0"
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
VoxelSize3 = tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class DataSource(_Model):
    """Where the training data live, as the archive recorded them (the caller supplies these)."""

    archive: str
    """The archive: its DataLad dataset id, or its path when it has none."""
    archive_commit: str | None = None
    acquisition: str
    acquisition_commit: str | None = None
    """Commit of the acquisition's dataset the image was read at."""
    image_tree_checksum: str | None = None
    """Tree checksum of the image (level 0) as recorded at ingest."""
    label_layer: str
    label_version: Annotated[int, Field(ge=1)]
    label_commit: str | None = None
    label_tree_checksum: str | None = None

    @property
    def label_address(self) -> str:
        return f"{self.label_layer}@v{self.label_version}"


class TrainingData(_Model):
    """What the network saw."""

    source: DataSource
    shape: tuple[int, int, int]
    """Image shape (z, y, x) in voxels."""
    voxel_size_nm: VoxelSize3
    """Of the image (z, y, x)."""
    annotated_slices: list[int]
    training_slices: list[int]
    validation_slices: list[int]
    normalization_values: tuple[float, float] | None
    """Intensities at the low and high percentiles of the training volume (0 and 1 after
    normalisation); None when the pipeline does not normalise."""


class EpochMetric(_Model):
    epoch: int
    iteration: int
    loss: float
    """Mean training loss over the epoch."""
    dice: float | None
    """Validation Dice after the epoch (None without validation)."""
    lr: float
    elapsed_s: float


class Validation(_Model):
    """How the checkpoint was chosen and how well it did on held-out slices."""

    slices: list[int]
    selection: Literal["farthest", "given", "none"]
    metric: Literal["dice"] = "dice"
    threshold: float
    best_dice: float | None
    best_epoch: int | None
    best_iteration: int | None
    epochs: list[EpochMetric]


class TrainingRun(_Model):
    """The run, enough to repeat it: ``plan`` and ``threads`` make a rerun bit-identical on the
    same device and software."""

    seed: int
    threads: int
    device: str
    device_name: str
    precision: str
    iterations: int
    plan: list[tuple[int, int]]
    """Revisions of the planned total iterations: (at iteration, total)."""
    stopped_by: Literal["iterations", "time"]
    max_minutes: float | None
    seconds: float
    """Wall time of the training call."""
    calibration_s_per_iteration: float | None
    started: str
    finished: str


class ParentModel(_Model):
    """The model a fine-tuning started from."""

    name: str
    version: int | None = None
    weights_sha256: Sha256

    @property
    def address(self) -> str:
        return f"{self.name}@v{self.version}" if self.version else self.name


class Software(_Model):
    curation: str
    code_commit: str | None
    """git commit of the curation code, ``+dirty`` when it had uncommitted changes."""
    python: str
    torch: str
    numpy: str
    bioimageio_spec: str | None
    platform: str
    cpu: str


class PackageFiles(_Model):
    """The package's files and their sha256 (loading refuses any mismatch)."""

    weights: str
    weights_sha256: Sha256
    architecture: str
    architecture_sha256: Sha256
    test_input: str
    test_input_sha256: Sha256
    test_output: str
    test_output_sha256: Sha256


class ModelCard(_Model):
    """A trained segmentation model, readable without code."""

    schema_version: Literal["1.0.0"] = CARD_SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: Annotated[int, Field(ge=1)] | None = None
    """``MODEL@vN`` once stored in an archive's models dataset."""
    description: str
    created: str
    creator: str | None = None
    pipeline: SegmentationPipeline
    """The pipeline as run, every hyperparameter included."""
    model_voxel_size_nm: VoxelSize3
    """The voxel size the network works at (z, y, x)."""
    training_data: TrainingData
    training: TrainingRun
    validation: Validation
    intended_use: str
    limitations: str
    parent: ParentModel | None = None
    software: Software
    files: PackageFiles


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def code_commit() -> str | None:
    """The git commit of the curation code, with ``+dirty`` for uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", "curation"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def software() -> Software:
    import torch

    from .. import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Software(curation=__version__, code_commit=code_commit(), python=platform.python_version(),
                    torch=torch.__version__, numpy=np.__version__, bioimageio_spec=_version("bioimageio.spec"),
                    platform=platform.platform(), cpu=cpu)


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return software().cpu


def card_from_training(result: Any, *, name: str, source: DataSource, files: PackageFiles,
                       annotated_slices: list[int], shape: tuple[int, int, int], started: str, finished: str,
                       description: str | None = None, creator: str | None = None, version: int | None = None,
                       parent: ParentModel | None = None) -> ModelCard:
    """The card of a :class:`~curation.segmentation.train.TrainingResult`."""
    p: SegmentationPipeline = result.pipeline
    vcfg = p.training.validation
    selection = "none" if not result.validation_slices else ("farthest" if vcfg.slices == "farthest" else "given")
    best = result.best
    return ModelCard(
        name=name, version=version, description=description or p.description, created=finished, creator=creator,
        pipeline=p, model_voxel_size_nm=result.model_voxel_size_nm,
        training_data=TrainingData(source=source, shape=shape, voxel_size_nm=result.voxel_size_nm,
                                   annotated_slices=annotated_slices, training_slices=result.training_slices,
                                   validation_slices=result.validation_slices,
                                   normalization_values=result.normalization),
        training=TrainingRun(seed=result.seed, threads=result.threads, device=result.device,
                             device_name=device_name(result.device), precision=result.precision,
                             iterations=result.iterations, plan=[tuple(x) for x in result.plan],
                             stopped_by=result.stopped_by, max_minutes=p.training.max_minutes,
                             seconds=round(result.seconds, 3),
                             calibration_s_per_iteration=result.calibration_s_per_iteration,
                             started=started, finished=finished),
        validation=Validation(slices=result.validation_slices, selection=selection, threshold=p.inference.threshold,
                              best_dice=best.dice if best else None, best_epoch=best.epoch if best else None,
                              best_iteration=best.iteration if best else None,
                              epochs=[EpochMetric(epoch=e.epoch, iteration=e.iteration, loss=e.loss, dice=e.dice,
                                                  lr=e.lr, elapsed_s=round(e.elapsed_s, 3)) for e in result.history]),
        intended_use=p.intended_use or "Not stated.", limitations=p.limitations or "Not stated.",
        parent=parent, software=software(), files=files)
