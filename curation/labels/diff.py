"""Compare two label versions: ``curate labels diff ARCHIVE NAME LAYER@vA LAYER@vB``.

Reported: slices annotated in B and not in A (added) and the reverse (removed); on the
area both annotate (whole slices, or the overlap of their annotated regions; voxels
either leaves unlabeled are skipped), per label value the voxels A and B give it, the
voxels that gained or lost it, and the Dice overlap of A's and B's voxels of that value
(:mod:`curation.analysis.metrics`, with A as the reference: the same code as
``curate evaluate``). Two versions of different layers compare as well (a prediction
against ground truth).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.metrics import add_counts, confusion_counts, score_value
from ..errors import LabelError
from ..records import Result, ok
from ..repository.archive import open_archive
from . import layers as L


def compare(a_array, a: L.LabelVersion, b_array, b: L.LabelVersion) -> dict[str, Any]:
    """The comparison of two label versions (arrays at level 0), JSON-ready."""
    if tuple(a_array.shape) != tuple(b_array.shape):
        raise LabelError("the two label versions differ in shape", field="shape",
                         expected=tuple(a_array.shape), found=tuple(b_array.shape))
    shape = tuple(a_array.shape)
    pa = L.annotated_planes(a.lineage.annotated, shape)
    pb = L.annotated_planes(b.lineage.annotated, shape)
    za, zb = set(pa), set(pb)
    common = sorted(za & zb)
    ua, ub = a.unlabeled_value, b.unlabeled_value
    conf: dict[tuple[int, int], int] = {}
    changed_slices = []
    for z in common:
        va, vb = np.asarray(a_array[z]), np.asarray(b_array[z])
        keep = np.ones(va.shape, bool)
        for m in (pa[z], pb[z]):
            if m is not None:
                keep &= m
        if ua is not None:
            keep &= va != ua
        if ub is not None:
            keep &= vb != ub
        c = confusion_counts(va[keep], vb[keep])
        if any(n for (x, y), n in c.items() if x != y):
            changed_slices.append(z)
        add_counts(conf, c)
    values = sorted({x for x, _ in conf} | {y for _, y in conf})
    per_value = {}
    for v in values:
        score = score_value(conf, v)  # A is the reference: fn = lost, fp = gained
        per_value[str(v)] = {
            "voxels_a": score.truth_voxels, "voxels_b": score.pred_voxels,
            "gained": score.fp, "lost": score.fn, "changed": score.fp + score.fn,
            "dice": score.dice,
        }
    compared = sum(conf.values())
    changed = sum(n for (x, y), n in conf.items() if x != y)
    return {
        "a": a.address, "b": b.address,
        "slices_added": sorted(zb - za), "slices_removed": sorted(za - zb), "slices_common": common,
        "compared_voxels": compared, "changed_voxels": changed, "changed_slices": changed_slices,
        "per_value": per_value,
        "dice": {k: d["dice"] for k, d in per_value.items()},
    }


def diff_labels(archive_path: Path | str, name: str, a: str, b: str) -> list[Result]:
    """Compare label versions ``a`` and ``b`` of acquisition ``name`` (see the module docstring)."""
    view = open_archive(archive_path).acquisition(name)
    va = view.label(a, field="A")
    vb = view.label(b, field="B")
    d = compare(va.array(0), va, vb.array(0), vb)
    names = {str(k): v for lv in (va, vb) for k, v in lv.names.items()}
    d["label_names"] = {k: names.get(k) for k in d["per_value"]}
    d["b_descends_from_a"] = any(x.get("address") == va.address for x in L.ancestry(view, vb))
    dice_text = ", ".join(f"{names.get(k) or k} {v['dice']:.3f}" for k, v in d["per_value"].items()) or "nothing to compare"
    replaced = f", {len(d['changed_slices'])} changed ({', '.join(map(str, d['changed_slices']))})" \
        if d["changed_slices"] else ""
    msg = (f"{va.address} -> {vb.address}: {len(d['slices_added'])} slice(s) added, "
           f"{len(d['slices_removed'])} removed, {len(d['slices_common'])} in common{replaced}, with "
           f"{d['changed_voxels']} of {d['compared_voxels']} voxels changed; Dice {dice_text}")
    return [ok("labels-diff", view.archive.relative(vb.path), msg, acquisition=name, **d)]
