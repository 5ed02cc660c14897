"""Painted ground truth: strokes on any plane stored as the next version through the
`labels import` write, with lineage; checks of the edit; `curate labels paint`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curation.errors import LabelError
from curation.labels import layers as L
from curation.repository import datalad_ops as dlo
from curation.web.catalog import Catalog
from curation.web.paint import PaintSource, annotated_after, check_edit, paint, rasterize

from .conftest import SHAPE, v2_mask

CURATE = str(Path(sys.executable).parent / "curate")


def _read(root: Path, address: str) -> np.ndarray:
    arr, _ = L.read_label_version(root, "cells", address)
    return np.asarray(arr[:])


def test_paint_on_xz_and_xy_makes_v3_with_lineage(fresh_archive):
    cat = Catalog(fresh_archive)
    edit = {"base": "cell@v2", "note": "fixed the rim", "creator": "C. Painter",
            "strokes": [{"plane": "xz", "index": 80, "value": 2, "radius": 1.5, "points": [[2, 20], [17, 20]]},
                        {"plane": "xy", "index": 10, "value": 0, "radius": 4, "points": [[80, 100]]},
                        {"plane": "yz", "index": 150, "value": 1, "radius": 1, "points": [[12, 30], [12, 60]]}],
            "complete": [{"plane": "xy", "index": 7}]}
    res = paint(cat, "cells", edit, tool="test")
    assert res.data["address"] == "cell@v3" and res.data["parents"] == ["cell@v2"]
    assert res.data["tag"] == "cells/cell/v3" and res.data["kind"] == "ground-truth"
    v2, v3 = _read(fresh_archive, "cell@v2"), _read(fresh_archive, "cell@v3")
    # the xz stroke: y = 80, z 2..17 around x = 20, radius 1.5 -> z 1..18, x 19..21
    assert (v3[1:19, 80, 19:22] == 2).all() and v3[0, 80, 20] == 255 and v3[19, 80, 20] == 255
    assert v3[2, 80, 22] == 255 and v3[1, 80, 18] == 255
    # the eraser on xy slice 10: background where the disc was
    assert v2[10, 80, 100] == 1 and (v3[10, 78:83, 98:103] == 0).all() and v3[10, 80, 105] == 1
    # the yz stroke: x = 150, z = 12, y 29..61
    assert (v3[12, 30:61, 150] == 1).all() and v3[12, 25, 150] == 255
    # complete slice 7: every voxel annotated, background except where the xz stroke crosses it
    s7 = v3[7].copy()
    assert (s7[80, 19:22] == 2).all()
    s7[80, 19:22] = 0
    assert (v2[7] == 255).all() and (s7 == 0).all()
    # untouched voxels keep the parent's values
    keep = np.ones(SHAPE, bool)
    keep[:, 80, 17:24] = False
    keep[10, 74:87, 94:107] = False
    keep[11:14, 28:63, 150] = False
    keep[7] = False
    assert (v3[keep] == v2[keep]).all()
    lv = L.resolve(cat.archive, "cells", "cell@v3")
    cur = lv.lineage
    assert cur.parents == ["cell@v2"] and cur.creator == "C. Painter" and cur.note == "fixed the rim"
    ann = cur.annotated.model_dump(mode="json")
    assert ann["slices"] == [4, 7, 10, 15]
    assert {"z": [1, 19], "y": [80, 81], "x": [19, 22]} in ann["regions"]
    assert {"z": [11, 14], "y": [29, 62], "x": [150, 151]} in ann["regions"]
    assert cur.painted.tool == "test" and cur.painted.strokes == 3
    assert [(p.plane, p.index) for p in cur.painted.planes] == [("xz", 80), ("xy", 10), ("yz", 150)]
    assert [(p.plane, p.index) for p in cur.painted.complete] == [("xy", 7)]
    prov = lv.record()
    assert prov.action == "labels-paint" and prov.details.edit.strokes[0].plane == "xz"
    assert prov.files()[0].name == "edit.json"
    names = {p["label-value"]: p["name"] for p in lv.image_label["properties"]}
    assert names[1] == "cell" and names[2] == "nucleolus" and names[255] == "unlabeled"
    # v2 is untouched and both repositories are tagged
    assert (_read(fresh_archive, "cell@v2") == v2).all()
    assert "cells/cell/v3" in dlo.git(fresh_archive, "tag", "-l").split()


def test_paint_a_new_layer_without_base(fresh_archive):
    res = paint(Catalog(fresh_archive), "liver", {"layer": "mito", "strokes": [
        {"plane": "xy", "index": 3, "value": 5, "radius": 2, "points": [[10, 10], [10, 30]]}]}, tool="test")
    assert res.data["address"] == "mito@v1" and res.data["parents"] == [] and res.data["dtype"] == "uint8"
    arr, attrs = L.read_label_version(fresh_archive, "liver", "mito@v1")
    a = np.asarray(arr[:])
    assert a[3, 10, 20] == 5 and a[3, 20, 20] == 255 and a[4, 10, 20] == 255
    assert attrs["curation"]["annotated"] == {"slices": [], "regions": [{"z": [3, 4], "y": [8, 13], "x": [8, 33]}]}


@pytest.mark.parametrize("edit, field", [
    ({"strokes": []}, "strokes"),
    ({"strokes": [{"plane": "ab", "index": 1, "value": 1, "points": [[1, 1]]}]}, "strokes[0].plane"),
    ({"strokes": [{"plane": "xy", "index": 20, "value": 1, "points": [[1, 1]]}]}, "strokes[0].index"),
    ({"strokes": [{"plane": "xy", "index": 2, "value": -1, "points": [[1, 1]]}]}, "strokes[0].value"),
    ({"strokes": [{"plane": "xy", "index": 2, "value": 1, "radius": 500, "points": [[1, 1]]}]}, "strokes[0].radius"),
    ({"strokes": [{"plane": "xy", "index": 2, "value": 1, "points": []}]}, "strokes[0].points"),
    ({"strokes": [{"plane": "xy", "index": 2, "value": 1}]}, "strokes[0]"),
    ({"complete": [{"plane": "yz", "index": 999}]}, "complete[0].index"),
    ({"strokes": [], "paint": 1}, "edit"),
])
def test_bad_edits_are_refused_with_the_field(edit, field):
    with pytest.raises(LabelError) as exc:
        check_edit(edit, SHAPE)
    assert exc.value.field == field


def test_too_much_painting_is_refused():
    big = {"plane": "xy", "index": 0, "value": 1, "radius": 1, "points": [[0, 0], [0, 140000]]}
    with pytest.raises(LabelError, match="too large an area"):
        rasterize([big], (1, 10, 140000), np.dtype("uint8"))
    many = {"strokes": [{"plane": "xy", "index": 0, "value": 1, "points": [[0, 0]] * 30000}]}
    with pytest.raises(LabelError, match="too many stroke points"):
        check_edit(many, SHAPE)


def test_value_must_fit_the_base_dtype(fresh_archive):
    with pytest.raises(LabelError, match="does not fit") as exc:
        paint(Catalog(fresh_archive), "cells", {"base": "cell@v2", "strokes": [
            {"plane": "xy", "index": 3, "value": 255, "points": [[5, 5]]}]}, tool="test")
    assert "255 means unlabeled" in str(exc.value)
    assert [v.address for v in Catalog(fresh_archive).versions("cells")] == ["cell@v1", "cell@v2"]


def test_paint_source_reads_base_and_skips_empty_shards():
    shape = (4, 300, 300)
    layers = rasterize([{"plane": "xy", "index": 1, "value": 3, "radius": 1, "points": [[5, 5]]}], shape,
                       np.dtype("uint8"))
    src = PaintSource(shape, "uint8", None, None, None, layers, [("xz", 100)])
    region = (slice(0, 4), slice(0, 300), slice(0, 300))
    out = src.read(region)
    assert out[1, 5, 5] == 3 and out[1, 5, 7] == 255 and (out[:, 100, :] == 0).all()
    assert not src.is_fill(region)
    assert src.is_fill((slice(0, 4), slice(0, 50), slice(0, 50))) is False  # the stroke's plane crosses it
    assert src.is_fill((slice(2, 4), slice(0, 50), slice(0, 50)))


def test_annotated_after_keeps_the_base_and_skips_complete_slices():
    layers = rasterize([{"plane": "xy", "index": 4, "value": 1, "radius": 1, "points": [[5, 5]]},
                        {"plane": "xy", "index": 6, "value": 1, "radius": 1, "points": [[5, 5]]}], SHAPE,
                       np.dtype("uint8"))
    out = annotated_after({"slices": [4]}, layers, [("yz", 3)], SHAPE)
    assert out["slices"] == [4]
    assert out["regions"] == [{"z": [0, 20], "y": [0, 160], "x": [3, 4]}, {"z": [6, 7], "y": [4, 7], "x": [4, 7]}]


def test_cli_paint_round_trip(fresh_archive, tmp_path):
    edit = tmp_path / "edit.json"
    edit.write_text(json.dumps({"base": "cell@v1", "strokes": [
        {"plane": "xz", "index": 40, "value": 1, "radius": 1, "points": [[0, 0], [19, 0]]}]}))
    out = subprocess.run([CURATE, "labels", "paint", str(fresh_archive), "cells", str(edit), "--note", "from the CLI",
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["status"] == "ok" and d["address"] == "cell@v3" and d["parents"] == ["cell@v1"]
    lv = L.resolve(Catalog(fresh_archive).archive, "cells", "cell@v3")
    assert lv.lineage.note == "from the CLI" and lv.lineage.painted.tool == "curate labels paint"
    bad = subprocess.run([CURATE, "labels", "paint", str(fresh_archive), "cells", str(tmp_path / "nope.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    edit.write_text("{not json")
    bad = subprocess.run([CURATE, "labels", "paint", str(fresh_archive), "cells", str(edit)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
