"""Pipeline step kinds of the analysis package: ``analyze``, ``evaluate`` and ``learning-curve``.

::

    - analyze:
        layer: pores@v1            # the objects: ground truth today, a model's prediction tomorrow
        within: envelope@v3
        per: nucleus@v1
        preset: nuclear-pore
        expect: phantom            # compare with the phantom's known count, diameter, density
    - evaluate: {prediction: pores-predicted@v1, truth: pores@v1, binary: true}
    - learning-curve: {labels: envelope@v2, pipeline: nuclear-envelope-tap, slices: [1, 2], repeats: 2,
                       iterations: 20, add: 2}

``expect: phantom`` takes the pipeline's phantom as the truth: its number of pores, their
diameter and their density per µm² of envelope, with the tolerances of ``tolerance``
(count in pores; diameter and density relative).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import PipelineError
from ..pipelines.registry import RunContext, StepParams, step_kind
from ..records import Result


class Tolerance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    count: int = Field(0, ge=0)
    diameter: float = Field(0.05, ge=0)
    density: float = Field(0.05, ge=0)


class AnalyzeParams(StepParams):
    layer: str
    within: str | None = None
    per: str | None = None
    preset: Literal["nuclear-pore", "mitochondrion", "vesicle"] | None = None
    min_size_nm3: float | None = Field(None, ge=0)
    connectivity: Literal[6, 18, 26] = 26
    select: list[int] | None = None
    within_rule: Literal["majority", "any", "all"] | None = None
    within_margin_nm: float | None = Field(None, ge=0)
    per_mode: Literal["instances", "components"] | None = None
    per_margin_nm: float | None = Field(None, ge=0)
    surface: Literal["mesh", "faces"] | None = None
    output: str | None = None
    #: "phantom": the pipeline's phantom is the truth the result is compared with
    expect: Literal["phantom"] | None = None
    tolerance: Tolerance = Tolerance()
    note: str = ""


def phantom_expectation(phantom, tol: Tolerance):
    """What the phantom was made of, as an Expectation."""
    from ..provenance.analysis import Expectation

    spec = phantom.spec
    density = phantom.n_pores / phantom.envelope_area_um2 if phantom.envelope_area_um2 > 0 else None
    return Expectation(
        source=f"the phantom's truth (seed {spec.seed}: {phantom.n_pores} pores {spec.pore_diameter_nm:g} nm wide "
               f"on {phantom.envelope_area_um2:.3f} µm² of envelope)",
        count=phantom.n_pores, diameter_nm=spec.pore_diameter_nm, density_per_um2=density,
        count_tolerance=tol.count, diameter_tolerance=tol.diameter, density_tolerance=tol.density)


@step_kind("analyze", AnalyzeParams)
def analyze_step(p: AnalyzeParams, ctx: RunContext) -> list[Result]:
    """Find, measure and store the objects of a label version (per parent, within a mask)."""
    from .run import analyze

    expected = None
    if p.expect == "phantom":
        if ctx.phantom is None:
            raise PipelineError("expect: phantom needs a pipeline with a phantom", field="analyze.expect")
        expected = phantom_expectation(ctx.phantom, p.tolerance)
    return analyze(ctx.archive, ctx.acquisition, p.layer, within=p.within, per=p.per, preset_name=p.preset,
                   min_size_nm3=p.min_size_nm3, connectivity=p.connectivity, select=p.select,
                   within_rule=p.within_rule, within_margin_nm=p.within_margin_nm, per_mode=p.per_mode,
                   per_margin_nm=p.per_margin_nm, surface=p.surface, output=p.output, expected=expected, note=p.note)


class EvaluateParams(StepParams):
    prediction: str
    truth: str
    iou_threshold: float = Field(0.5, gt=0, le=1)
    binary: bool = False
    hausdorff: bool = True
    connectivity: Literal[6, 18, 26] = 26
    note: str = ""


@step_kind("evaluate", EvaluateParams)
def evaluate_step(p: EvaluateParams, ctx: RunContext) -> list[Result]:
    """Score a prediction against ground truth (Dice per value, instance F1, HD95) and store it."""
    from .evaluate import evaluate

    return evaluate(ctx.archive, ctx.acquisition, p.prediction, p.truth, iou_threshold=p.iou_threshold,
                    binary=p.binary, hausdorff=p.hausdorff, connectivity=p.connectivity, note=p.note)


class LearningCurveParams(StepParams):
    labels: str  # LAYER@vN ground truth
    pipeline: str  # a shipped segmentation pipeline's name, or a YAML file (relative to the pipeline file)
    slices: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    repeats: int = Field(3, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    iterations: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)
    add: int | None = Field(None, ge=1)
    held_out: int | None = Field(None, ge=1)
    gap: int = Field(0, ge=0)
    max_candidates: int = Field(64, ge=1)
    #: dotted pipeline fields replaced (a tiny network for the demo)
    overrides: dict[str, Any] = Field(default_factory=dict)
    threads: int | None = Field(None, ge=1)
    note: str = ""


@step_kind("learning-curve", LearningCurveParams)
def learning_curve_step(p: LearningCurveParams, ctx: RunContext) -> list[Result]:
    """Measure how the held-out Dice grows with the number of annotated training slices."""
    from .experiment import learning_curve

    pipeline = p.pipeline
    if pipeline.endswith((".yaml", ".yml")):
        pipeline = str(ctx.path(pipeline))
    return learning_curve(ctx.archive, ctx.acquisition, p.labels, pipeline=pipeline, slices=p.slices,
                          repeats=p.repeats, max_minutes=p.max_minutes, iterations=p.iterations, seed=p.seed,
                          add=p.add, held_out=p.held_out, gap=p.gap, max_candidates=p.max_candidates,
                          overrides=p.overrides, threads=p.threads, note=p.note)
