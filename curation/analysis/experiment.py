"""``curate experiment learning-curve``: how much each annotated slice buys, stored as an analysis.

:func:`learning_curve` takes a ground-truth label version and a segmentation pipeline,
holds out some annotated slices (the farthest from the rest, as training picks its
validation slices), and for each k trains ``repeats`` models on random draws of k of the
other slices (each with its own seed) and scores them on the held-out slices, all in
memory with the segmentation library (:mod:`.curve`). With ``add`` it also trains one
model on every current slice, projects the fitted curve ``add`` slices further (with a
bootstrap interval) and ranks unannotated slices by that model's uncertainty.

It stores, in **one write transaction**, ``analysis/learning-curve-N/`` (``draws`` and
``curve`` as Parquet and CSV, ``gains.csv``, ``candidates.csv``, ``learning_curve.png``,
``report.html``, ``report.md``) and the run record
``provenance/runs/learning-curve-N.json`` with
:class:`~curation.provenance.experiment.LearningCurveDetails`.

Trainings are long, so each draw's scores are kept in the transaction's staging folder as
it finishes: a killed run, run again, trains only the draws it had not finished (with
``iterations`` instead of ``max_minutes`` the result is then the uninterrupted one, bit
for bit; a time budget depends on the machine's speed anyway). The same request on the
same label version is ``notneeded``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import AnalysisError
from ..provenance import OutputRef, RunRecord, ToolInfo, record_json
from ..provenance.analysis import AnalysisFiles
from ..provenance.experiment import (
    CandidateRecord,
    CurvePointRecord,
    DrawRecord,
    GainRecord,
    LearningCurveDetails,
    LearningCurveSettings,
    ProjectionRecord,
)
from ..records import Result, Status, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import now_iso, open_archive
from ..repository.ingest import current_agent
from ..repository.pyramid import WriteOptions
from ..repository.transaction import Changes, checkpoint, job_fingerprint, transaction
from . import curve as C
from .store import ANALYSIS_DIR, add_run_files, label_ref, libraries, next_run_id, stored_runs

ACTION = "learning-curve"


# --- records from scores -------------------------------------------------------------------------


def draw_record(s: C.DrawScore, *, current: bool = False) -> DrawRecord:
    d = asdict(s)
    d["slices"] = list(s.slices)
    return DrawRecord(**d, current=current)


def curve_records(draws: Sequence[DrawRecord], *, add: int | None, seed: int, pool: int,
                  confidence: float = C.CONFIDENCE) -> tuple[list[CurvePointRecord], list[GainRecord],
                                                             ProjectionRecord | None]:
    """The curve's points and gains (random draws only) and the projection for ``add``
    more slices from the ``pool`` current ones (fitted to every draw and the current model)."""
    random = [d for d in draws if not d.current]
    scores = [C.DrawScore(**d.model_dump(exclude={"current"})) for d in random]
    pts, gains = C.summarize(scores, confidence)
    points = [CurvePointRecord(k=p.k, draws=p.dice.n, dice_mean=p.dice.mean, dice_low=p.dice.low,
                               dice_high=p.dice.high, dice_sd=p.dice.sd, iou_mean=p.iou.mean, iou_low=p.iou.low,
                               iou_high=p.iou.high) for p in pts]
    grecs = [GainRecord(k_from=g.k_from, k_to=g.k_to, per_slice=g.per_slice.mean, low=g.per_slice.low,
                        high=g.per_slice.high) for g in gains]
    projection = None
    if add:
        fit = list(draws)
        if len({d.k for d in fit}) >= 2:
            pr = C.project([d.k for d in fit], [d.dice for d in fit], pool, add, seed=seed, confidence=confidence)
            now = next((d.dice for d in draws if d.current), None)
            projection = ProjectionRecord(
                current=pr.current, add=pr.add, model=pr.model,  # type: ignore[arg-type]
                params=list(pr.params), dice_now=pr.now,
                dice_then=pr.then, gain=pr.gain, gain_low=pr.gain_low, gain_high=pr.gain_high,
                dice_then_low=pr.then_low, dice_then_high=pr.then_high, resamples=pr.resamples,
                dice_measured_now=now)
    return points, grecs, projection


def candidate_records(entropy: Mapping[int, float], annotated: Sequence[int], add: int) -> list[CandidateRecord]:
    return [CandidateRecord(slice=z, entropy_bits=h, rank=i + 1, suggested=s)
            for i, (z, h, s) in enumerate(C.rank_candidates(dict(entropy), annotated, add))]


# --- files ----------------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], columns: list[str]):
    import pyarrow as pa

    return pa.table({c: pa.array([r[c] for r in rows]) for c in columns})


DRAW_COLUMNS = ["k", "repeat", "current", "slices", "seed", "iterations", "stopped_by", "train_seconds", "tp", "fp",
                "fn", "dice", "iou"]
POINT_COLUMNS = ["k", "draws", "dice_mean", "dice_low", "dice_high", "dice_sd", "iou_mean", "iou_low", "iou_high"]


def write_files(folder: Path, draws: Sequence[DrawRecord], points: Sequence[CurvePointRecord],
                gains: Sequence[GainRecord], projection: ProjectionRecord | None,
                candidates: Sequence[CandidateRecord], *, title: str, subtitle: str, held: Sequence[int],
                pool: Sequence[int], budget: str) -> list[str]:
    """Tables, the plot and the reports in ``folder``; returns the file names."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    drows = [{**d.model_dump(), "slices": " ".join(str(z) for z in d.slices)} for d in draws]
    for stem, rows, cols in (("draws", drows, DRAW_COLUMNS),
                             ("curve", [p.model_dump() for p in points], POINT_COLUMNS)):
        t = _table(rows, cols)
        pq.write_table(t, folder / f"{stem}.parquet")
        pacsv.write_csv(t, folder / f"{stem}.csv")
    pacsv.write_csv(_table([g.model_dump() for g in gains], ["k_from", "k_to", "per_slice", "low", "high"]),
                    folder / "gains.csv")
    names = ["curve.csv", "curve.parquet", "draws.csv", "draws.parquet", "gains.csv"]
    if candidates:
        pacsv.write_csv(_table([c.model_dump() for c in candidates], ["rank", "slice", "entropy_bits", "suggested"]),
                        folder / "candidates.csv")
        names.append("candidates.csv")
    plot_curve(draws, points, gains, projection, folder / "learning_curve.png", title=title)
    md = render_markdown(draws, points, gains, projection, candidates, title=title, subtitle=subtitle, held=held,
                         pool=pool, budget=budget)
    (folder / "report.md").write_text(md, encoding="utf-8")
    (folder / "report.html").write_text(render_html(md, folder / "learning_curve.png", title), encoding="utf-8")
    return sorted(names + ["learning_curve.png", "report.html", "report.md"])


def _err(mean: float, low: float | None, high: float | None) -> tuple[float, float]:
    return (mean - low if low is not None else 0.0, high - mean if high is not None else 0.0)


def plot_curve(draws: Sequence[DrawRecord], points: Sequence[CurvePointRecord], gains: Sequence[GainRecord],
               projection: ProjectionRecord | None, path: Path, *, title: str = "") -> Path:
    """Left: every draw's held-out Dice, the mean Dice and IoU per k with 95% t intervals,
    the fitted curve and the projection; right: Dice gained per added slice (Welch)."""
    from .report import _figure

    fig = _figure(9.0, 3.8)
    ax, bx = fig.subplots(1, 2, width_ratios=[1.6, 1])
    rng = np.random.default_rng(0)
    rnd = [d for d in draws if not d.current]
    ax.scatter([d.k * math.exp(rng.uniform(-0.06, 0.06)) for d in rnd], [d.dice for d in rnd], s=12, c="#999999",
               label="one draw (Dice)", zorder=2)
    ks = [p.k for p in points]
    for attr, colour, label in (("dice", "#1f77b4", "mean Dice, 95% t CI"), ("iou", "#ff7f0e", "mean IoU, 95% t CI")):
        means = [getattr(p, f"{attr}_mean") for p in points]
        errs = np.array([_err(getattr(p, f"{attr}_mean"), getattr(p, f"{attr}_low"), getattr(p, f"{attr}_high"))
                         for p in points]).T.reshape(2, -1)
        xs = ks if attr == "dice" else [k * 1.04 for k in ks]  # side by side, not on top of each other
        ax.errorbar(xs, means, yerr=errs, fmt="o-" if attr == "dice" else "s--", color=colour, capsize=3, ms=4,
                    label=label, zorder=3)
    cur = [d for d in draws if d.current]
    if cur:
        ax.scatter([cur[0].k], [cur[0].dice], marker="*", s=110, c="#2ca02c", zorder=4,
                   label=f"every current slice ({cur[0].k})")
    if projection is not None:
        kk = np.geomspace(min(ks + [1]), projection.current + projection.add, 80)
        ax.plot(kk, [C.curve_value(projection.model, projection.params, k) for k in kk], ":", color="#2ca02c",
                lw=1.2, label=f"fit ({projection.model})")
        x = projection.current + projection.add
        ax.errorbar([x], [projection.dice_then], yerr=[[projection.dice_then - projection.dice_then_low],
                                                       [projection.dice_then_high - projection.dice_then]],
                    fmt="D", color="#d62728", capsize=3, ms=5, zorder=4,
                    label=f"{projection.current}+{projection.add} slices: Dice {projection.gain:+.3f} "
                          f"(95% {projection.gain_low:+.3f}…{projection.gain_high:+.3f}, bootstrap)")
    ax.set_xscale("log", base=2)
    ticks = sorted(set(ks + ([projection.current + projection.add] if projection else []) + [d.k for d in cur]))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("annotated training slices (k)")
    ax.set_ylabel("held-out score")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)
    ax.set_title(title or "Learning curve", fontsize=9)
    if gains:
        labels = [f"{g.k_from}→{g.k_to}" for g in gains]
        errs = np.array([_err(g.per_slice, g.low, g.high) for g in gains]).T.reshape(2, -1)
        bx.bar(range(len(gains)), [g.per_slice for g in gains], yerr=errs, color="#1f77b4", capsize=3)
        bx.set_xticks(range(len(gains)), labels)
        bx.axhline(0, color="black", lw=0.8)
    else:
        bx.text(0.5, 0.5, "one k: no gain to show", ha="center", va="center", transform=bx.transAxes)
    bx.set_title("Dice gained per added slice (95% Welch CI)", fontsize=9)
    bx.set_xlabel("k from → to")
    bx.grid(alpha=0.3, axis="y")
    fig.savefig(path)
    return path


def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def headline(points: Sequence[CurvePointRecord], gains: Sequence[GainRecord], projection: ProjectionRecord | None
             ) -> str:
    text = "; ".join(f"k={p.k}: Dice {_f(p.dice_mean)} [{_f(p.dice_low)}, {_f(p.dice_high)}]" for p in points)
    if projection is not None:
        text += (f"; {projection.add} more slice(s) from {projection.current}: Dice {_f(projection.dice_now)} → "
                 f"{_f(projection.dice_then)} ({_f(projection.gain, sign=True)}, 95% "
                 f"[{_f(projection.gain_low, sign=True)}, {_f(projection.gain_high, sign=True)}])")
    return text


def _at_bounds(p: ProjectionRecord) -> bool:
    if p.model != "power":
        return False
    a, b, c = p.params
    return a >= 0.999 or b <= 1e-6 or c <= 0.0101 or c >= 2.99


def render_markdown(draws: Sequence[DrawRecord], points: Sequence[CurvePointRecord], gains: Sequence[GainRecord],
                    projection: ProjectionRecord | None, candidates: Sequence[CandidateRecord], *, title: str,
                    subtitle: str, held: Sequence[int], pool: Sequence[int], budget: str) -> str:
    lines = [f"# {title}", "", *([subtitle, ""] if subtitle else []), headline(points, gains, projection), "",
             f"Scored on the held-out annotated slices {list(held)} (only annotated voxels count, pooled over the "
             f"slices); draws of k training slices from {list(pool)}; {budget} per training, no validation slice "
             "(the last weights are kept).", "",
             "![learning curve](learning_curve.png)", "", "## The curve", "",
             "Intervals: 95% Student t over the draws of each k, clipped to [0, 1] (none with a single draw).", "",
             "| k | draws | Dice mean | Dice 95% CI | IoU mean | IoU 95% CI |", "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.k} | {p.draws} | {_f(p.dice_mean)} | {_f(p.dice_low)} – {_f(p.dice_high)} | "
                     f"{_f(p.iou_mean)} | {_f(p.iou_low)} – {_f(p.iou_high)} |")
    if gains:
        lines += ["", "## Marginal gain per added slice", "",
                  "Difference of the mean Dice of consecutive k over the slices added; 95% Welch t interval.", "",
                  "| from k | to k | Dice per slice | 95% CI |", "|---|---|---|---|"]
        lines += [f"| {g.k_from} | {g.k_to} | {_f(g.per_slice, 4, True)} | {_f(g.low, 4, True)} – "
                  f"{_f(g.high, 4, True)} |" for g in gains]
    if projection is not None:
        form = "a − b·k^−c" if projection.model == "power" else "a + b·ln k"
        lines += ["", f"## What {projection.add} more slice(s) would buy", "",
                  f"The curve {form} (parameters {', '.join(f'{v:.4g}' for v in projection.params)}) fitted to every "
                  "draw" + (f" and the model on all {projection.current} current slices"
                            if projection.dice_measured_now is not None else "") +
                  f": Dice {_f(projection.dice_now)} at the {projection.current} current slices"
                  + (f" (measured: {_f(projection.dice_measured_now)})" if projection.dice_measured_now is not None
                     else "") + f", {_f(projection.dice_then)} with "
                  f"{projection.add} more (95% {_f(projection.dice_then_low)} – {_f(projection.dice_then_high)}); "
                  f"gain {_f(projection.gain, sign=True)} (95% {_f(projection.gain_low, sign=True)} – "
                  f"{_f(projection.gain_high, sign=True)}), a percentile bootstrap of {projection.resamples} refits "
                  "to the draws resampled within each k. An extrapolation: trust it less the further it reaches."
                  + (" The power law is constrained not to fall (b ≥ 0), so its gain is never below 0."
                     if projection.model == "power" else "")
                  + (" Some parameters sit at their bounds: the draws do not pin the curve's shape down "
                     "(a flat or noisy curve)." if _at_bounds(projection) else "")]
    if candidates:
        lines += ["", "## Which slices to annotate next", "",
                  "Unannotated slices by the mean binary entropy (bits) of the model trained on every current slice; "
                  "suggested: the most uncertain, at least 2 slices from each other and from annotated slices.", "",
                  "| rank | slice | entropy (bits) | suggested |", "|---|---|---|---|"]
        lines += [f"| {c.rank} | {c.slice} | {c.entropy_bits:.4f} | {'yes' if c.suggested else ''} |"
                  for c in candidates[:20]]
    lines += ["", "## Draws", "", "| k | repeat | slices | seed | iterations | seconds | Dice | IoU |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {d.k}{' (all)' if d.current else ''} | {d.repeat} | {' '.join(map(str, d.slices))} | {d.seed} | "
              f"{d.iterations} | {d.train_seconds:.1f} | {_f(d.dice, 4)} | {_f(d.iou, 4)} |" for d in draws]
    lines += ["", f"Tables: curve.csv/.parquet, draws.csv/.parquet, gains.csv"
              + (", candidates.csv" if candidates else "") + f". Made by curation {__version__}.", ""]
    return "\n".join(lines)


def render_html(markdown: str, plot: Path, title: str) -> str:
    """The markdown report as a self-contained page (the plot inlined)."""
    import html

    uri = "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode()
    body, table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not table else "td"
            if not table:
                body.append("<table>")
                table = True
            body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("</table>")
            table = False
        if line.startswith("!["):
            body.append(f'<img alt="learning curve" src="{uri}">')
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if table:
        body.append("</table>")
    style = ("body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}"
             "h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}table{border-collapse:collapse;"
             "font-size:12.5px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4}"
             "img{max-width:100%;border:1px solid #eee}")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# --- the run --------------------------------------------------------------------------------------


def _pipeline(pipeline: str | Path, overrides: Mapping[str, Any] | None):
    from ..segmentation.pipeline import load_pipeline, pipeline_yaml, with_overrides

    p = load_pipeline(pipeline)
    if overrides:
        p = with_overrides(p, dict(overrides))
    return p, hashlib.sha256(pipeline_yaml(p).encode()).hexdigest()


def _save(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


class _Labels:
    """A label array whose unlabeled value is its dtype's maximum, as training reads it."""

    def __init__(self, array: Any, unlabeled: int) -> None:
        self.array, self.unlabeled = array, unlabeled
        self.shape = tuple(int(n) for n in array.shape)
        dtype = np.dtype(array.dtype)
        keep = dtype.kind == "u" and unlabeled == np.iinfo(dtype).max
        self.dtype = dtype if keep else np.dtype(np.uint32)
        self.max = int(np.iinfo(self.dtype).max)

    def __getitem__(self, key) -> np.ndarray:
        a = np.asarray(self.array[key])
        if a.dtype == self.dtype:
            return a
        out = a.astype(self.dtype)
        out[a == self.unlabeled] = self.max
        return out


def learning_curve(
    archive_path: Path | str,
    name: str,
    labels: str,
    *,
    pipeline: str | Path,
    slices: Sequence[int] = (1, 2, 4, 8),
    repeats: int = 3,
    max_minutes: float | None = None,
    iterations: int | None = None,
    seed: int = 0,
    add: int | None = None,
    held_out: int | None = None,
    gap: int = 0,
    max_candidates: int = 64,
    overrides: Mapping[str, Any] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    note: str = "",
    options: WriteOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Measure and store the learning curve of ``pipeline`` on label version ``labels``
    (see the module docstring). ``held_out``: how many annotated slices are scored
    (default a quarter, at most what the largest k leaves); ``gap``: pool slices within
    this many of a held-out slice never train; ``overrides``: dotted pipeline fields."""
    t0 = time.monotonic()
    started = now_iso()
    opts = options or WriteOptions()
    if max_minutes is not None and not max_minutes > 0:
        raise AnalysisError("a time budget is positive", field="--max-minutes", found=max_minutes)
    if iterations is not None and iterations < 1:
        raise AnalysisError("iterations are positive", field="--iterations", found=iterations)
    if add is not None and add < 1:
        raise AnalysisError("add at least one slice", field="--add", found=add)
    ks = sorted({int(k) for k in slices})
    if not ks or ks[0] < 1:
        raise AnalysisError("numbers of training slices are positive", field="--slices", expected="e.g. 1,2,4,8",
                            found=list(slices))
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    lv = view.label(labels, field="--labels")
    pipe, sha = _pipeline(pipeline, overrides)
    depth = int(view.geometry.shape[0])
    annotated = lv.lineage.annotated.z_planes()
    if len(annotated) < 2:
        raise AnalysisError("a learning curve needs two annotated slices at least", field="--labels",
                            expected="ground truth on several slices", found=f"{lv.address}: {annotated}")
    n_held = held_out if held_out is not None else max(1, min(len(annotated) // 4, len(annotated) - ks[-1] - gap))
    held, pool = C.hold_out(annotated, n_held, gap=gap)
    draws = C.plan_draws(pool, ks, repeats, seed)
    vs = tuple(float(v) for v in view.geometry.voxel_size_nm)
    settings = LearningCurveSettings(
        labels=lv.address, pipeline=pipe.name, pipeline_sha256=sha,
        overrides={k: (list(v) if isinstance(v, tuple) else v) for k, v in (overrides or {}).items()},
        slices=ks, repeats=repeats, seed=seed, max_minutes=max_minutes, iterations=iterations, held_out=held,
        gap=gap, pool=pool, add=add, max_candidates=max_candidates, device=device, threads=threads, voxel_size_nm=vs)
    fingerprint = job_fingerprint(ACTION, acquisition=name, note=note, **record_json(settings))
    say = progress or (lambda _m: None)
    with transaction(archive, ACTION, job=fingerprint, acquisition=name, lock_timeout=opts.lock_timeout,
                     purpose=f"learning curve of {name}") as tx:
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        view = archive.acquisition(name)
        view.require_clean(f"measure a learning curve of {name}")
        lv = view.label(lv.address)
        for r in reversed(stored_runs(view, ACTION)):
            if isinstance(r.details, LearningCurveDetails) and r.details.settings == settings:
                return [*tx.recovered, _notneeded(view, r)]
        run_id = next_run_id(view, ACTION)
        stage = tx.staging(f"{ACTION}-{name}-{tx.job[:16]}")
        (stage / "draws").mkdir(exist_ok=True)
        for stale in (ANALYSIS_DIR, "run.json"):
            p = stage / stale
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        import zarr

        image = zarr.open_array(str(view.image_path / view.geometry.levels[0].path), mode="r")
        truth = _Labels(lv.array(0), lv.unlabeled_value)
        run = dict(max_minutes=max_minutes, iterations=iterations, threads=threads, device=device)
        records: list[DrawRecord] = []
        for i, d in enumerate(draws, 1):
            path = stage / "draws" / f"{d.key}.json"
            if not path.exists():
                say(f"training {i}/{len(draws)}: k={d.k}, slices {list(d.slices)}")
                s = C.run_draw(pipe, image, truth, d, held, vs, **run)
                _save(path, record_json(draw_record(s)))
                checkpoint("learning-curve-draw")
            records.append(DrawRecord.model_validate_json(path.read_text(encoding="utf-8")))
        candidates: list[CandidateRecord] = []
        if add:
            path = stage / "draws" / "current.json"
            if not path.exists():
                say(f"training on every current slice ({len(pool)})")
                cur = C.Draw(len(pool), 0, tuple(pool), int(np.random.default_rng(seed).integers(0, 2**31 - 1)))
                t1 = time.perf_counter()
                result = C.train_draw(pipe, image, truth, cur.slices, vs, seed=cur.seed, **run)
                secs = round(time.perf_counter() - t1, 3)
                tp, fp, fn = C.score_slices(result, image, truth, vs, held, threads=result.threads)
                dice, iou = C._scores(tp, fp, fn)
                score = C.DrawScore(cur.k, 0, cur.slices, cur.seed, result.iterations, result.stopped_by, secs, tp,
                                    fp, fn, dice, iou)
                zs = C.candidate_slices(depth, annotated, max_candidates)
                say(f"scoring the uncertainty of {len(zs)} unannotated slice(s)")
                entropy = C.uncertainty(result, image, vs, zs, threads=result.threads)
                _save(path, {"draw": record_json(draw_record(score, current=True)),
                             "entropy": [[z, h] for z, h in entropy.items()]})
                checkpoint("learning-curve-current")
            doc = json.loads(path.read_text(encoding="utf-8"))
            records.append(DrawRecord.model_validate(doc["draw"]))
            candidates = candidate_records({int(z): float(h) for z, h in doc["entropy"]}, annotated, add)
        points, gains, projection = curve_records(records, add=add, seed=seed, pool=len(pool))
        folder = f"{ANALYSIS_DIR}/{run_id}"
        out = stage / ANALYSIS_DIR
        budget = f"{max_minutes:g} min" if max_minutes is not None else \
            f"{iterations or pipe.training.iterations} iterations"
        files = write_files(out, records, points, gains, projection, candidates,
                            title=f"Learning curve of {pipe.name} on {lv.address}",
                            subtitle=f"{name}; {run_id}; curation {__version__}", held=held, pool=pool, budget=budget)
        checkpoint("learning-curve-report")
        details = LearningCurveDetails(
            settings=settings, draws=records, points=points, gains=gains, projection=projection, candidates=candidates,
            files=AnalysisFiles(folder=folder,
                                tables=[f"{folder}/{f}" for f in files if f.endswith((".csv", ".parquet"))],
                                plots=[f"{folder}/{f}" for f in files if f.endswith(".png")],
                                report=f"{folder}/report.html"))
        record = RunRecord(
            id=f"runs/{run_id}", action=ACTION, acquisition=name, started=started, finished=now_iso(),
            agent=current_agent(archive.root), tool=ToolInfo(version=__version__), libraries=libraries(),
            inputs=[label_ref(view, lv, "ground-truth")],
            outputs=[OutputRef(kind="table" if f.endswith((".csv", ".parquet")) else "plot" if f.endswith(".png")
                               else "report", path=f"{folder}/{f}", bytes=(out / f).stat().st_size) for f in files],
            details=details, seconds=round(time.monotonic() - t0, 3), note=note)
        acq = tx.rel(view.path)
        message = summary_line(details)
        changes = Changes(dataset=acq, message=f"Learning curve of {name}: {pipe.name} on {lv.address} ({run_id})\n\n"
                          f"{message}\n" + (f"\n{note}\n" if note else ""))
        add_run_files(changes, tx, view, stage, run_id, record)
        checkpoint("learning-curve-record")
        result = ok(ACTION, f"{acq}/{folder}", message, **_data(view, acq, run_id, details),
                    seconds=round(time.monotonic() - t0, 3))
        tx.apply(changes.steps(), result)
    data = dict(result.data)
    data.update(archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(view.path))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _data(view, acq: str, run_id: str, d: LearningCurveDetails) -> dict[str, Any]:
    return {"acquisition": view.name, "run": f"runs/{run_id}", "record": f"{acq}/provenance/runs/{run_id}.json",
            "report": f"{acq}/{d.files.report}", "plot": f"{acq}/{d.files.folder}/learning_curve.png",
            "points": [record_json(p) for p in d.points], "gains": [record_json(g) for g in d.gains],
            "projection": record_json(d.projection) if d.projection else None,
            "suggested": [c.slice for c in d.candidates if c.suggested],
            "held_out": d.settings.held_out, "files": [f"{p}" for p in d.files.tables + d.files.plots]}


def _notneeded(view, r: RunRecord) -> Result:
    d = r.details
    assert isinstance(d, LearningCurveDetails)
    run_id = r.id.removeprefix("runs/")
    acq = view.archive.relative(view.path)
    return Result(action=ACTION, status=Status.notneeded, path=f"{acq}/{d.files.folder}",
                  message=f"this learning curve was already measured: {run_id} ({summary_line(d)})",
                  data=_data(view, acq, run_id, d))


def summary_line(d: LearningCurveDetails) -> str:
    s = d.settings
    return (f"{s.pipeline} on {s.labels}, {len(d.draws)} training(s), held-out slices {s.held_out}: "
            f"{headline(d.points, d.gains, d.projection)}"
            + (f"; annotate next: {', '.join(str(c.slice) for c in d.candidates if c.suggested)}"
               if any(c.suggested for c in d.candidates) else ""))


def write_curve_files(folder: Path, scores: Sequence[C.DrawScore], *, held: Sequence[int], pool: Sequence[int],
                      add: int | None, seed: int, title: str, budget: str = "",
                      current: C.DrawScore | None = None) -> list[str]:
    """The tables, plot and reports of an in-memory experiment (benchmarks): ``current``
    is the model on every pool slice, when one was trained."""
    draws = [draw_record(s) for s in scores] + ([draw_record(current, current=True)] if current else [])
    points, gains, projection = curve_records(draws, add=add, seed=seed, pool=len(pool))
    return write_files(folder, draws, points, gains, projection, [], title=title, subtitle="", held=held, pool=pool,
                       budget=budget)


__all__ = ["ACTION", "curve_records", "learning_curve", "plot_curve", "render_markdown", "summary_line",
           "write_curve_files", "write_files"]
