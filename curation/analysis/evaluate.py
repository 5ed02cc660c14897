"""``curate evaluate``: a prediction scored against ground truth, stored as an analysis.

:func:`evaluate` compares two label versions of one acquisition on the voxels the truth
annotates (its unlabeled value is never background; voxels the prediction leaves
unlabeled are counted apart) with the metrics of :mod:`.metrics`:

* **semantic**, per label value: Dice, IoU, precision, recall;
* **instance**: one-to-one matching at IoU >= 0.5 (the CellMap challenge's rule), F1,
  precision, recall, and per matched pair the 95th-percentile Hausdorff distance in nm.
  A layer of kind ``instances`` is compared by its ids; any other layer by the connected
  components of each label value (``binary``: of all non-zero voxels together, for
  ground truth that holds one id per object).

It stores, in one write transaction, ``analysis/evaluation-N/`` (``semantic.csv``,
``instances.csv``, ``matches.csv``, ``scores.png``, ``report.html``) and the run record
``provenance/runs/evaluation-N.json`` whose inputs are both label versions with their
tree checksums and whose details (:class:`~curation.provenance.EvaluationDetails`) hold
every score.
"""

from __future__ import annotations

import base64
import math
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import __version__
from ..errors import AnalysisError
from ..provenance import OutputRef, RunRecord, ToolInfo, record_json
from ..provenance.analysis import (
    AnalysisFiles,
    EvaluationCounts,
    EvaluationDetails,
    EvaluationSettings,
    InstanceScoreRecord,
    SemanticScoreRecord,
)
from ..records import Result, Status, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import now_iso, open_archive
from ..repository.ingest import current_agent
from ..repository.pyramid import WriteOptions
from ..repository.transaction import Changes, checkpoint, job_fingerprint, transaction
from .metrics import json_float
from .store import ANALYSIS_DIR, add_run_files, label_ref, libraries, next_run_id, stored_runs

#: label values whose objects are compared one value at a time; more: use ``binary``
MAX_INSTANCE_VALUES = 32


class Foreground:
    """A label array seen as 0 (background), 1 (any other value) and 255 (unlabeled):
    read lazily, block by block, with the array's chunks and shards."""

    UNLABELED = 255

    def __init__(self, array: Any, unlabeled: int) -> None:
        self.array = array
        self.unlabeled_in = unlabeled
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(np.uint8)
        self.chunks = getattr(array, "chunks", None)
        self.shards = getattr(array, "shards", None)

    def __getitem__(self, region) -> np.ndarray:
        a = np.asarray(self.array[region])
        out = (a != 0).astype(np.uint8)
        out[a == self.unlabeled_in] = self.UNLABELED
        return out


def evaluate(
    archive_path: Path | str,
    name: str,
    prediction: str,
    truth: str,
    *,
    iou_threshold: float = 0.5,
    binary: bool = False,
    hausdorff: bool = True,
    connectivity: Literal[6, 18, 26] = 26,
    note: str = "",
    block_shape: tuple[int, int, int] | None = None,
    workers: int | None = None,
    options: WriteOptions | None = None,
) -> list[Result]:
    """Score label version ``prediction`` against ``truth`` and store the scores (see the
    module docstring)."""
    from .components import connected_components
    from .metrics import confusion, instance_scores, semantic_scores

    t0 = time.monotonic()
    started = now_iso()
    opts = options or WriteOptions()
    if not 0 < iou_threshold <= 1:
        raise AnalysisError("an IoU threshold is in (0, 1]", field="--iou", expected="e.g. 0.5", found=iou_threshold)
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    lp = view.label(prediction, field="--prediction")
    lt = view.label(truth, field="--truth")
    job = {"prediction": lp.address, "truth": lt.address, "iou": iou_threshold, "binary": binary,
           "hausdorff": hausdorff, "connectivity": connectivity, "note": note,
           "block_shape": list(block_shape) if block_shape else None}
    fingerprint = job_fingerprint("evaluate", acquisition=name, **job)
    with transaction(archive, "evaluate", job=fingerprint, acquisition=name, lock_timeout=opts.lock_timeout,
                     purpose=f"evaluate {name}") as tx:
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        view = archive.acquisition(name)
        view.require_clean(f"evaluate labels of {name}")
        lp, lt = view.label(lp.address), view.label(lt.address)
        vs = tuple(float(v) for v in view.geometry.voxel_size_nm)
        settings = EvaluationSettings(prediction=lp.address, truth=lt.address, iou_threshold=iou_threshold,
                                      hausdorff=hausdorff, binary=binary, connectivity=connectivity, voxel_size_nm=vs)
        for r in reversed(stored_runs(view, "evaluate")):
            if isinstance(r.details, EvaluationDetails) and r.details.settings == settings:
                acq = view.archive.relative(view.path)
                d = r.details
                return [*tx.recovered, Result(
                    action="evaluate", status=Status.notneeded, path=f"{acq}/{d.files.folder}",
                    message=f"already evaluated so: {r.id.removeprefix('runs/')} ({summary_line(d)})",
                    data={"acquisition": name, "run": r.id, "record": f"{acq}/provenance/{r.id}.json",
                          "report": f"{acq}/{d.files.report}" if d.files.report else None,
                          "semantic": [record_json(x) for x in d.semantic],
                          "instances": [record_json(x) for x in d.instances]})]
        run_id = next_run_id(view, "evaluate")
        stage = tx.staging(f"evaluate-{name}-{tx.job[:16]}")
        for sub in (ANALYSIS_DIR, "components", "run.json"):
            shutil.rmtree(stage / sub, ignore_errors=True) if (stage / sub).is_dir() else \
                (stage / sub).unlink(missing_ok=True)
        run = dict(block_shape=block_shape, executor="threads", workers=workers)
        # ids of an instance layer are objects, not classes: voxels then compare as foreground
        t_inst, p_inst = lt.kind == "instances", lp.kind == "instances"
        as_binary = binary or t_inst or p_inst
        t_ids, p_ids = lt.array(0), lp.array(0)
        t_arr, p_arr = t_ids, p_ids
        t_unl, p_unl = lt.unlabeled_value, lp.unlabeled_value
        if as_binary:
            t_arr, p_arr = Foreground(t_ids, t_unl), Foreground(p_ids, p_unl)
            names = {0: "background", 1: "foreground"}
        else:
            names = {k: v for k, v in {**lp.names, **lt.names}.items() if k not in (t_unl, p_unl)}
        t_sem_unl = Foreground.UNLABELED if as_binary else t_unl
        p_sem_unl = Foreground.UNLABELED if as_binary else p_unl
        conf = confusion(t_arr, p_arr, truth_unlabeled=t_sem_unl, pred_unlabeled=p_sem_unl, **run)
        semantic = [SemanticScoreRecord(name=names.get(s.value), truth_voxels=s.truth_voxels,
                                        pred_voxels=s.pred_voxels, **_clean(s))
                    for s in semantic_scores(conf)]
        # objects: the ids of an instance layer, else the components of each value
        values: list[int | None] = [None] if (t_inst and p_inst) else \
            sorted({v for pair in conf.counts for v in pair if v != 0})
        if len(values) > MAX_INSTANCE_VALUES:
            raise AnalysisError("too many label values to compare their objects one value at a time",
                                field="--truth", expected=f"at most {MAX_INSTANCE_VALUES}", found=len(values),
                                hint="a ground truth with one value per object: add --binary")
        instances, matches = [], []
        for v in values:
            sides = []
            for ids, arr, unl, inst, tag in ((t_ids, t_arr, t_sem_unl, t_inst, "truth"),
                                             (p_ids, p_arr, p_sem_unl, p_inst, "pred")):
                if inst:
                    sides.append((ids, lt.unlabeled_value if tag == "truth" else lp.unlabeled_value, None))
                    continue
                comp = connected_components(arr, connectivity=connectivity, select=v, unlabeled=unl,
                                            scratch=stage / "components" / f"{tag}-{v}", **run)
                src = comp.labels()
                sides.append((src, src.unlabeled, comp))
            try:
                score = instance_scores(sides[0][0], sides[1][0], voxel_size_nm=vs, truth_unlabeled=sides[0][1],
                                        pred_unlabeled=sides[1][1], iou_threshold=iou_threshold,
                                        hausdorff=hausdorff, **run)
            finally:
                for _s, _u, comp in sides:
                    if comp is not None:
                        shutil.rmtree(comp.scratch, ignore_errors=True)
            d = score.to_json()
            instances.append(InstanceScoreRecord(
                value=v, name=names.get(v) if v is not None else None,
                truth_from="instances" if t_inst else "components", prediction_from="instances" if p_inst
                else "components", **{k: json_float(d[k]) if isinstance(d[k], float) else d[k]
                                      for k in ("iou_threshold", "n_truth", "n_pred", "tp", "fp", "fn", "f1",
                                                "precision", "recall", "mean_matched_iou", "hd95_nm_mean",
                                                "hd95_nm_median", "hd95_nm_max")}))
            matches += [(v, m.truth, m.pred, m.iou, m.hd95_nm) for m in score.matches]
        ext = lt.lineage.annotated
        counts = EvaluationCounts(annotated_voxels=conf.compared_voxels + conf.unpredicted_voxels,
                                  compared_voxels=conf.compared_voxels, unpredicted_voxels=conf.unpredicted_voxels,
                                  annotated_slices=len(ext.slices), annotated_regions=len(ext.regions))
        folder = f"{ANALYSIS_DIR}/{run_id}"
        out = stage / ANALYSIS_DIR
        out.mkdir(parents=True, exist_ok=True)
        files = write_evaluation(out, settings, counts, semantic, instances, matches, name, run_id)
        details = EvaluationDetails(
            settings=settings, counts=counts, semantic=semantic, instances=instances,
            files=AnalysisFiles(folder=folder, tables=[f"{folder}/{f}" for f in files if f.endswith(".csv")],
                                plots=[f"{folder}/{f}" for f in files if f.endswith(".png")],
                                report=f"{folder}/report.html"))
        checkpoint("evaluation-report")
        record = RunRecord(
            id=f"runs/{run_id}", action="evaluate", acquisition=name, started=started, finished=now_iso(),
            agent=current_agent(archive.root), tool=ToolInfo(version=__version__), libraries=libraries(),
            inputs=[label_ref(view, lp, "prediction"), label_ref(view, lt, "truth")],
            outputs=[OutputRef(kind="table" if f.endswith(".csv") else "plot" if f.endswith(".png") else "report",
                               path=f"{folder}/{f}", bytes=(out / f).stat().st_size) for f in files],
            details=details, seconds=round(time.monotonic() - t0, 3), note=note)
        acq = tx.rel(view.path)
        message = summary_line(details)
        changes = Changes(dataset=acq, message=f"Evaluate {name}: {lp.address} against {lt.address} ({run_id})\n\n"
                          f"{message}\n" + (f"\n{note}\n" if note else ""))
        add_run_files(changes, tx, view, stage, run_id, record)
        checkpoint("evaluation-record")
        result = ok("evaluate", f"{acq}/{folder}", message, acquisition=name, run=f"runs/{run_id}",
                    record=f"{acq}/provenance/runs/{run_id}.json", report=f"{acq}/{folder}/report.html",
                    prediction=lp.address, truth=lt.address, **record_json(counts),
                    semantic=[record_json(s) for s in semantic], instances=[record_json(i) for i in instances],
                    files=[f"{folder}/{f}" for f in files], seconds=round(time.monotonic() - t0, 3))
        tx.apply(changes.steps(), result)
    data = dict(result.data)
    data.update(archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(view.path))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _clean(score) -> dict[str, Any]:
    return {k: getattr(score, k) for k in ("value", "tp", "fp", "fn", "dice", "iou", "precision", "recall")}


def summary_line(d: EvaluationDetails) -> str:
    s = d.settings
    where = f"{d.counts.annotated_slices} annotated slice(s)" if d.counts.annotated_slices else "annotated regions"
    fg = [x for x in d.semantic if x.value != 0]
    dice = ", ".join(f"{x.name or x.value} {x.dice:.3f}" for x in fg[:4]) or "no foreground"
    text = f"{s.prediction} against {s.truth} on {where} ({d.counts.compared_voxels} voxels): Dice {dice}"
    for i in d.instances[:3]:
        what = f" ({i.name or i.value})" if i.value is not None else ""
        text += (f"; instance F1{what} {i.f1:.3f} (TP {i.tp}, FP {i.fp}, FN {i.fn} at IoU >= {i.iou_threshold:g})")
        if i.hd95_nm_median is not None:
            text += f", HD95 median {i.hd95_nm_median:.1f} nm"
    if d.counts.unpredicted_voxels:
        text += f"; {d.counts.unpredicted_voxels} annotated voxel(s) the prediction leaves unlabeled"
    return text


# --- files ------------------------------------------------------------------------------------------


def write_evaluation(folder: Path, settings: EvaluationSettings, counts: EvaluationCounts,
                     semantic: list[SemanticScoreRecord], instances: list[InstanceScoreRecord],
                     matches: list[tuple], name: str, run_id: str) -> list[str]:
    """``semantic.csv``, ``instances.csv``, ``matches.csv``, ``scores.png`` and
    ``report.html`` in ``folder``; returns their names."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def table(rows: list[dict[str, Any]], columns: list[str]):
        return pa.table({c: pa.array([r.get(c) for r in rows]) for c in columns})

    sem_cols = ["value", "name", "truth_voxels", "pred_voxels", "tp", "fp", "fn", "dice", "iou", "precision", "recall"]
    inst_cols = ["value", "name", "truth_from", "prediction_from", "iou_threshold", "n_truth", "n_pred", "tp", "fp",
                 "fn", "f1", "precision", "recall", "mean_matched_iou", "hd95_nm_mean", "hd95_nm_median",
                 "hd95_nm_max"]
    pacsv.write_csv(table([s.model_dump() for s in semantic], sem_cols), folder / "semantic.csv")
    pacsv.write_csv(table([i.model_dump() for i in instances], inst_cols), folder / "instances.csv")
    pacsv.write_csv(pa.table({"value": pa.array([m[0] for m in matches], pa.int64()),
                              "truth_id": pa.array([m[1] for m in matches], pa.int64()),
                              "prediction_id": pa.array([m[2] for m in matches], pa.int64()),
                              "iou": pa.array([m[3] for m in matches], pa.float64()),
                              "hd95_nm": pa.array([json_float(m[4]) for m in matches], pa.float64())}),
                    folder / "matches.csv")
    plot_scores(semantic, instances, folder / "scores.png")
    (folder / "report.html").write_text(render_report(settings, counts, semantic, instances, folder / "scores.png",
                                                      name, run_id), encoding="utf-8")
    return ["instances.csv", "matches.csv", "report.html", "scores.png", "semantic.csv"]


def plot_scores(semantic: list[SemanticScoreRecord], instances: list[InstanceScoreRecord], path: Path) -> Path:
    """Bars: Dice, IoU, precision and recall per label value; F1, precision, recall of instances."""
    from .report import _figure

    fig = _figure(8.0, 3.8)
    left, right = fig.subplots(1, 2, width_ratios=[max(len(semantic), 1), max(len(instances), 1) + 0.5])

    def bars(ax, x, heights, offset, width, colour, label, labelled):
        rects = ax.bar(x + offset, heights, width=width, color=colour, label=label)
        if labelled:
            ax.bar_label(rects, labels=[f"{h:.2f}" for h in heights], fontsize=6, padding=1, rotation=90)

    metrics = (("dice", "#1f77b4"), ("iou", "#aec7e8"), ("precision", "#2ca02c"), ("recall", "#d62728"))
    x = np.arange(len(semantic))
    w = 0.8 / len(metrics)
    for k, (m, colour) in enumerate(metrics):
        bars(left, x, [getattr(s, m) for s in semantic], (k - 1.5) * w, w, colour, m, len(semantic) <= 8)
    left.set_xticks(x, [s.name or str(s.value) for s in semantic], fontsize=8)
    left.set_ylim(0, 1.2)
    left.set_title("Voxels, per label value", fontsize=10)
    left.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    xi = np.arange(len(instances))
    for k, (m, colour) in enumerate((("f1", "#9467bd"), ("precision", "#2ca02c"), ("recall", "#d62728"))):
        bars(right, xi, [getattr(i, m) for i in instances], (k - 1) * 0.25, 0.25, colour, m, len(instances) <= 8)
    right.set_xticks(xi, [("ids" if i.value is None else (i.name or str(i.value))) for i in instances], fontsize=8)
    right.set_ylim(0, 1.2)
    thr = instances[0].iou_threshold if instances else 0.5
    right.set_title(f"Objects, matched at IoU ≥ {thr:g}", fontsize=10)
    right.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    if not instances:
        right.text(0.5, 0.5, "no objects", ha="center", va="center", transform=right.transAxes)
    fig.savefig(path)
    return path


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title|e }}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.sub{color:#666} table{border-collapse:collapse;font-size:12.5px;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right} th{background:#f4f4f4} td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee}
</style></head><body>
<h1>{{ title|e }}</h1><div class="sub">{{ subtitle|e }}</div>
<h2>Summary</h2><p>{{ headline|e }}</p>
<p class="sub">Only voxels the truth annotates are compared (its unlabeled voxels are never background);
{{ counts.compared_voxels }} of {{ counts.annotated_voxels }} annotated voxels were compared,
{{ counts.unpredicted_voxels }} left unlabeled by the prediction.</p>
<img alt="scores" src="{{ plot }}">
<h2>Per label value</h2>
<table><tr>{% for c in sem_cols %}<th>{{ c|e }}</th>{% endfor %}</tr>
{% for r in sem %}<tr>{% for v in r %}<td>{{ v|e }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>Objects</h2>
<p class="sub">One-to-one matching at IoU ≥ {{ settings.iou_threshold }} (as the CellMap segmentation challenge);
HD95: the 95th-percentile Hausdorff distance between the surfaces of each matched pair, in nm.</p>
<table><tr>{% for c in inst_cols %}<th>{{ c|e }}</th>{% endfor %}</tr>
{% for r in inst %}<tr>{% for v in r %}<td>{{ v|e }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="sub">Tables: semantic.csv, instances.csv, matches.csv. Made by {{ tool|e }}.</p>
</body></html>
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}" if math.isfinite(v) else "–"
    return str(v)


def render_report(settings: EvaluationSettings, counts: EvaluationCounts, semantic: list[SemanticScoreRecord],
                  instances: list[InstanceScoreRecord], plot: Path, name: str, run_id: str) -> str:
    import jinja2

    d = EvaluationDetails(settings=settings, counts=counts, semantic=semantic, instances=instances,
                          files=AnalysisFiles(folder=""))
    sem_cols = ["value", "name", "truth_voxels", "pred_voxels", "dice", "iou", "precision", "recall"]
    inst_cols = ["value", "name", "n_truth", "n_pred", "tp", "fp", "fn", "f1", "precision", "recall",
                 "mean_matched_iou", "hd95_nm_median", "hd95_nm_max"]
    sem = [[_fmt(getattr(s, c)) for c in sem_cols] for s in semantic]
    inst = [[_fmt("ids" if (c == "value" and i.value is None) else getattr(i, c)) for c in inst_cols]
            for i in instances]
    uri = "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_PAGE).render(
        title=f"{settings.prediction} against {settings.truth}", subtitle=f"{name}; {run_id}", headline=summary_line(d),
        counts=counts, plot=uri, sem_cols=sem_cols, sem=sem, inst_cols=inst_cols, inst=inst, settings=settings,
        tool=f"curation {__version__}")


__all__ = ["Foreground", "evaluate", "plot_scores", "render_report", "summary_line", "write_evaluation"]
