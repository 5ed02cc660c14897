"""What the acquisition page shows of an analysis or evaluation run: a title, the key
figures, its plots and a link to its report (served by ``/a/NAME/analysis/RUN/FILE``,
whose paths :meth:`~.catalog.Catalog.analysis_file` takes from the run record)."""

from __future__ import annotations

from pathlib import PurePosixPath

from ..provenance.analysis import AnalysisDetails, EvaluationDetails
from ..provenance.experiment import LearningCurveDetails
from ..provenance.runs import RunRecord
from .catalog import Section

#: plots shown on the page (the montage stays in the report)
PAGE_PLOTS = ("sizes.png", "parents.png", "scores.png", "learning_curve.png")
MAX_PARENT_LINES = 5


def _n(x: float | None, unit: str = "", digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}{unit}"


def section(name: str, r: RunRecord) -> Section:
    run = r.id.removeprefix("runs/")
    base = f"/a/{name}/analysis/{run}/"
    d = r.details
    when = r.finished[:16].replace("T", " ")
    if isinstance(d, AnalysisDetails):
        s = d.settings
        title = f"{run}: objects of {s.layer}" + (f" per {s.per}" if s.per else "")
        facts: list[tuple[str, str]] = [
            ("Objects", f"{d.counts.objects} (of {d.counts.components} connected components; "
                        f"{d.counts.removed_small} too small, {d.counts.removed_outside} outside)"),
            ("Median " + d.sizes.diameter_column.removesuffix("_nm").replace("_", " "),
             _n(d.sizes.diameter_nm_median, " nm", 4) + f" ({d.sizes.measured} whole objects)"),
        ]
        if s.within:
            facts.append(("Within", f"{s.within} ({s.within_rule}, margin {s.within_margin_nm:g} nm)"))
        for p in d.parents[:MAX_PARENT_LINES]:
            facts.append((f"Parent {p.parent_id}", f"{p.count} objects on {p.surface_um2:.3g} µm² "
                          f"({s.surface_method}): {_n(p.density_per_um2)} per µm²"))
        if d.parents_total > MAX_PARENT_LINES:
            facts.append(("More parents", f"{d.parents_total - MAX_PARENT_LINES} in parents.csv"))
        if s.preset:
            facts.append(("Plausibility", "; ".join(f.message for f in d.findings) if d.findings
                          else f"within the ranges for {s.preset}"))
        if d.agreement:
            verdict = "agrees" if all(a.agrees for a in d.agreement) else "does NOT agree"
            facts.append(("Known values", f"{verdict} with {d.expectation.source if d.expectation else 'them'}"))
            for a in d.agreement:
                tol = f"±{a.tolerance:.0%}" if a.relative else f"±{a.tolerance:g}"
                facts.append((f"  {a.quantity.replace('_', ' ')}", f"{_n(a.measured, digits=4)} vs "
                              f"{a.expected:.4g} ({tol}): {'agrees' if a.agrees else 'DISAGREES'}"))
        facts += [("Instances", d.instances), ("Run", f"{when}, {r.agent.name if r.agent else 'unknown'}")]
    elif isinstance(d, EvaluationDetails):
        s2 = d.settings
        title = f"{run}: {s2.prediction} against {s2.truth}"
        facts = [("Compared", f"{d.counts.compared_voxels} annotated voxels ({d.counts.annotated_slices} slices, "
                              f"{d.counts.annotated_regions} regions); {d.counts.unpredicted_voxels} unpredicted")]
        for x in d.semantic:
            facts.append((f"Value {x.value}" + (f" ({x.name})" if x.name else ""),
                          f"Dice {x.dice:.3f}, IoU {x.iou:.3f}, precision {x.precision:.3f}, recall {x.recall:.3f}"))
        for i in d.instances:
            what = "ids" if i.value is None else (i.name or str(i.value))
            facts.append((f"Objects ({what})", f"F1 {i.f1:.3f} (TP {i.tp}, FP {i.fp}, FN {i.fn}, IoU ≥ "
                          f"{i.iou_threshold:g}); HD95 median {_n(i.hd95_nm_median, ' nm')}"))
        facts.append(("Run", f"{when}, {r.agent.name if r.agent else 'unknown'}"))
    elif isinstance(d, LearningCurveDetails):
        s3 = d.settings
        title = f"{run}: learning curve of {s3.pipeline} on {s3.labels}"
        budget = f"{s3.max_minutes:g} min" if s3.max_minutes is not None else \
            (f"{s3.iterations} iterations" if s3.iterations else "the pipeline's budget")
        facts = [("Design", f"{len(d.draws)} trainings ({s3.repeats} draws per k, {budget} each); scored on held-out "
                            f"slices {', '.join(map(str, s3.held_out))}")]
        for p in d.points:
            known = p.dice_low is not None and p.dice_high is not None
            ci = f" (95% t: {p.dice_low:.3f}–{p.dice_high:.3f})" if known else ""
            facts.append((f"k = {p.k}", f"Dice {p.dice_mean:.3f}{ci}, IoU {p.iou_mean:.3f}"))
        for g in d.gains:
            facts.append((f"Gain {g.k_from}→{g.k_to}", f"{g.per_slice:+.4f} Dice per added slice"))
        if d.projection is not None:
            pr = d.projection
            facts.append((f"{pr.add} more slice(s)", f"Dice {pr.dice_now:.3f} → {pr.dice_then:.3f} ({pr.gain:+.3f}, "
                          f"95% bootstrap {pr.gain_low:+.3f} to {pr.gain_high:+.3f})"))
        suggested = [str(c.slice) for c in d.candidates if c.suggested]
        if suggested:
            facts.append(("Annotate next", ", ".join(suggested) + " (most uncertain under the current model)"))
        facts.append(("Run", f"{when}, {r.agent.name if r.agent else 'unknown'}"))
    else:  # pragma: no cover - the catalog passes analysis runs only
        return Section(title=run)
    plots = [PurePosixPath(p).name for p in d.files.plots]
    images = tuple(base + p for p in plots if p in PAGE_PLOTS)
    link = base + PurePosixPath(d.files.report).name if d.files.report else ""
    return Section(title=title, facts=tuple(facts), images=images, link=link)


__all__ = ["section"]
