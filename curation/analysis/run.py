"""``curate analyze``: the objects of a label version, measured, filtered, grouped and stored.

:func:`analyze` reads a label version of an acquisition (a prediction or ground truth),
finds its objects blockwise (:mod:`.components`, identical to cc3d on the whole
volume), filters them by size and by another layer (``within``), groups them by a
parent layer (``per``) with each parent's surface and density, flags implausible
results (a :data:`preset` per structure), and stores in **one write transaction**:

* the objects as a new label version of kind ``instances`` (ids as in the table),
  with lineage to the analysed version and its run (``lineage.run``);
* ``analysis/analysis-N/``: ``objects.parquet``/``.csv``, ``parents.parquet``/``.csv``,
  ``sizes.png``, ``parents.png``, ``montage.png`` and a self-contained ``report.html``;
* ``provenance/runs/analysis-N.json``: a :class:`~curation.provenance.RunRecord` whose
  ``details`` (:class:`~curation.provenance.AnalysisDetails`) hold the settings, counts,
  per-parent statistics, findings and, when known values are given (``expected``), how
  the result agrees with them.

The labelling scratch lives in the transaction's staging folder; memory follows the
block size and the number of objects, never the volume. A run killed at any point and
run again gives what an uninterrupted run gives.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import __version__
from ..errors import AnalysisError
from ..provenance import ImageRef, OutputRef, RunRecord, ToolInfo, record_json
from ..provenance.analysis import (
    MAX_RECORDED_PARENTS,
    Agreement,
    AnalysisCounts,
    AnalysisDetails,
    AnalysisFiles,
    AnalysisSettings,
    Expectation,
    FindingRecord,
    ParentStats,
    SizeSummary,
)
from ..records import Result, Status, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import now_iso, open_archive
from ..repository.pyramid import WriteOptions
from ..repository.transaction import checkpoint
from .objects import PLAUSIBILITY, ObjectAnalysis, Plausibility, SurfaceMethod, Table, WithinRule
from .store import ANALYSIS_DIR, add_run_files, label_ref, libraries, next_run_id

# --- presets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Defaults and plausible ranges for one structure. Margins are in voxels of the
    largest voxel edge, so a preset fits any voxel size."""

    name: str
    rule: Plausibility
    description: str
    within_rule: WithinRule = "majority"
    within_margin_voxels: float = 0.0
    per_margin_voxels: float = 0.0
    surface: SurfaceMethod = "mesh"


PRESETS: dict[str, Preset] = {
    "nuclear-pore": Preset(
        "nuclear-pore", PLAUSIBILITY["nuclear-pore"],
        "nuclear pore complexes: holes in the nuclear envelope about 120 nm across (disc diameter judged, "
        "80-160 nm plausible), 5-60 per µm² of envelope; 'within' the envelope means touching it (2 voxels' "
        "margin); each pore goes to the nucleus it lies in or within 2 voxels of",
        within_rule="any", within_margin_voxels=2, per_margin_voxels=2),
    "mitochondrion": Preset(
        "mitochondrion", PLAUSIBILITY["mitochondrion"],
        "mitochondria: 150-2000 nm sphere-equivalent diameter; 'within' keeps those mostly inside",
        within_rule="majority"),
    "vesicle": Preset(
        "vesicle", PLAUSIBILITY["vesicle"],
        "vesicles: 20-200 nm sphere-equivalent diameter; 'within' keeps those mostly inside",
        within_rule="majority"),
}


def preset(name: str | None) -> Preset | None:
    if name is None:
        return None
    found = PRESETS.get(name)
    if found is None:
        raise AnalysisError("unknown preset", field="--preset", expected=" | ".join(PRESETS), found=name)
    return found


# --- agreement with known values ------------------------------------------------------------------


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def agreement(a: ObjectAnalysis, expected: Expectation) -> list[Agreement]:
    """Count, median diameter and density measured against ``expected`` (see
    :class:`~curation.provenance.analysis.Expectation`)."""
    o, col = a.objects, a.settings["diameter_column"] or "equivalent_diameter_nm"
    out: list[Agreement] = []
    if expected.count is not None:
        n = len(o)
        out.append(Agreement(quantity="count", expected=expected.count, measured=n,
                             tolerance=expected.count_tolerance, relative=False,
                             agrees=abs(n - expected.count) <= expected.count_tolerance,
                             how="objects kept after the filters"))
    if expected.diameter_nm is not None:
        whole = o[col][~o["touches_border"]] if len(o) else np.zeros(0)
        med = _median(whole)
        out.append(Agreement(quantity="diameter_nm", expected=expected.diameter_nm, measured=med,
                             tolerance=expected.diameter_tolerance, relative=True,
                             agrees=med is not None and abs(med - expected.diameter_nm)
                             <= expected.diameter_tolerance * expected.diameter_nm,
                             how=f"median {col} of the {int(np.isfinite(whole).sum())} objects not cut by the "
                                 "volume's border"))
    if expected.density_per_um2 is not None:
        p = a.parents
        dens = None
        how = "no parent layer: density needs --per"
        if p is not None and len(p):
            surf = p["surface_um2"]
            if float(surf.sum()) > 0:
                dens = float(p["count"].sum() / surf.sum())
            how = (f"objects per µm² of parent surface ({a.surface_method}), {len(p)} parent(s) together")
        out.append(Agreement(quantity="density_per_um2", expected=expected.density_per_um2, measured=dens,
                             tolerance=expected.density_tolerance, relative=True,
                             agrees=dens is not None and abs(dens - expected.density_per_um2)
                             <= expected.density_tolerance * expected.density_per_um2, how=how))
    return out


_EXPECT_KEYS = {"count": "count_tolerance", "diameter_nm": "diameter_tolerance",
                "density_per_um2": "density_tolerance"}


def parse_expectation(items: Sequence[str], source: str | None = None) -> Expectation | None:
    """``["count=37", "diameter_nm=120/5%", "density_per_um2=11/0.1"]`` as an Expectation:
    ``KEY=VALUE[/TOLERANCE]``, the count's tolerance in objects, the others relative
    (``5%`` or ``0.05``)."""
    if not items:
        return None
    fields: dict[str, Any] = {"source": source or "the values given with --expect"}
    for item in items:
        key, sep, rest = str(item).partition("=")
        key = key.strip()
        if not sep or key not in _EXPECT_KEYS:
            raise AnalysisError("not a known value to compare with", field="--expect",
                                expected="count=N[/TOL], diameter_nm=D[/TOL%], density_per_um2=X[/TOL%]", found=item)
        value, _, tol = rest.partition("/")
        try:
            fields[key] = int(value) if key == "count" else float(value)
            if tol:
                t = tol.strip()
                tv = float(t[:-1]) / 100 if t.endswith("%") else float(t)
                fields[_EXPECT_KEYS[key]] = int(tv) if key == "count" and tv == int(tv) else tv
        except ValueError:
            raise AnalysisError("not a number", field="--expect", expected=f"{key}=NUMBER[/TOLERANCE]",
                                found=item) from None
    try:
        return Expectation(**fields)
    except ValueError as exc:
        raise AnalysisError(f"not a valid expectation: {' '.join(str(exc).split())[:200]}", field="--expect",
                            found=list(items)) from None


def agreement_text(rows: Sequence[Agreement]) -> str:
    def one(r: Agreement) -> str:
        tol = f"±{r.tolerance:.0%}" if r.relative else f"±{r.tolerance:g}"
        got = "none" if r.measured is None else f"{r.measured:.4g}"
        return f"{r.quantity} {got} vs {r.expected:.4g} ({tol}: {'agrees' if r.agrees else 'DISAGREES'})"

    return "; ".join(one(r) for r in rows)


# --- records from an analysis -----------------------------------------------------------------------


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def sizes(objects: Table, col: str) -> SizeSummary:
    whole = ~objects["touches_border"] if len(objects) else np.zeros(0, bool)
    d = objects[col][whole] if len(objects) else np.zeros(0)
    d = d[np.isfinite(d)]
    return SizeSummary(
        diameter_column=col, measured=len(d),
        diameter_nm_median=_num(np.median(d)) if len(d) else None,
        diameter_nm_p10=_num(np.percentile(d, 10)) if len(d) else None,
        diameter_nm_p90=_num(np.percentile(d, 90)) if len(d) else None,
        volume_nm3_median=_num(np.median(objects["volume_nm3"])) if len(objects) else None,
        thickness_nm_median=_median(objects["thickness_nm"][whole]) if len(objects) else None)


def parent_stats(parents: Table | None) -> list[ParentStats]:
    if parents is None:
        return []
    out = []
    for i in range(min(len(parents), MAX_RECORDED_PARENTS)):
        out.append(ParentStats(
            parent_id=int(parents["parent_id"][i]), count=int(parents["count"][i]),
            parent_volume_um3=float(parents["parent_volume_um3"][i]), surface_um2=float(parents["surface_um2"][i]),
            density_per_um2=_num(parents["density_per_um2"][i]),
            diameter_nm_median=_num(parents["disc_diameter_nm_median"][i]),
            diameter_nm_p10=_num(parents["disc_diameter_nm_p10"][i]),
            diameter_nm_p90=_num(parents["disc_diameter_nm_p90"][i])))
    return out


def findings(a: ObjectAnalysis) -> list[FindingRecord]:
    return [FindingRecord(level=f.level, subject=f.subject, quantity=f.quantity, message=f.message,
                          value=_num(f.value), expected=f.expected) for f in a.findings]


# --- the run -------------------------------------------------------------------------------------------


def analyze(
    archive_path: Path | str,
    name: str,
    layer: str,
    *,
    within: str | None = None,
    per: str | None = None,
    preset_name: str | None = None,
    min_size_nm3: float | None = None,
    connectivity: Literal[6, 18, 26] = 26,
    select: Sequence[int] | None = None,
    within_rule: WithinRule | None = None,
    within_margin_nm: float | None = None,
    per_mode: Literal["instances", "components"] | None = None,
    per_margin_nm: float | None = None,
    surface: SurfaceMethod | None = None,
    output: str | None = None,
    expected: Expectation | None = None,
    note: str = "",
    block_shape: Sequence[int] | None = None,
    workers: int | None = None,
    options: WriteOptions | None = None,
) -> list[Result]:
    """Analyse the objects of label version ``layer`` of acquisition ``name`` and store
    the result (see the module docstring). ``output``: the instance layer's name (default
    ``LAYER-instances``). Options left None take the preset's value, else the default
    (``within_rule`` majority, margins 0, ``surface`` mesh; ``per_mode`` instances when
    the parent layer is of kind ``instances``, else components of its mask)."""
    from ..labels import layers as L
    from ..labels.store import LabelWrite, label_transaction, stage_label_version

    t0 = time.monotonic()
    started = now_iso()
    opts = options or WriteOptions()
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    pre = preset(preset_name)
    lv = view.label(layer, field="--layer")
    lw = view.label(within, field="--within") if within else None
    lp = view.label(per, field="--per") if per else None
    out_layer = L.check_layer(output or f"{lv.layer}-instances", field="--output")
    if out_layer in {lv.layer, lw.layer if lw else None, lp.layer if lp else None}:
        raise AnalysisError("the instance layer would be a new version of an input layer", field="--output",
                            expected="another layer name", found=out_layer)
    if connectivity not in (6, 18, 26):
        raise AnalysisError("unknown connectivity", field="--connectivity", expected="6, 18 or 26", found=connectivity)
    vs = tuple(float(v) for v in view.geometry.voxel_size_nm)
    edge = max(vs)
    rule = pre.rule if pre else None
    settings = dict(
        within_rule=within_rule or (pre.within_rule if pre else "majority"),
        within_margin_nm=float(within_margin_nm if within_margin_nm is not None else
                               (pre.within_margin_voxels * edge if pre else 0.0)),
        per_margin_nm=float(per_margin_nm if per_margin_nm is not None else
                            (pre.per_margin_voxels * edge if pre else 0.0)),
        surface=surface or (pre.surface if pre else "mesh"),
        per_mode=per_mode or ("instances" if lp is not None and lp.kind == "instances" else "components"),
        min_size_nm3=float(min_size_nm3 or 0.0),
    )
    request = {"layer": lv.address, "within": lw.address if lw else None, "per": lp.address if lp else None,
               "preset": preset_name, "connectivity": connectivity, "select": sorted(select) if select else None,
               "min_size_nm3": settings["min_size_nm3"],
               "within_rule": settings["within_rule"] if lw else None,
               "within_margin_nm": settings["within_margin_nm"] if lw else None,
               "per_mode": settings["per_mode"] if lp else None,
               "per_margin_nm": settings["per_margin_nm"] if lp else None,
               "surface_method": settings["surface"] if lp else None}
    job = {"layer": lv.address, "within": lw.address if lw else None, "per": lp.address if lp else None,
           "preset": preset_name, "connectivity": connectivity, "select": sorted(select) if select else None,
           "output": out_layer, "expected": record_json(expected) if expected else None, "note": note,
           "block_shape": list(block_shape) if block_shape else None, **settings}
    with label_transaction(archive, name, "analyze", job=job, options=opts) as (tx, view):
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        done = _same_run(view, request, expected, out_layer)
        if done is not None:
            return [*tx.recovered, done]
        from .objects import analyze_objects
        from .report import write_report

        run_id = next_run_id(view, "analyze")
        stage = tx.staging(f"analyze-{name}-{tx.job[:16]}")
        scratch = stage / "components"
        shutil.rmtree(scratch, ignore_errors=True)  # labels are recomputed, not resumed
        shutil.rmtree(stage / ANALYSIS_DIR, ignore_errors=True)
        lv = view.label(lv.address)
        lw = view.label(lw.address) if lw else None
        lp = view.label(lp.address) if lp else None
        run = dict(executor="threads", workers=workers)
        a = analyze_objects(
            lv.array(0), voxel_size_nm=vs, connectivity=connectivity, select=list(select) if select else None,
            unlabeled=lv.unlabeled_value, min_size_nm3=settings["min_size_nm3"],
            within=lw.array(0) if lw else None, within_rule=settings["within_rule"],
            within_margin_nm=settings["within_margin_nm"], within_unlabeled=lw.unlabeled_value if lw else None,
            per=lp.array(0) if lp else None, per_mode=settings["per_mode"], per_margin_nm=settings["per_margin_nm"],
            per_unlabeled=lp.unlabeled_value if lp else None, surface=settings["surface"], plausibility=rule,
            scratch=scratch, block_shape=block_shape, **run)
        with a:
            col = a.settings["diameter_column"] or "equivalent_diameter_nm"
            agree = agreement(a, expected) if expected else []
            if rule is not None:
                a.extra["plausibility_rule"] = rule
            a.extra["agreement"] = agree
            a.extra["expected"] = expected
            import zarr

            image = zarr.open_array(str(view.image_path / view.geometry.levels[0].path), mode="r")
            what = f"{lv.address}" + (f" within {lw.address}" if lw else "") + (f" per {lp.address}" if lp else "")
            write_report(a, stage / ANALYSIS_DIR, image=image, parents=lp.array(0) if lp else None,
                         title=f"Objects of {lv.address} in {name}",
                         subtitle=f"{what}; {run_id}; curation {__version__}")
            checkpoint("analysis-report")
            n = len(a.objects)
            version = L.next_version(view, out_layer)
            address = L.address_of(out_layer, version)
            folder = f"{ANALYSIS_DIR}/{run_id}"
            files = sorted(p.name for p in (stage / ANALYSIS_DIR).iterdir())
            comp = a.components
            counts = AnalysisCounts(
                components=a.counts["components"], removed_small=a.counts.get("removed_small", 0),
                removed_outside=a.counts.get("removed_outside", 0), objects=n,
                touching_border=int(a.objects["touches_border"].sum()) if n else 0,
                without_parent=int((a.objects["parent_id"] == 0).sum()) if (n and lp) else 0,
                provisional=comp.provisional, merged_pairs=comp.merged_pairs)
            details = AnalysisDetails(
                settings=AnalysisSettings(
                    layer=lv.address, within=lw.address if lw else None, per=lp.address if lp else None,
                    preset=preset_name, connectivity=connectivity, select=sorted(select) if select else None,
                    min_size_nm3=settings["min_size_nm3"],
                    within_rule=settings["within_rule"] if lw else None,
                    within_margin_nm=settings["within_margin_nm"] if lw else None,
                    per_mode=settings["per_mode"] if lp else None,
                    per_margin_nm=settings["per_margin_nm"] if lp else None,
                    surface_method=settings["surface"] if lp else None, voxel_size_nm=vs, diameter_column=col,
                    block_shape=comp.grid.block_shape),
                counts=counts, sizes=sizes(a.objects, col), parents=parent_stats(a.parents),
                parents_total=len(a.parents) if a.parents is not None else 0, findings=findings(a),
                expectation=expected, agreement=agree, instances=address,
                files=AnalysisFiles(folder=folder, tables=[f"{folder}/{f}" for f in files if f.endswith((".parquet", ".csv"))],
                                    plots=[f"{folder}/{f}" for f in files if f.endswith(".png")],
                                    report=f"{folder}/report.html"))
            inputs = [label_ref(view, lv, "objects")]
            inputs += [label_ref(view, lw, "within")] if lw else []
            inputs += [label_ref(view, lp, "per")] if lp else []
            image_ref = ImageRef(acquisition=name, path=view.image_path.name, role="image",
                                 tree_sha256=view.ingest.image.tree_sha256)
            staged = stage_label_version(
                tx, view, LabelWrite(
                    layer=out_layer, source=a.labels, annotated=lv.lineage.annotated, kind="instances",
                    parents=[lv.address], label_values=range(n + 1), action="analyze", details=details,
                    inputs=[*inputs[1:], image_ref], note=note or f"objects of {lv.address} ({run_id})",
                    run=f"runs/{run_id}", started=started, content_key={"run": run_id, "objects": n}),
                opts, stage_key=stage.name, version=version)
            label_out = staged.record.outputs[0]
            outputs = [label_out] + [
                OutputRef(kind="table" if f.endswith((".parquet", ".csv")) else "plot" if f.endswith(".png")
                          else "report", path=f"{folder}/{f}", bytes=(stage / ANALYSIS_DIR / f).stat().st_size)
                for f in files]
            record = RunRecord(
                id=f"runs/{run_id}", action="analyze", acquisition=name, started=started, finished=now_iso(),
                agent=staged.record.agent, tool=ToolInfo(version=__version__), libraries=libraries(),
                inputs=[*inputs, image_ref], outputs=outputs, details=details, engine=staged.record.engine,
                seconds=round(time.monotonic() - t0, 3), note=note)
        changes = staged.changes
        add_run_files(changes, tx, view, stage, run_id, record)
        checkpoint("analysis-record")
        message = summary_line(name, run_id, details)
        changes.message = (f"Analyze {name}: {lv.address}, {n} object(s) stored as {address} ({run_id})\n\n"
                           f"{message}\n\n{staged.changes.message}\n")
        acq = tx.rel(view.path)
        result = ok("analyze", f"{acq}/{folder}", message, acquisition=name, run=f"runs/{run_id}",
                    record=f"{acq}/provenance/runs/{run_id}.json", report=f"{acq}/{folder}/report.html",
                    instances=address, tag=staged.result.data["tag"],
                    instances_tree_sha256=staged.result.data["tree_sha256"],
                    **record_json(details.counts), sizes=record_json(details.sizes),
                    parents=[record_json(p) for p in details.parents], findings=[f.message for f in details.findings],
                    agreement=[record_json(r) for r in agree], files=[f"{folder}/{f}" for f in files],
                    seconds=round(time.monotonic() - t0, 3))
        tx.apply(changes.steps(), result)
    data = dict(result.data)
    data.update(archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(view.path))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _same_run(view, request: dict[str, Any], expected: Expectation | None, out_layer: str) -> Result | None:
    """``notneeded`` when a stored analysis was asked the same of the same (immutable) versions."""
    from ..labels.layers import parse_address
    from .store import stored_runs

    for r in reversed(stored_runs(view, "analyze")):
        d = r.details
        if not isinstance(d, AnalysisDetails):
            continue
        if d.settings.model_dump(include=set(request)) == request and d.expectation == expected \
                and parse_address(d.instances)[0] == out_layer:
            run_id = r.id.removeprefix("runs/")
            acq = view.archive.relative(view.path)
            return Result(action="analyze", status=Status.notneeded, path=f"{acq}/{d.files.folder}",
                          message=f"{request['layer']} was already analysed so: {run_id} "
                                  f"({d.counts.objects} object(s), instances {d.instances})",
                          data={"acquisition": view.name, "run": r.id, "record": f"{acq}/provenance/{r.id}.json",
                                "report": f"{acq}/{d.files.report}" if d.files.report else None,
                                "instances": d.instances, "objects": d.counts.objects,
                                "agreement": [record_json(a) for a in d.agreement],
                                "findings": [f.message for f in d.findings]})
    return None


def summary_line(name: str, run_id: str, d: AnalysisDetails) -> str:
    """One line for a librarian: what was found, per parent, flags, agreement."""
    s = d.settings
    text = f"{d.counts.objects} object(s) in {s.layer}"
    if d.counts.components != d.counts.objects:
        text += f" (of {d.counts.components} components)"
    if d.sizes.diameter_nm_median is not None:
        text += f", median {d.sizes.diameter_column.removesuffix('_nm').replace('_', ' ')} " \
                f"{d.sizes.diameter_nm_median:.0f} nm"
    if d.parents:
        per = "; ".join(f"parent {p.parent_id}: {p.count}" + (f", {p.density_per_um2:.1f}/µm²"
                                                              if p.density_per_um2 is not None else "")
                        for p in d.parents[:3])
        more = f" (+{d.parents_total - 3} more)" if d.parents_total > 3 else ""
        text += f"; {per}{more}"
    text += f"; {len(d.findings)} plausibility flag(s)" if d.findings else ""
    if d.agreement:
        ok_all = all(r.agrees for r in d.agreement)
        text += f"; {'agrees' if ok_all else 'does NOT agree'} with {d.expectation.source if d.expectation else ''}" \
                f" ({agreement_text(d.agreement)})"
    return f"{text}; instances {d.instances}, report analysis/{run_id}/report.html"


__all__ = ["PRESETS", "Preset", "agreement", "agreement_text", "analyze", "parse_expectation", "preset",
           "summary_line"]
