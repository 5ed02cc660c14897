"""The built-in step kinds: one library call each, parameters typed.

Paths in parameters are relative to the pipeline file's folder. Steps that use the
generated phantom (``ingest`` without ``source``, ``labels-import`` with
``ground_truth``) need a pipeline that declares ``phantom``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..errors import PipelineError
from ..records import Result
from .registry import RunContext, StepParams, step_kind


class IngestParams(StepParams):
    #: a file or a folder of slices (default: the phantom's images)
    source: str | None = None
    metadata: str | None = None
    keep_raw: bool = False


@step_kind("ingest", IngestParams)
def ingest_step(p: IngestParams, ctx: RunContext) -> list[Result]:
    """Ingest a source (or the phantom) as the pipeline's acquisition."""
    from ..repository.ingest import ingest
    from ..repository.pyramid import WriteOptions

    if p.source is None:
        if ctx.phantom is None:
            raise PipelineError("ingest needs a source when the pipeline has no phantom", field="ingest.source")
        source, metadata = ctx.phantom.images_dir, ctx.phantom.metadata_path
    else:
        if p.metadata is None:
            raise PipelineError("ingest of a source needs its metadata file", field="ingest.metadata")
        source, metadata = ctx.path(p.source), ctx.path(p.metadata)
    return ingest(ctx.archive, [source], metadata, name=ctx.acquisition, keep_raw=p.keep_raw,
                  options=WriteOptions(progress=ctx.progress))


class LabelsImportParams(StepParams):
    layer: str
    #: a mask folder, TIFF stack or OME-Zarr label image ...
    source: str | None = None
    #: ... or the phantom's ground truth of this structure, on these slices (none given: all)
    ground_truth: Literal["envelope", "pores", "nuclei"] | None = None
    slices: list[int] = Field(default_factory=list)
    names: dict[int, str] = Field(default_factory=dict)
    kind: Literal["ground-truth", "prediction", "consensus"] = "ground-truth"
    note: str = ""
    replace: bool = False


def _gt_subset(ctx: RunContext, which: str, slices: list[int]) -> Path:
    """A folder holding the phantom's ground-truth masks of ``slices`` (named as its images);
    no slices: the phantom's own folder, every slice."""
    if not slices:
        return ctx.phantom.ground_truth_dir / which
    files = sorted((ctx.phantom.ground_truth_dir / which).glob("*.tif"))
    bad = [z for z in slices if not 0 <= z < len(files)]
    if bad:
        raise PipelineError("ground-truth slices outside the phantom", field="labels-import.slices",
                            expected=f"0..{len(files) - 1}", found=bad)
    dest = ctx.workdir / "ground-truth" / f"{which}-{'-'.join(map(str, slices))}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for z in slices:
        shutil.copy2(files[z], dest / files[z].name)
    return dest


@step_kind("labels-import", LabelsImportParams)
def labels_import_step(p: LabelsImportParams, ctx: RunContext) -> list[Result]:
    """Import ground truth as the next version of a layer."""
    from ..labels.importer import import_labels

    if p.ground_truth is not None:
        if ctx.phantom is None:
            raise PipelineError("ground_truth needs a pipeline with a phantom", field="labels-import.ground_truth")
        source = _gt_subset(ctx, p.ground_truth, p.slices)
        slices = None
    elif p.source is not None:
        source, slices = ctx.path(p.source), (p.slices or None)
    else:
        raise PipelineError("labels-import needs a source or ground_truth", field="labels-import")
    return import_labels(ctx.archive, ctx.acquisition, p.layer, source, slices=slices, kind=p.kind,
                         names=p.names or None, note=p.note, replace=p.replace)


class LabelsAggregateParams(StepParams):
    layer: str
    annotations: str
    method: Literal["majority", "staple", "cria"] = "majority"
    band_width_nm: float | None = Field(None, gt=0, le=10_000)
    note: str = ""


@step_kind("labels-aggregate", LabelsAggregateParams)
def labels_aggregate_step(p: LabelsAggregateParams, ctx: RunContext) -> list[Result]:
    """Store the consensus of volunteers' annotations as the next version of a layer."""
    from ..labels.aggregation import aggregate_labels

    return aggregate_labels(ctx.archive, ctx.acquisition, p.layer, ctx.path(p.annotations), method=p.method,
                            band_width_nm=p.band_width_nm, note=p.note)


class LabelsDiffParams(StepParams):
    a: str
    b: str


@step_kind("labels-diff", LabelsDiffParams)
def labels_diff_step(p: LabelsDiffParams, ctx: RunContext) -> list[Result]:
    """Compare two label versions."""
    from ..labels.diff import diff_labels

    return diff_labels(ctx.archive, ctx.acquisition, p.a, p.b)


class MetadataUpdateParams(StepParams):
    file: str
    allow_geometry_change: bool = False
    note: str = ""


@step_kind("metadata-update", MetadataUpdateParams)
def metadata_update_step(p: MetadataUpdateParams, ctx: RunContext) -> list[Result]:
    """Correct the acquisition's metadata."""
    from ..repository.metadata_update import update_metadata

    return update_metadata(ctx.archive, ctx.acquisition, ctx.path(p.file),
                           allow_geometry_change=p.allow_geometry_change, note=p.note)


class VerifyParams(StepParams):
    fast: bool = False


@step_kind("verify", VerifyParams)
def verify_step(p: VerifyParams, ctx: RunContext) -> list[Result]:
    """Verify the acquisition: checksums, tracked files, NGFF, git-annex."""
    from ..repository.verify import verify

    return verify(ctx.archive, ctx.acquisition, fast=p.fast)


class PackageParams(StepParams):
    format: Literal["empiar", "ro-crate", "bagit", "datacite"] = "empiar"
    out: str | None = None
    labels: list[str] | None = None


@step_kind("package", PackageParams)
def package_step(p: PackageParams, ctx: RunContext) -> list[Result]:
    """Package the acquisition for deposit or preservation."""
    from ..packaging import package

    out = ctx.workdir / (p.out or f"deposit-{p.format}")
    return package(ctx.archive, ctx.acquisition, p.format, out, labels=p.labels)
