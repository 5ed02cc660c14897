"""``curate evaluate``: a prediction scored against ground truth, stored as an analysis."""

import click

from . import params
from .base import handle_errors, json_option, render


def _text(r) -> str:
    d = r.data
    if r.action != "evaluate":
        return r.message
    lines = [r.message, f"  report         {d.get('report')}", f"  record         {d.get('record')}"]
    for s in d.get("semantic", []):
        lines.append(f"  value {s['value']:<8} {str(s.get('name') or ''):18} Dice {s['dice']:.3f}  IoU {s['iou']:.3f}  "
                     f"precision {s['precision']:.3f}  recall {s['recall']:.3f}")
    for i in d.get("instances", []):
        what = "ids" if i.get("value") is None else f"value {i['value']}"
        hd = i.get("hd95_nm_median")
        lines.append(f"  objects ({what}): F1 {i['f1']:.3f}  TP {i['tp']}  FP {i['fp']}  FN {i['fn']}"
                     + (f"  HD95 median {hd:.1f} nm" if hd is not None else ""))
    if d.get("archive_commit"):
        lines += [f"  archive commit {d['archive_commit']}", f"  dataset commit {d['dataset_commit']}"]
    return "\n".join(lines)


@click.command("evaluate")
@click.argument("archive", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option("--prediction", required=True, metavar="LAYER@vN", help="The label version to score.")
@click.option("--truth", required=True, metavar="LAYER@vM", help="The ground truth (only its annotated voxels count).")
@click.option("--iou", "iou_threshold", type=params.FRACTION, default=0.5, show_default=True,
              help="IoU at which a predicted object matches a true one (one-to-one).")
@click.option("--binary", is_flag=True,
              help="Every non-zero value is one class (ground truth holding one id per object).")
@click.option("--no-hausdorff", is_flag=True, help="Skip the HD95 of matched objects.")
@click.option("--connectivity", type=click.Choice(["6", "18", "26"]), default="26", show_default=True,
              help="Voxel neighbourhood that joins an object of a semantic layer.")
@click.option("--note", default="", help="Free text kept in the record.")
@click.option("--wait", type=params.WAIT, default=0, help="Seconds to wait for another writer's lock.")
@json_option
@handle_errors
def command(archive, name, prediction, truth, iou_threshold, binary, no_hausdorff, connectivity, note, wait, as_json):
    """Score a prediction against ground truth and store the scores as an analysis.

    Dice, IoU, precision and recall per label value; objects matched one-to-one at
    IoU >= 0.5 with F1 and the 95th-percentile Hausdorff distance (nm). Only voxels the
    truth annotates count.
    """
    from ..analysis.evaluate import evaluate
    from ..repository.pyramid import WriteOptions

    records = evaluate(archive, name, prediction, truth, iou_threshold=iou_threshold, binary=binary,
                       hausdorff=not no_hausdorff, connectivity=int(connectivity), note=note,
                       options=WriteOptions(lock_timeout=wait))
    render(records, as_json, text=_text, single=True)
