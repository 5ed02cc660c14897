"""The ground-truth learning curve, computed in memory: how a model's held-out score grows
with the number of annotated training slices, and what a few more slices would buy.

Nothing here touches the archive (:mod:`.experiment` stores the result). The parts:

* :func:`hold_out`: the annotated slices every draw is scored on, chosen as training
  chooses its validation slices (the farthest from the other annotated slices), plus an
  optional ``gap``: annotated slices within ``gap`` of a held-out one never train, so a
  neighbour cannot flatter the score;
* :func:`plan_draws`: for each k, ``repeats`` random draws of k training slices from the
  rest, each with its own training seed (one generator, drawn in a fixed order, so a
  resumed run draws the same);
* :func:`run_draw`: trains on a draw (the segmentation library's :func:`train`, in
  memory, no validation slice: all k slices train, the last weights are kept) and scores
  the held-out slices predicted as prediction would (tile by tile, only annotated voxels
  counted, pooled over the slices): Dice and IoU;
* :func:`t_interval` / :func:`welch_interval`: 95% **Student t** intervals of a mean
  over the draws of one k (clipped to [0, 1]: a score's range), and of the difference of
  two such means (Welch), which gives the marginal gain per added slice between
  consecutive k;
* :func:`project`: the curve fitted as an inverse power law ``a - b k^-c`` (with fewer
  than three distinct k, ``a + b ln k``) to every draw's Dice, evaluated at the current
  number of slices n and at n + K; its 95% interval is a **bootstrap** over the draws
  (resampled within each k, refitted);
* :func:`uncertainty` and :func:`rank_candidates`: unannotated slices ranked by the mean
  binary entropy of a model trained on every current slice (the most uncertain first,
  kept at least ``spacing`` slices apart from each other and from annotated slices).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AnalysisError

#: the confidence of every interval
CONFIDENCE = 0.95
#: bootstrap resamples of the projection
BOOTSTRAP = 400


# --- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) with its confidence interval."""

    mean: float
    low: float | None  # None: one value, no spread to judge by
    high: float | None
    sd: float | None
    n: int


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE,
               bounds: tuple[float, float] | None = None) -> Interval:
    """Mean ± t(1-α/2, n-1) · s/√n (Student t: the draws of one k are few), clipped to
    ``bounds`` when given (a Dice is never below 0 or above 1)."""
    from scipy import stats

    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if len(x) == 0:
        raise AnalysisError("no values to summarise", field="values", expected="at least one")
    m = float(x.mean())
    if len(x) < 2:
        return Interval(m, None, None, None, 1)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Interval(m, lo, hi, sd, len(x))


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean(b) - mean(a) with Welch's t interval (unequal variances, Welch-Satterthwaite
    degrees of freedom). ``n`` is the smaller sample."""
    from scipy import stats

    xa, xb = (np.asarray([float(v) for v in s], dtype=np.float64) for s in (a, b))
    if not len(xa) or not len(xb):
        raise AnalysisError("no values to compare", field="values", expected="at least one on each side")
    d = float(xb.mean() - xa.mean())
    if len(xa) < 2 or len(xb) < 2:
        return Interval(d, None, None, None, min(len(xa), len(xb)))
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, 0.0, min(len(xa), len(xb)))
    df = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(d, d - half, d + half, se, min(len(xa), len(xb)))


# --- the curve's model -------------------------------------------------------------------------


def _power(k, a, b, c):
    return a - b * np.power(k, -c)


def _loglin(k, a, b):
    return a + b * np.log(k)


def fit_curve(ks: Sequence[float], scores: Sequence[float]) -> tuple[str, tuple[float, ...]]:
    """``("power", (a, b, c))`` for ``a - b k^-c`` (three or more distinct k), else
    ``("log", (a, b))`` for ``a + b ln k``; least squares over every draw."""
    from scipy.optimize import curve_fit

    k = np.asarray(ks, np.float64)
    y = np.asarray(scores, np.float64)
    distinct = len(set(k.tolist()))
    if distinct < 2:
        raise AnalysisError("a curve needs scores at two numbers of slices at least", field="--slices",
                            expected="e.g. 1,2,4,8", found=sorted(set(k.tolist())))
    if distinct >= 3:
        try:
            p0 = (min(1.0, float(y.max()) + 0.05), max(1e-3, float(y.max() - y.min())), 0.5)
            params, _ = curve_fit(_power, k, y, p0=p0, bounds=([0.0, 0.0, 0.01], [1.0, 2.0, 3.0]), maxfev=4000)
            return "power", tuple(float(p) for p in params)
        except (RuntimeError, ValueError):
            pass
    b, a = np.polyfit(np.log(k), y, 1)
    return "log", (float(a), float(b))


def curve_value(model: str, params: Sequence[float], k: float) -> float:
    f = _power if model == "power" else _loglin
    return float(np.clip(f(np.float64(k), *params), 0.0, 1.0))


@dataclass(frozen=True)
class Projection:
    """What ``add`` more slices would buy from ``current`` slices, by the fitted curve."""

    current: int
    add: int
    model: str
    params: tuple[float, ...]
    now: float
    then: float
    gain: float
    gain_low: float
    gain_high: float
    then_low: float
    then_high: float
    resamples: int


def project(ks: Sequence[int], scores: Sequence[float], current: int, add: int, *, resamples: int = BOOTSTRAP,
            seed: int = 0, confidence: float = CONFIDENCE) -> Projection:
    """Fit the curve to (k, score) of every draw and read it at ``current`` and
    ``current + add``; the interval: percentiles of ``resamples`` refits to draws
    resampled with replacement within each k (see the module doc)."""
    k = np.asarray(ks, np.float64)
    y = np.asarray(scores, np.float64)
    model, params = fit_curve(k, y)
    now, then = curve_value(model, params, current), curve_value(model, params, current + add)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(k == v) for v in sorted(set(k.tolist()))]
    gains, thens = [], []
    for _ in range(resamples):
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        try:
            m, p = fit_curve(k[idx], y[idx])
        except AnalysisError:
            continue
        a, b = curve_value(m, p, current), curve_value(m, p, current + add)
        gains.append(b - a)
        thens.append(b)
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    g_lo, g_hi = (float(v) for v in np.percentile(gains, q)) if gains else (then - now, then - now)
    t_lo, t_hi = (float(v) for v in np.percentile(thens, q)) if thens else (then, then)
    return Projection(current, add, model, params, now, then, then - now, g_lo, g_hi, t_lo, t_hi, len(gains))


# --- the draws ---------------------------------------------------------------------------------


def hold_out(annotated: Sequence[int], count: int, *, gap: int = 0) -> tuple[list[int], list[int]]:
    """(held-out slices, the pool draws come from): ``count`` annotated slices chosen as
    training chooses validation slices (farthest from the rest); the pool is every other
    annotated slice more than ``gap`` slices away from a held-out one."""
    from types import SimpleNamespace

    from ..segmentation.data import choose_validation
    from ..segmentation.pipeline import Validation

    zs = sorted({int(z) for z in annotated})
    if count < 1 or count >= len(zs):
        raise AnalysisError("the held-out slices must be some, not all, of the annotated slices", field="--held-out",
                            expected=f"1 to {len(zs) - 1}", found=count)

    # choose_validation reads pipeline.training.validation only
    only = SimpleNamespace(training=SimpleNamespace(validation=Validation(slices="farthest", count=count, every=1)))
    held = choose_validation(zs, only)  # type: ignore[arg-type]
    pool = [z for z in zs if z not in held and min(abs(z - h) for h in held) > gap]
    return held, pool


@dataclass(frozen=True)
class Draw:
    k: int
    repeat: int
    slices: tuple[int, ...]
    seed: int

    @property
    def key(self) -> str:
        return f"k{self.k}-r{self.repeat}"


def plan_draws(pool: Sequence[int], ks: Sequence[int], repeats: int, seed: int) -> list[Draw]:
    """``repeats`` draws of k slices for every k (without replacement within a draw), each
    with its own training seed; the same arguments always give the same draws."""
    pool = sorted(int(z) for z in pool)
    bad = [k for k in ks if not 1 <= k <= len(pool)]
    if bad:
        raise AnalysisError("more training slices asked for than there are to draw from", field="--slices",
                            expected=f"1 to {len(pool)} (annotated slices less the held-out ones)", found=bad)
    if repeats < 1:
        raise AnalysisError("at least one draw per number of slices", field="--repeats", expected=">= 1",
                            found=repeats)
    rng = np.random.default_rng(seed)
    out = []
    for k in sorted(set(int(k) for k in ks)):
        for r in range(repeats):
            pick = tuple(sorted(int(z) for z in rng.choice(pool, size=k, replace=False)))
            out.append(Draw(k, r, pick, int(rng.integers(0, 2**31 - 1))))
    return out


@dataclass(frozen=True)
class DrawScore:
    """A draw's training and its pooled scores over the held-out slices."""

    k: int
    repeat: int
    slices: tuple[int, ...]
    seed: int
    iterations: int
    stopped_by: str
    train_seconds: float
    tp: int
    fp: int
    fn: int
    dice: float
    iou: float


def _scores(tp: int, fp: int, fn: int) -> tuple[float, float]:
    dice = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    iou = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    return dice, iou


def predict_slices(result: Any, image: Any, voxel_size_nm: Sequence[float], slices: Sequence[int], *,
                   threads: int | None = None) -> dict[int, np.ndarray]:
    """float32 probability of each of ``slices`` (whole planes, block by block in y and x,
    as prediction cuts them) under a trained result."""
    from ..segmentation.inference import Predictor, plan_inference, predict_block

    plan = plan_inference(result.pipeline, image.shape, voxel_size_nm, normalization=result.normalization,
                          tri_axis=False)
    predictor = Predictor(result.model, batch=result.pipeline.inference.batch, device=result.device or "cpu",
                          threads=threads)
    planes = [b[1:] for b in plan.blocks() if b[0].start == 0]
    out = {}
    for z in slices:
        prob = np.zeros(tuple(image.shape[1:]), np.float32)
        for ys, xs in planes:
            prob[ys, xs] = predict_block(plan, predictor, image, (slice(z, z + 1), ys, xs)).probability[0]
        out[int(z)] = prob
    return out


def score_slices(result: Any, image: Any, labels: Any, voxel_size_nm: Sequence[float], slices: Sequence[int], *,
                 threads: int | None = None) -> tuple[int, int, int]:
    """(tp, fp, fn) pooled over ``slices``: only annotated voxels count, foreground as the
    pipeline defines it, at the pipeline's threshold."""
    from ..segmentation.data import label_maps, unlabeled_of

    p = result.pipeline
    unl = unlabeled_of(labels)
    tp = fp = fn = 0
    for z, prob in predict_slices(result, image, voxel_size_nm, slices, threads=threads).items():
        fg, ann = label_maps(np.asarray(labels[z]), unl, p.target.foreground)
        pred, truth, w = prob >= p.inference.threshold, fg > 0.5, ann > 0.5
        tp += int(np.count_nonzero(pred & truth & w))
        fp += int(np.count_nonzero(pred & ~truth & w))
        fn += int(np.count_nonzero(~pred & truth & w))
    return tp, fp, fn


def for_draws(pipeline: Any, seed: int, max_minutes: float | None, iterations: int | None) -> Any:
    """The pipeline a draw trains: its seed, the budget, no validation slice (all k train)."""
    from ..segmentation.pipeline import with_overrides

    over: dict[str, Any] = {"training.seed": int(seed),
                            "training.validation": {"slices": "farthest", "count": 0,
                                                    "every": pipeline.training.validation.every}}
    if max_minutes is not None or iterations is not None:
        over["training.max_minutes"] = max_minutes
        over["training.iterations"] = iterations
    return with_overrides(pipeline, over)


def train_draw(pipeline: Any, image: Any, labels: Any, slices: Sequence[int], voxel_size_nm: Sequence[float], *,
               seed: int, max_minutes: float | None, iterations: int | None, threads: int | None = None,
               device: str = "cpu"):
    from ..segmentation.train import train

    p = for_draws(pipeline, seed, max_minutes, iterations)
    return train(p, image, labels, list(slices), voxel_size_nm, threads=threads, device=device)


def run_draw(pipeline: Any, image: Any, labels: Any, draw: Draw, held: Sequence[int], voxel_size_nm: Sequence[float],
             *, max_minutes: float | None, iterations: int | None, threads: int | None = None,
             device: str = "cpu") -> DrawScore:
    """Train on ``draw`` and score ``held`` (see the module doc)."""
    t0 = time.perf_counter()
    result = train_draw(pipeline, image, labels, draw.slices, voxel_size_nm, seed=draw.seed, max_minutes=max_minutes,
                        iterations=iterations, threads=threads, device=device)
    seconds = time.perf_counter() - t0
    tp, fp, fn = score_slices(result, image, labels, voxel_size_nm, held, threads=result.threads)
    dice, iou = _scores(tp, fp, fn)
    return DrawScore(draw.k, draw.repeat, draw.slices, draw.seed, result.iterations, result.stopped_by,
                     round(seconds, 3), tp, fp, fn, dice, iou)


# --- summaries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    k: int
    dice: Interval
    iou: Interval


@dataclass(frozen=True)
class Gain:
    """The mean Dice gained per added slice from ``k_from`` to ``k_to`` (Welch interval)."""

    k_from: int
    k_to: int
    per_slice: Interval


def summarize(scores: Sequence[DrawScore], confidence: float = CONFIDENCE) -> tuple[list[CurvePoint], list[Gain]]:
    ks = sorted({s.k for s in scores})
    by = {k: [s for s in scores if s.k == k] for k in ks}
    unit = (0.0, 1.0)
    points = [CurvePoint(k, t_interval([s.dice for s in by[k]], confidence, unit),
                         t_interval([s.iou for s in by[k]], confidence, unit)) for k in ks]
    gains = []
    for a, b in zip(ks, ks[1:]):
        d = welch_interval([s.dice for s in by[a]], [s.dice for s in by[b]], confidence)
        step = b - a
        gains.append(Gain(a, b, Interval(d.mean / step, None if d.low is None else d.low / step,
                                         None if d.high is None else d.high / step,
                                         None if d.sd is None else d.sd / step, d.n)))
    return points, gains


# --- candidates --------------------------------------------------------------------------------


def entropy_bits(prob: np.ndarray) -> float:
    """Mean binary entropy of a probability map, in bits (0: certain, 1: a coin toss)."""
    p = np.clip(np.asarray(prob, np.float64), 1e-6, 1 - 1e-6)
    return float(np.mean(-(p * np.log2(p) + (1 - p) * np.log2(1 - p))))


def candidate_slices(depth: int, annotated: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` unannotated slices, spread evenly through the volume."""
    free = [z for z in range(depth) if z not in set(annotated)]
    if len(free) <= limit:
        return free
    idx = np.linspace(0, len(free) - 1, limit).round().astype(int)
    return sorted({free[i] for i in idx})


def uncertainty(result: Any, image: Any, voxel_size_nm: Sequence[float], slices: Sequence[int], *,
                threads: int | None = None,
                on_slice: Callable[[int], None] | None = None) -> dict[int, float]:
    out = {}
    for z in slices:
        prob = predict_slices(result, image, voxel_size_nm, [z], threads=threads)[z]
        out[int(z)] = entropy_bits(prob)
        if on_slice is not None:
            on_slice(z)
    return out


def rank_candidates(scores: dict[int, float], annotated: Sequence[int], count: int, spacing: int = 2
                    ) -> list[tuple[int, float, bool]]:
    """Every scored slice as (slice, entropy, suggested), the most uncertain first; the
    ``count`` suggested ones are the most uncertain kept ``spacing`` slices apart from each
    other and from annotated slices (neighbours teach little more than one slice)."""
    taken = [int(z) for z in annotated]
    out = []
    for z, h in sorted(scores.items(), key=lambda t: (-t[1], t[0])):
        pick = sum(s for _z, _h, s in out) < count and all(abs(z - t) >= spacing for t in taken)
        if pick:
            taken.append(z)
        out.append((z, h, pick))
    return out


__all__ = ["BOOTSTRAP", "CONFIDENCE", "CurvePoint", "Draw", "DrawScore", "Gain", "Interval", "Projection",
           "candidate_slices", "curve_value", "entropy_bits", "fit_curve", "for_draws", "hold_out", "plan_draws",
           "predict_slices", "project", "rank_candidates", "run_draw", "score_slices", "summarize", "t_interval",
           "train_draw", "uncertainty", "welch_interval"]
