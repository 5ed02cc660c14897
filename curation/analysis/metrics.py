"""Scores of a prediction against ground truth, on annotated voxels only.

Ground truth in this archive is sparse: the dtype's maximum means *unlabeled* (never
background), so only voxels the truth annotates are compared; a voxel the prediction
leaves unlabeled is left out too (and counted in ``unpredicted_voxels``).

**Semantic**, per label value ``v`` over the compared voxels: ``tp`` = truth v and
prediction v, ``fp`` = prediction v and truth not v, ``fn`` = truth v and prediction
not v; Dice ``2tp / (2tp + fp + fn)``, IoU ``tp / (tp + fp + fn)``, precision
``tp / (tp + fp)``, recall ``tp / (tp + fn)``. A ratio 0/0 is 1.0 when the value is
absent from both (nothing to find, nothing claimed) and 0.0 otherwise.

**Instance** (as in the CellMap segmentation challenge): truth and prediction instances
are matched one-to-one at IoU >= ``iou_threshold`` (0.5), IoU measured on annotated
voxels. The matching maximises the summed IoU (Hungarian, scipy's
``linear_sum_assignment``, per connected group of candidate pairs); above 0.5 each
instance has at most one candidate, so it equals greedy-by-IoU and CellMap's min-cost
flow. Matched pairs are true positives, unmatched predictions false positives,
unmatched truths false negatives; F1 ``2TP / (2TP + FP + FN)``. A prediction with no
annotated voxel is not scored.

**Hausdorff distance, 95th percentile** (nm, anisotropic voxels): the surface voxels of
each mask (those with a 6-neighbour outside it) and, for each surface voxel of one, the
Euclidean distance between voxel centres to the nearest surface voxel of the other;
HD95 is the larger of the two directed 95th percentiles (numpy's linear interpolation).
Both masks empty: 0.0. Exactly one empty: ``inf`` (JSON: null, with the reason). For
instances it is computed per matched pair on the pair's bounding box and summarised
(mean, median, max).

Everything is gathered blockwise (:mod:`curation.blocks`): memory follows the block
size and the number of instances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ..blocks import Block, map_blocks, read_region
from ..errors import AnalysisError

Pair = tuple[int, int]


# --- confusion ------------------------------------------------------------------------------------


def confusion_counts(truth: np.ndarray, pred: np.ndarray) -> dict[Pair, int]:
    """``{(truth value, predicted value): voxels}`` over two same-shaped arrays (values < 2**32)."""
    t = np.asarray(truth).ravel().astype(np.uint64)
    p = np.asarray(pred).ravel().astype(np.uint64)
    if t.shape != p.shape:
        raise AnalysisError("truth and prediction differ in size", field="shape", expected=t.shape, found=p.shape)
    pairs = (t << np.uint64(32)) | p
    vals, n = np.unique(pairs, return_counts=True)
    return {(int(v >> np.uint64(32)), int(v & np.uint64(0xFFFFFFFF))): int(c) for v, c in zip(vals, n)}


def add_counts(into: dict, more: Mapping) -> dict:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n
    return into


def _compared(truth: np.ndarray, pred: np.ndarray, truth_unlabeled: int | None, pred_unlabeled: int | None):
    keep = np.ones(truth.shape, dtype=bool)
    if truth_unlabeled is not None:
        keep &= truth != truth_unlabeled
    annotated = int(keep.sum())
    if pred_unlabeled is not None:
        keep &= pred != pred_unlabeled
    return keep, annotated - int(keep.sum())


def _confusion_block(block: Block, truth: np.ndarray, pred: np.ndarray, *, truth_unlabeled, pred_unlabeled):
    keep, unpredicted = _compared(truth, pred, truth_unlabeled, pred_unlabeled)
    return confusion_counts(truth[keep], pred[keep]), unpredicted


@dataclass
class Confusion:
    """Voxel counts per (truth value, predicted value) over compared voxels."""

    counts: dict[Pair, int]
    unpredicted_voxels: int = 0

    @property
    def compared_voxels(self) -> int:
        return sum(self.counts.values())

    def values(self) -> list[int]:
        return sorted({t for t, _ in self.counts} | {p for _, p in self.counts})


def confusion(
    truth: Any,
    pred: Any,
    *,
    truth_unlabeled: int | None = None,
    pred_unlabeled: int | None = None,
    block_shape: Sequence[int] | int | None = None,
    executor: Any = "threads",
    workers: int | None = None,
) -> Confusion:
    """The confusion of ``pred`` against ``truth`` (array-likes or Sources), blockwise."""
    _same_shape(truth, pred)
    fn = partial(_confusion_block, truth_unlabeled=truth_unlabeled, pred_unlabeled=pred_unlabeled)
    out = Confusion({})
    for _b, (counts, unpredicted) in map_blocks(fn, truth, pred, block_shape=block_shape, executor=executor,
                                                workers=workers):
        add_counts(out.counts, counts)
        out.unpredicted_voxels += unpredicted
    return out


def _same_shape(truth: Any, pred: Any) -> None:
    if tuple(truth.shape) != tuple(pred.shape):
        raise AnalysisError("the prediction's shape differs from the ground truth's", field="shape",
                            expected=tuple(truth.shape), found=tuple(pred.shape))


# --- semantic scores ---------------------------------------------------------------------------------


def _ratio(num: int, den: int, other_errors: int) -> float:
    if den:
        return num / den
    return 1.0 if other_errors == 0 else 0.0


@dataclass(frozen=True)
class SemanticScore:
    value: int
    tp: int
    fp: int
    fn: int
    dice: float
    iou: float
    precision: float
    recall: float

    @property
    def truth_voxels(self) -> int:
        return self.tp + self.fn

    @property
    def pred_voxels(self) -> int:
        return self.tp + self.fp

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "truth_voxels": self.truth_voxels, "pred_voxels": self.pred_voxels}


def score_value(counts: Mapping[Pair, int], value: int) -> SemanticScore:
    """Dice, IoU, precision and recall of one label value from confusion counts."""
    tp = counts.get((value, value), 0)
    truth_n = sum(n for (t, _), n in counts.items() if t == value)
    pred_n = sum(n for (_, p), n in counts.items() if p == value)
    fp, fn = pred_n - tp, truth_n - tp
    errors = fp + fn
    return SemanticScore(
        value=int(value), tp=tp, fp=fp, fn=fn,
        dice=_ratio(2 * tp, 2 * tp + errors, errors),
        iou=_ratio(tp, tp + errors, errors),
        precision=_ratio(tp, tp + fp, fn),
        recall=_ratio(tp, tp + fn, fp),
    )


def semantic_scores(counts: Mapping[Pair, int] | Confusion, values: Iterable[int] | None = None) -> list[SemanticScore]:
    """Scores per label value (default: every value in truth or prediction)."""
    c = counts.counts if isinstance(counts, Confusion) else counts
    vals = sorted({t for t, _ in c} | {p for _, p in c}) if values is None else sorted({int(v) for v in values})
    return [score_value(c, v) for v in vals]


# --- Hausdorff -----------------------------------------------------------------------------------


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it (the volume's outside counts as outside)."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hausdorff95(a: np.ndarray, b: np.ndarray, voxel_size_nm: Sequence[float], percentile: float = 95.0) -> float:
    """The symmetric ``percentile`` Hausdorff distance (nm) between two masks' surfaces
    (see the module docstring); 0.0 when both are empty, ``inf`` when one is."""
    from scipy import ndimage

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise AnalysisError("the two masks differ in shape", field="shape", expected=a.shape, found=b.shape)
    sa, sb = surface(a), surface(b)
    if not sa.any() and not sb.any():
        return 0.0
    if not sa.any() or not sb.any():
        return math.inf
    vs = tuple(float(v) for v in voxel_size_nm)
    to_b = ndimage.distance_transform_edt(~sb, sampling=vs)
    to_a = ndimage.distance_transform_edt(~sa, sampling=vs)
    return float(max(np.percentile(to_b[sa], percentile), np.percentile(to_a[sb], percentile)))


# --- instances -------------------------------------------------------------------------------------


def _instance_block(block: Block, truth: np.ndarray, pred: np.ndarray, *, truth_unlabeled, pred_unlabeled):
    keep, _ = _compared(truth, pred, truth_unlabeled, pred_unlabeled)
    t = np.where(keep, truth, 0).astype(np.int64)
    p = np.where(keep, pred, 0).astype(np.int64)
    out = {}
    for name, arr in (("truth", t), ("pred", p)):
        ids = np.unique(arr[arr > 0])
        if len(ids):
            from scipy import ndimage

            # bounding boxes (global) and voxels per id, via find_objects on a compact relabelling
            compact = np.searchsorted(ids, arr) + 1
            compact[arr == 0] = 0
            boxes = ndimage.find_objects(compact.astype(np.int32))
            n = np.bincount(compact.ravel(), minlength=len(ids) + 1)[1:]
            off = np.asarray(block.read_offset)
            lo = np.array([[s.start for s in bx] for bx in boxes]) + off
            hi = np.array([[s.stop for s in bx] for bx in boxes]) + off
            out[name] = (ids, n, lo, hi)
        else:
            out[name] = (ids, np.zeros(0, np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))
    both = (t > 0) & (p > 0)
    out["pairs"] = confusion_counts(t[both], p[both]) if both.any() else {}
    return out


@dataclass
class _Sizes:
    n: dict[int, int] = field(default_factory=dict)
    lo: dict[int, np.ndarray] = field(default_factory=dict)
    hi: dict[int, np.ndarray] = field(default_factory=dict)

    def add(self, ids, n, lo, hi) -> None:
        for k, c, a, b in zip(ids.tolist(), n.tolist(), lo, hi):
            self.n[k] = self.n.get(k, 0) + c
            self.lo[k] = np.minimum(self.lo[k], a) if k in self.lo else a
            self.hi[k] = np.maximum(self.hi[k], b) if k in self.hi else b


@dataclass(frozen=True)
class Match:
    truth: int
    pred: int
    iou: float
    hd95_nm: float | None = None


@dataclass(frozen=True)
class InstanceScore:
    iou_threshold: float
    n_truth: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    f1: float
    precision: float
    recall: float
    mean_matched_iou: float | None
    hd95_nm_mean: float | None
    hd95_nm_median: float | None
    hd95_nm_max: float | None
    matches: tuple[Match, ...] = ()
    matching: str = "hungarian (max summed IoU) over pairs with IoU >= threshold"

    def to_json(self, with_matches: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["matches"] = [asdict(m) for m in self.matches] if with_matches else len(self.matches)
        return d


def match_instances(pairs: Mapping[Pair, int], truth_n: Mapping[int, int], pred_n: Mapping[int, int],
                    iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches (truth, pred, IoU) at IoU >= threshold, maximising summed IoU."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as graph_components

    cand = []
    for (t, p), inter in pairs.items():
        union = truth_n[t] + pred_n[p] - inter
        iou = inter / union if union else 0.0
        if iou >= iou_threshold:
            cand.append((t, p, iou))
    if not cand:
        return []
    ts = sorted({c[0] for c in cand})
    ps = sorted({c[1] for c in cand})
    ti = {t: i for i, t in enumerate(ts)}
    pi = {p: i + len(ts) for i, p in enumerate(ps)}
    a = np.array([ti[c[0]] for c in cand])
    b = np.array([pi[c[1]] for c in cand])
    nodes = len(ts) + len(ps)
    _, group = graph_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(nodes, nodes)), directed=False)
    out = []
    by_group: dict[int, list[tuple[int, int, float]]] = {}
    for c, g in zip(cand, group[a]):
        by_group.setdefault(int(g), []).append(c)
    for g in sorted(by_group):
        cs = by_group[g]
        if len(cs) == 1:
            out.append(cs[0])
            continue
        gt = sorted({c[0] for c in cs})
        gp = sorted({c[1] for c in cs})
        w = np.zeros((len(gt), len(gp)))
        for t, p, iou in cs:
            w[gt.index(t), gp.index(p)] = iou
        rows, cols = linear_sum_assignment(w, maximize=True)
        out += [(gt[r], gp[c], float(w[r, c])) for r, c in zip(rows, cols) if w[r, c] >= iou_threshold]
    return sorted(out)


def instance_scores(
    truth: Any,
    pred: Any,
    *,
    voxel_size_nm: Sequence[float],
    truth_unlabeled: int | None = None,
    pred_unlabeled: int | None = None,
    iou_threshold: float = 0.5,
    hausdorff: bool = True,
    block_shape: Sequence[int] | int | None = None,
    executor: Any = "threads",
    workers: int | None = None,
) -> InstanceScore:
    """Instance F1 and HD95 of ``pred`` instances against ``truth`` instances (ids; 0 is
    background) on the voxels the truth annotates (see the module docstring)."""
    _same_shape(truth, pred)
    if not 0 < iou_threshold <= 1:
        raise AnalysisError("an IoU threshold is in (0, 1]", field="iou_threshold", expected="e.g. 0.5",
                            found=iou_threshold)
    fn = partial(_instance_block, truth_unlabeled=truth_unlabeled, pred_unlabeled=pred_unlabeled)
    ts, ps = _Sizes(), _Sizes()
    pairs: dict[Pair, int] = {}
    for _b, part in map_blocks(fn, truth, pred, block_shape=block_shape, executor=executor, workers=workers):
        ts.add(*part["truth"])
        ps.add(*part["pred"])
        add_counts(pairs, part["pairs"])
    matched = match_instances(pairs, ts.n, ps.n, iou_threshold)
    tp = len(matched)
    fp, fn_ = len(ps.n) - tp, len(ts.n) - tp
    matches = []
    for t, p, iou in matched:
        hd = None
        if hausdorff:
            hd = _pair_hd95(truth, pred, t, p, ts, ps, voxel_size_nm, truth_unlabeled, pred_unlabeled)
        matches.append(Match(t, p, round(iou, 12), hd))
    hds = [m.hd95_nm for m in matches if m.hd95_nm is not None]
    errors = fp + fn_
    return InstanceScore(
        iou_threshold=float(iou_threshold), n_truth=len(ts.n), n_pred=len(ps.n), tp=tp, fp=fp, fn=fn_,
        f1=_ratio(2 * tp, 2 * tp + errors, errors), precision=_ratio(tp, tp + fp, fn_),
        recall=_ratio(tp, tp + fn_, fp),
        mean_matched_iou=float(np.mean([m.iou for m in matches])) if matches else None,
        hd95_nm_mean=float(np.mean(hds)) if hds else None,
        hd95_nm_median=float(np.median(hds)) if hds else None,
        hd95_nm_max=float(np.max(hds)) if hds else None,
        matches=tuple(matches),
    )


def _pair_hd95(truth, pred, t, p, ts: _Sizes, ps: _Sizes, voxel_size_nm, truth_unlabeled, pred_unlabeled) -> float:
    shape = tuple(int(n) for n in truth.shape)
    lo = np.maximum(np.minimum(ts.lo[t], ps.lo[p]) - 1, 0)
    hi = np.minimum(np.maximum(ts.hi[t], ps.hi[p]) + 1, shape)
    region = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    tv, pv = read_region(truth, region), read_region(pred, region)
    keep, _ = _compared(tv, pv, truth_unlabeled, pred_unlabeled)
    return hausdorff95((tv == t) & keep, (pv == p) & keep, voxel_size_nm)


# --- one report ----------------------------------------------------------------------------------


def json_float(x: float | None) -> float | None:
    """JSON has no infinity: ``inf`` and NaN become None."""
    return None if x is None or not math.isfinite(x) else float(x)


__all__ = [
    "Confusion",
    "InstanceScore",
    "Match",
    "SemanticScore",
    "add_counts",
    "confusion",
    "confusion_counts",
    "hausdorff95",
    "instance_scores",
    "json_float",
    "match_instances",
    "score_value",
    "semantic_scores",
    "surface",
]
