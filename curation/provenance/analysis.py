"""Details of analysis and evaluation runs (``provenance/runs/analysis-N.json``,
``provenance/runs/evaluation-N.json``): what was asked, what was found, where the
tables, plots and report are.

``AnalysisDetails`` (``curate analyze``): the settings, the counts through the filters,
the size distribution, per-parent statistics, plausibility findings, and, when known
values were given (a phantom's truth, a published count), how the result agrees with
them. ``EvaluationDetails`` (``curate evaluate``): semantic scores per label value and
instance scores (F1 at an IoU threshold, HD95 in nm) of a prediction against ground
truth. Both name their files relative to the acquisition's root.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Part, ZyxFloat

# --- analysis --------------------------------------------------------------------------------------


class AnalysisSettings(Part):
    """What ``curate analyze`` was asked to do, after presets and defaults were applied."""

    layer: str  # LAYER@vN analysed
    within: str | None = None
    per: str | None = None
    preset: str | None = None
    connectivity: Literal[6, 18, 26] = 26
    #: label values analysed (None: every non-zero value)
    select: list[int] | None = None
    min_size_nm3: float = Field(0.0, ge=0)
    within_rule: Literal["majority", "any", "all"] | None = None
    within_margin_nm: float | None = None
    #: how parents were found: "instances" (ids of the per layer) or "components" (of its mask)
    per_mode: Literal["instances", "components"] | None = None
    per_margin_nm: float | None = None
    #: how parent surfaces were measured: "mesh" (marching cubes) or "faces" (voxel faces)
    surface_method: Literal["mesh", "faces"] | None = None
    voxel_size_nm: ZyxFloat
    #: the column sizes are judged by (``disc_diameter_nm`` for pores)
    diameter_column: str = "equivalent_diameter_nm"
    block_shape: tuple[int, int, int]


class AnalysisCounts(Part):
    """Objects through the filters, and what the blockwise labelling merged."""

    components: int = Field(ge=0)
    removed_small: int = Field(0, ge=0)
    removed_outside: int = Field(0, ge=0)
    objects: int = Field(ge=0)
    touching_border: int = Field(0, ge=0)
    without_parent: int = Field(0, ge=0)
    #: components found in the blocks before they were joined across block faces
    provisional: int = Field(0, ge=0)
    merged_pairs: int = Field(0, ge=0)


class SizeSummary(Part):
    """Distribution of the kept objects' size (objects cut by the volume's border left out
    of the diameters: they are not measured whole)."""

    diameter_column: str
    measured: int = Field(ge=0)
    diameter_nm_median: float | None = None
    diameter_nm_p10: float | None = None
    diameter_nm_p90: float | None = None
    volume_nm3_median: float | None = None
    thickness_nm_median: float | None = None


class ParentStats(Part):
    """One parent (a nucleus, a cell): its objects, surface and density."""

    parent_id: int = Field(ge=1)
    count: int = Field(ge=0)
    parent_volume_um3: float
    surface_um2: float
    density_per_um2: float | None = None
    diameter_nm_median: float | None = None
    diameter_nm_p10: float | None = None
    diameter_nm_p90: float | None = None


class FindingRecord(Part):
    """A result outside what is biologically plausible (see the preset)."""

    level: Literal["warning", "info"]
    subject: str  # "objects" or "parent N"
    quantity: str
    message: str
    value: float | None = None
    expected: tuple[float, float]


class Expectation(Part):
    """Known values the result is compared with: a phantom's truth, a published count.
    Tolerances: ``count_tolerance`` in objects, the others relative (0.05 is 5%)."""

    source: str
    count: int | None = Field(None, ge=0)
    diameter_nm: float | None = Field(None, gt=0)
    density_per_um2: float | None = Field(None, gt=0)
    count_tolerance: int = Field(0, ge=0)
    diameter_tolerance: float = Field(0.05, ge=0)
    density_tolerance: float = Field(0.05, ge=0)


class Agreement(Part):
    """How one measured quantity compares with its expected value."""

    quantity: Literal["count", "diameter_nm", "density_per_um2"]
    expected: float
    measured: float | None = None
    tolerance: float
    #: True: the tolerance is relative to the expected value
    relative: bool
    agrees: bool
    #: what was measured, in words
    how: str


class AnalysisFiles(Part):
    """The files a run wrote, relative to the acquisition's root."""

    folder: str  # "analysis/analysis-1"
    tables: list[str] = Field(default_factory=list)
    plots: list[str] = Field(default_factory=list)
    report: str | None = None


class AnalysisDetails(Part):
    kind: Literal["analysis"] = "analysis"
    settings: AnalysisSettings
    counts: AnalysisCounts
    sizes: SizeSummary
    #: per parent, at most MAX_RECORDED_PARENTS (all of them are in parents.parquet)
    parents: list[ParentStats] = Field(default_factory=list)
    parents_total: int = Field(0, ge=0)
    findings: list[FindingRecord] = Field(default_factory=list)
    expectation: Expectation | None = None
    agreement: list[Agreement] = Field(default_factory=list)
    #: the instance label version written (LAYER@vN, kind "instances")
    instances: str
    files: AnalysisFiles


# --- evaluation ------------------------------------------------------------------------------------


class SemanticScoreRecord(Part):
    """Scores of one label value over the voxels the truth annotates."""

    value: int = Field(ge=0)
    name: str | None = None
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    truth_voxels: int = Field(ge=0)
    pred_voxels: int = Field(ge=0)
    dice: float
    iou: float
    precision: float
    recall: float


class InstanceScoreRecord(Part):
    """Instance scores: one-to-one matches at IoU >= ``iou_threshold``; HD95 per matched
    pair, summarised."""

    #: the label value whose objects were compared (None: the layers' instance ids)
    value: int | None = None
    name: str | None = None
    #: how each side's instances were found: its ids ("instances") or connected components
    truth_from: Literal["instances", "components"]
    prediction_from: Literal["instances", "components"]
    iou_threshold: float
    n_truth: int = Field(ge=0)
    n_pred: int = Field(ge=0)
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    f1: float
    precision: float
    recall: float
    mean_matched_iou: float | None = None
    hd95_nm_mean: float | None = None
    hd95_nm_median: float | None = None
    hd95_nm_max: float | None = None


class EvaluationSettings(Part):
    prediction: str  # LAYER@vN
    truth: str
    iou_threshold: float = Field(gt=0, le=1)
    hausdorff: bool = True
    #: every non-zero value counts as one "foreground" class (instance-id ground truth)
    binary: bool = False
    connectivity: Literal[6, 18, 26] = 26
    voxel_size_nm: ZyxFloat


class EvaluationCounts(Part):
    """Voxels the truth annotates; those compared (the prediction labels them too)."""

    annotated_voxels: int = Field(ge=0)
    compared_voxels: int = Field(ge=0)
    unpredicted_voxels: int = Field(ge=0)
    annotated_slices: int = Field(ge=0)
    annotated_regions: int = Field(ge=0)


class EvaluationDetails(Part):
    kind: Literal["evaluation"] = "evaluation"
    settings: EvaluationSettings
    counts: EvaluationCounts
    semantic: list[SemanticScoreRecord] = Field(default_factory=list)
    instances: list[InstanceScoreRecord] = Field(default_factory=list)
    files: AnalysisFiles


#: parents listed in a record (a volume of many cells keeps the rest in parents.parquet)
MAX_RECORDED_PARENTS = 1000

__all__ = [
    "Agreement",
    "AnalysisCounts",
    "AnalysisDetails",
    "AnalysisFiles",
    "AnalysisSettings",
    "EvaluationCounts",
    "EvaluationDetails",
    "EvaluationSettings",
    "Expectation",
    "FindingRecord",
    "InstanceScoreRecord",
    "MAX_RECORDED_PARENTS",
    "ParentStats",
    "SemanticScoreRecord",
    "SizeSummary",
]
