"""Consensus of volunteer annotations, and flags for annotators to look at.

Three methods, each on 2D slices, stacked per slice index:

``majority``
    A per-pixel vote among the annotators who annotated the slice. The winner is the
    label with the most votes, background included; a tie for the most votes (for a
    binary mask: exactly half the annotators) gives background. An annotator who
    annotated a slice but drew nothing votes background there.
``staple``
    SimpleITK's ``STAPLEImageFilter`` (binary, foreground value 1; the consensus is the
    foreground probability ``> 0.5``) or ``MultiLabelSTAPLEImageFilter`` (several
    labels; undecided pixels → background). It runs once per group of slices annotated
    by the same annotators; each annotator's sensitivity and specificity are the
    filter's, averaged over the groups weighted by slices. For multi-label masks they
    come from the filter's confusion matrices: sensitivity is the mean over foreground
    labels of P(rater says l | truth l), specificity P(rater says 0 | truth 0).
``cria``
    Contour regression by interior averages, for outlines: each volunteer's open traces
    are closed (nearest free endpoints joined, see
    :func:`~curation.labels.polylines.close_traces`) and filled, the interiors are
    averaged over annotators and thresholded at 0.5 (strictly above, i.e. the majority
    vote of the interiors, ties → background), and optionally the consensus region's
    boundary is redrawn as an envelope band ``band_width_nm`` wide — the nuclear
    envelope is the boundary of the nucleus. On mask input the masks' holes are filled
    instead (a mask drawn as an outline becomes its interior).

:func:`aggregate` runs a method over an :class:`~curation.labels.annotations.AnnotationSet`
and scores every annotator against the consensus (:class:`AnnotatorStats`), flagging:

- empty annotations on slices where the consensus has foreground;
- Dice against the consensus far below the others: below ``median - mad_k × MAD`` of
  all annotators' Dice (MAD the raw median absolute deviation) *and* below the
  absolute ``dice_floor`` (default 0.5) — graffiti, scribbles unrelated to the
  structure, end here;
- an annotated area wildly different from the consensus area: ratio above
  ``area_ratio_max`` (default 3) or below its inverse.

For ``cria`` with a band, the scores compare regions (the filled interiors against the
consensus region), as thin bands score low Dice for a one-pixel shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from curation.errors import LabelError
from curation.labels.annotations import AnnotationSet
from curation.labels.polylines import Trace, envelope_band, fill_traces

__all__ = [
    "METHODS",
    "AnnotatorStats",
    "ConsensusResult",
    "StapleResult",
    "aggregate",
    "cria",
    "dice",
    "majority",
    "staple",
]

METHODS = ("majority", "staple", "cria")
Method = Literal["majority", "staple", "cria"]


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator scored against the consensus, over the slices it annotated."""

    annotator: str
    n_slices: int
    dice: float
    sensitivity: float
    specificity: float
    area_ratio: float
    flagged: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotator": self.annotator,
            "n_slices": self.n_slices,
            "dice": _num(self.dice),
            "sensitivity": _num(self.sensitivity),
            "specificity": _num(self.specificity),
            "area_ratio": _num(self.area_ratio),
            "flagged": self.flagged,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class ConsensusResult:
    """``labels`` is ``(z, y, x)`` uint8, one plane per entry of ``slices``."""

    method: str
    labels: np.ndarray = field(repr=False)
    slices: list[int]
    annotators: list[AnnotatorStats]
    parameters: dict[str, Any]

    @property
    def flagged(self) -> list[str]:
        return [s.annotator for s in self.annotators if s.flagged]

    def stats(self, annotator: str) -> AnnotatorStats:
        for s in self.annotators:
            if s.annotator == annotator:
                return s
        raise LabelError("unknown annotator", field="annotator", expected=[s.annotator for s in self.annotators], found=annotator)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the label array, JSON-ready."""
        return {
            "method": self.method,
            "slices": list(self.slices),
            "shape": list(self.labels.shape),
            "annotators": [s.to_dict() for s in self.annotators],
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True)
class StapleResult:
    """``labels`` uint8; ``probability`` the foreground probability (binary only);
    per-input ``sensitivity`` and ``specificity`` (NaN when the filter has none)."""

    labels: np.ndarray = field(repr=False)
    probability: np.ndarray | None = field(repr=False)
    sensitivity: list[float]
    specificity: list[float]


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# --- primitives ---------------------------------------------------------------------------


def dice(a: np.ndarray, b: np.ndarray, label: int | None = None) -> float:
    """Dice overlap of the foreground (non-zero) of ``a`` and ``b``, or of ``label``.
    1.0 when both are empty."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise LabelError("cannot compare masks of different shapes", field="shape", expected=a.shape, found=b.shape)
    fa = a != 0 if label is None else a == label
    fb = b != 0 if label is None else b == label
    total = int(fa.sum()) + int(fb.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(fa, fb).sum()) / total


def _stack(masks: Sequence[np.ndarray]) -> np.ndarray:
    if len(masks) == 0:
        raise LabelError("no masks to combine", field="masks", expected="at least 1", found=0)
    shapes = {np.shape(m) for m in masks}
    if len(shapes) != 1:
        raise LabelError("masks differ in shape", field="shape", expected="one shape", found=sorted(shapes))
    return np.stack([np.asarray(m).astype(np.uint8, copy=False) for m in masks])


def majority(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel plurality vote of equally shaped masks (see the module docstring):
    ties for the most votes → background. Returns uint8 of the masks' shape."""
    stack = _stack(masks)
    n = stack.shape[0]
    labels = np.unique(stack)
    if labels.max(initial=0) <= 1:
        return (2 * (stack != 0).sum(axis=0) > n).astype(np.uint8)
    counts = np.stack([(stack == v).sum(axis=0) for v in labels])
    best = counts.max(axis=0)
    winner = labels[counts.argmax(axis=0)].astype(np.uint8)
    tied = (counts == best).sum(axis=0) > 1
    winner[tied] = 0
    return winner


def staple(masks: Sequence[np.ndarray], threshold: float = 0.5, multilabel: bool | None = None) -> StapleResult:
    """STAPLE consensus of equally shaped masks (2D or 3D), one per rater.

    Binary (foreground value 1) unless ``multilabel`` or a label above 1 is present.
    """
    import SimpleITK as sitk

    stack = _stack(masks)
    multi = bool(stack.max(initial=0) > 1) if multilabel is None else multilabel
    n = stack.shape[0]
    if not multi:
        binary = [sitk.GetImageFromArray((m != 0).astype(np.uint8)) for m in stack]
        if not stack.any():
            nan = [math.nan] * n
            return StapleResult(np.zeros(stack.shape[1:], np.uint8), np.zeros(stack.shape[1:]), nan, list(nan))
        f = sitk.STAPLEImageFilter()
        f.SetForegroundValue(1.0)
        prob = sitk.GetArrayFromImage(f.Execute(binary)).astype(np.float64)
        prob = np.nan_to_num(prob, nan=0.0)
        return StapleResult(
            (prob > threshold).astype(np.uint8),
            prob,
            [float(v) for v in f.GetSensitivity()],
            [float(v) for v in f.GetSpecificity()],
        )
    f = sitk.MultiLabelSTAPLEImageFilter()
    f.SetLabelForUndecidedPixels(0)
    labels = sitk.GetArrayFromImage(f.Execute([sitk.GetImageFromArray(m) for m in stack])).astype(np.uint8)
    sens, spec = [], []
    present = [int(v) for v in np.unique(stack) if v != 0]
    for i in range(n):
        cm = np.asarray(f.GetConfusionMatrix(i), dtype=np.float64)
        k = int(round((math.sqrt(1 + 4 * cm.size) - 1) / 2))  # (k + 1) x k, column = truth
        cm = cm.reshape(k + 1, k)
        sens.append(float(np.mean([cm[v, v] for v in present if v < k])) if present else math.nan)
        spec.append(float(cm[0, 0]))
    return StapleResult(labels, None, sens, spec)


def _fill_mask(mask: np.ndarray) -> np.ndarray:
    """A mask's interiors: holes filled per label, without overwriting other labels."""
    out = np.asarray(mask).astype(np.uint8, copy=True)
    for v in np.unique(out):
        if v == 0:
            continue
        filled = ndimage.binary_fill_holes(out == v)
        out[filled & (out == 0)] = v
    return out


def _band(region: np.ndarray, width_px: float) -> np.ndarray:
    out = np.zeros(region.shape, np.uint8)
    for v in np.unique(region):
        if v == 0:
            continue
        out[envelope_band(region == v, width_px) & (out == 0)] = v
    return out


def _band_px(band_width_nm: float | None, pixel_size_nm: float | None) -> float | None:
    if band_width_nm is None:
        return None
    if pixel_size_nm is None or not pixel_size_nm > 0:
        raise LabelError("a band width in nm needs the pixel size", field="pixel_size_nm", expected="a positive size in nm", found=pixel_size_nm)
    if not band_width_nm > 0:
        raise LabelError("band width must be positive", field="band_width_nm", expected="> 0 nm", found=band_width_nm)
    return max(1.0, float(band_width_nm) / float(pixel_size_nm))


def cria(
    polylines: Mapping[str, Sequence[Trace]] | Sequence[Sequence[Trace]],
    shape: tuple[int, int],
    band_width_nm: float | None = None,
    pixel_size_nm: float | None = None,
) -> np.ndarray:
    """Contour regression by interior averages on one slice (see the module docstring).

    ``polylines`` holds each annotator's traces (a mapping annotator → traces, or a
    list of trace lists). Returns the consensus region as uint8 (0/1), or its envelope
    band when ``band_width_nm`` is given (with ``pixel_size_nm``).
    """
    width = _band_px(band_width_nm, pixel_size_nm)
    groups = list(polylines.values()) if isinstance(polylines, Mapping) else list(polylines)
    region = majority([fill_traces(t, shape) for t in groups])
    return region if width is None else _band(region, width)


# --- aggregate ----------------------------------------------------------------------------

_FLAG_DEFAULTS = {"dice_floor": 0.5, "mad_k": 3.0, "area_ratio_max": 3.0}


def aggregate(annotation_set: AnnotationSet, method: Method = "majority", **opts: Any) -> ConsensusResult:
    """Consensus of ``annotation_set`` by ``method``, with every annotator scored.

    Options: ``polyline_mode`` (``"fill"`` or ``"trace"``) and ``width_px`` turn
    polylines into masks for majority and staple; ``band_width_nm`` and
    ``pixel_size_nm`` draw cria's consensus as an envelope band; ``dice_floor``,
    ``mad_k`` and ``area_ratio_max`` tune the flags.

    Each annotator's ``dice`` is the mean over its slices of its Dice against the
    consensus (multi-label: the mean over labels); ``sensitivity`` and ``specificity``
    are STAPLE's for ``staple``, otherwise of its foreground (non-zero) against the
    consensus foreground, pooled over its slices; ``area_ratio`` is its foreground area
    over the consensus's on the same slices.
    """
    if method not in METHODS:
        raise LabelError("unknown consensus method", field="method", expected=" | ".join(METHODS), found=method)
    known = {"polyline_mode", "width_px", "band_width_nm", "pixel_size_nm", *_FLAG_DEFAULTS}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise LabelError("unknown option", field="opts", expected=sorted(known), found=unknown)
    aset = annotation_set
    slices = aset.slices
    if not slices:
        raise LabelError("no annotated slices", field="annotations", expected="at least one annotated slice", found=0)
    params: dict[str, Any] = {k: float(opts.get(k, v)) for k, v in _FLAG_DEFAULTS.items()}
    params["input"] = aset.kind

    band_px = None
    if method == "cria":
        band_px = _band_px(opts.get("band_width_nm"), opts.get("pixel_size_nm"))
        params.update(band_width_nm=opts.get("band_width_nm"), pixel_size_nm=opts.get("pixel_size_nm"), band_width_px=band_px)
        if aset.kind == "polylines":
            per = {a: {z: fill_traces(t, aset.slice_shape).astype(np.uint8) for z, t in aset.polylines.get(a, {}).items()} for a in aset.annotators}
        else:
            per = {a: {z: _fill_mask(m) for z, m in aset.masks.get(a, {}).items()} for a in aset.annotators}
    else:
        if aset.kind == "polylines":
            mode = opts.get("polyline_mode", "fill")
            width = float(opts.get("width_px", 1.0))
            params.update(polyline_mode=mode, width_px=width)
            per = aset.to_masks(mode, width).masks
        else:
            per = {a: dict(aset.masks.get(a, {})) for a in aset.annotators}

    who = {z: [a for a in aset.annotators if z in per.get(a, {})] for z in slices}
    region: dict[int, np.ndarray] = {}
    filter_stats: dict[str, tuple[float, float]] = {}
    if method == "staple":
        filter_stats = _staple_groups(per, who, region)
    else:
        for z in slices:
            region[z] = majority([per[a][z] for a in who[z]])

    planes = [region[z] if band_px is None else _band(region[z], band_px) for z in slices]
    labels = np.stack(planes).astype(np.uint8)
    multi = any(int(m.max(initial=0)) > 1 for d in per.values() for m in d.values())
    stats = _score(aset.annotators, per, region, filter_stats, multi)
    stats = _flag(stats, per, region, params)
    return ConsensusResult(method=method, labels=labels, slices=slices, annotators=stats, parameters=params)


def _staple_groups(
    per: dict[str, dict[int, np.ndarray]],
    who: dict[int, list[str]],
    region: dict[int, np.ndarray],
) -> dict[str, tuple[float, float]]:
    """STAPLE once per group of slices sharing their annotators; fills ``region`` and
    returns each annotator's slice-weighted (sensitivity, specificity)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for z, names in who.items():
        groups.setdefault(tuple(names), []).append(z)
    sums: dict[str, list[float]] = {}
    for names, zs in groups.items():
        res = staple([np.stack([per[a][z] for z in zs]) for a in names])
        for i, z in enumerate(zs):
            region[z] = res.labels[i]
        for a, se, sp in zip(names, res.sensitivity, res.specificity):
            acc = sums.setdefault(a, [0.0, 0.0, 0.0, 0.0])
            if math.isfinite(se):
                acc[0] += se * len(zs)
                acc[1] += len(zs)
            if math.isfinite(sp):
                acc[2] += sp * len(zs)
                acc[3] += len(zs)
    return {a: (s[0] / s[1] if s[1] else math.nan, s[2] / s[3] if s[3] else math.nan) for a, s in sums.items()}


def _score(
    annotators: list[str],
    per: dict[str, dict[int, np.ndarray]],
    region: dict[int, np.ndarray],
    filter_stats: dict[str, tuple[float, float]],
    multi: bool,
) -> list[AnnotatorStats]:
    out = []
    for a in annotators:
        zs = sorted(per.get(a, {}))
        if not zs:
            out.append(AnnotatorStats(a, 0, math.nan, math.nan, math.nan, math.nan))
            continue
        dices = []
        tp = fp = fn = tn = 0
        for z in zs:
            m, c = per[a][z], region[z]
            if multi:
                values = [int(v) for v in np.union1d(np.unique(m), np.unique(c)) if v != 0]
                dices.append(float(np.mean([dice(m, c, v) for v in values])) if values else 1.0)
            else:
                dices.append(dice(m, c))
            fm, fc = m != 0, c != 0
            tp += int((fm & fc).sum())
            fp += int((fm & ~fc).sum())
            fn += int((~fm & fc).sum())
            tn += int((~fm & ~fc).sum())
        sens = tp / (tp + fn) if tp + fn else math.nan
        spec = tn / (tn + fp) if tn + fp else math.nan
        if a in filter_stats:
            fse, fsp = filter_stats[a]
            sens = fse if math.isfinite(fse) else sens
            spec = fsp if math.isfinite(fsp) else spec
        area, ref = tp + fp, tp + fn
        ratio = area / ref if ref else (1.0 if area == 0 else math.inf)
        out.append(AnnotatorStats(a, len(zs), float(np.mean(dices)), sens, spec, ratio))
    return out


def _flag(
    stats: list[AnnotatorStats],
    per: dict[str, dict[int, np.ndarray]],
    region: dict[int, np.ndarray],
    params: dict[str, Any],
) -> list[AnnotatorStats]:
    scored = np.array([s.dice for s in stats if s.n_slices and math.isfinite(s.dice)])
    med = float(np.median(scored)) if scored.size else math.nan
    mad = float(np.median(np.abs(scored - med))) if scored.size else math.nan
    cut = med - params["mad_k"] * mad
    floor, rmax = params["dice_floor"], params["area_ratio_max"]
    params.update(dice_median=_num(med), dice_mad=_num(mad))
    out = []
    for s in stats:
        reasons = []
        if s.n_slices == 0:
            reasons.append("no annotated slices")
        else:
            empty = [z for z in sorted(per[s.annotator]) if not per[s.annotator][z].any() and region[z].any()]
            if empty:
                reasons.append("empty annotation on slices " + ", ".join(str(z) for z in empty))
            if s.dice < cut and s.dice < floor:
                reasons.append(
                    f"Dice {s.dice:.2f} against the consensus is far below the others "
                    f"(median {med:.2f} - {params['mad_k']:g} x MAD {mad:.2f}; floor {floor:g})"
                )
            if s.area_ratio > rmax or s.area_ratio < 1 / rmax:
                reasons.append(f"annotated area is {s.area_ratio:.2f} x the consensus area (expected 1/{rmax:g}..{rmax:g})")
        out.append(AnnotatorStats(s.annotator, s.n_slices, s.dice, s.sensitivity, s.specificity, s.area_ratio, bool(reasons), reasons))
    return out
