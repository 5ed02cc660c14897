"""Reading volunteer annotations: the example exports, mask folders, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from curation.errors import CurationError, LabelError
from curation.labels.annotations import read_mask_folder, read_polylines
from curation.labels.consensus import aggregate
from curation.labels.polylines import fill_traces

DATA = Path(__file__).parent / "data"
HEADER = "annotator,slice,trace,x,y\n"


# --- the example exports ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["polylines_example.csv", "polylines_example.json"])
def test_example_exports(name):
    aset = read_polylines(DATA / name, slice_shape=(32, 32), n_slices=3)
    assert aset.kind == "polylines" and aset.slice_shape == (32, 32)
    assert aset.annotators == ["u1", "u2", "u3"] and aset.slices == [0, 1]
    assert aset.sources == [DATA / name]
    assert [len(t) for t in aset.polylines["u1"][0]] == [3, 3]
    assert not any(t.closed for t in aset.polylines["u1"][0])
    assert aset.polylines["u2"][0][0].closed
    assert aset.polylines["u3"] == {0: []}  # looked at slice 0, drew nothing
    # u1's two open pieces close into the square that u2 drew closed
    square = fill_traces(aset.polylines["u1"][0], (32, 32))
    assert square.sum() == pytest.approx(16 * 16, abs=20)
    res = aggregate(aset, "cria")
    assert res.labels[0].sum() == pytest.approx(15 * 15, abs=20)
    assert res.flagged == ["u3"] and res.stats("u3").reasons[0] == "empty annotation on slices 0"


def test_csv_and_json_examples_agree():
    a = read_polylines(DATA / "polylines_example.csv", slice_shape=(32, 32))
    b = read_polylines(DATA / "polylines_example.json")
    for who in a.annotators:
        for z in a.slices_of(who):
            assert [t.closed for t in a.polylines[who][z]] == [t.closed for t in b.polylines[who][z]]
            for s, t in zip(a.polylines[who][z], b.polylines[who][z]):
                assert np.array_equal(s.points, t.points)


def test_zooniverse_column_names():
    aset = read_polylines(DATA / "zooniverse_flat_example.csv", slice_shape=(16, 16))
    assert aset.annotators == ["not-logged-in-3f2a", "volunteer_7"] and aset.slices == [2]
    assert len(aset.polylines["not-logged-in-3f2a"][2]) == 2


def test_frame_column(tmp_path):
    p = tmp_path / "frames.csv"
    p.write_text("user_name,frame,trace,x,y,closed\nv1,4,0,1,1,yes\nv1,4,0,5,1,yes\nv1,4,0,5,5,yes\n")
    aset = read_polylines(p, slice_shape=(8, 8))
    assert aset.slices == [4] and aset.polylines["v1"][4][0].closed


# --- polyline refusals --------------------------------------------------------------------


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    p = tmp_path / "traces.csv"
    p.write_text(header + body)
    return p


@pytest.mark.parametrize(
    ("body", "header", "needles"),
    [
        ("u1,0,t1,1,1\nu1,0,t1,abc,2\n", HEADER, ["row 3, x", "not a number", "'abc'"]),
        ("u1,0,t1,1,1\nu1,0,t1,2,nan\n", HEADER, ["row 3, y", "'nan'"]),
        ("u1,0,t1,1\n", "annotator,slice,trace,x\n", ["missing column 'y'", "annotator,slice,trace,x"]),
        ("u1,42,t1,1,1\nu1,42,t1,2,2\n", HEADER, ["row 2, slice", "slice 42 is outside the volume (expected 0..19, found 42)"]),
        ("u1,x3,t1,1,1\n", HEADER, ["row 2, slice", "'x3'"]),
        ("u1,0,t1,1,1\nu1,0,t2,2,2\nu1,0,t2,3,3\n", HEADER, ["row 2, trace 't1'", "at least 2 points", "found 1 point"]),
        ("u1,0,t1,-5,1\nu1,0,t1,2,2\n", HEADER, ["row 2, x", "outside the slice", "-5.0"]),
        ("u1,0,t1,1,1\nu1,0,t1,300,2\n", HEADER, ["row 3, x", "expected -2..65, found 300.0", "300.0"]),
        ("u1,0,t1,1,1\nu1,0,t1,2,66.5\n", HEADER, ["row 3, y", "66.5"]),
        (",0,t1,1,1\n", HEADER, ["row 2, annotator", "empty annotator"]),
        ("u1,0,t1,1,1,true\nu1,0,t1,2,2,false\n", HEADER.strip() + ",closed\n", ["row 3, closed", "disagree on 'closed'"]),
        ("u1,0,t1,1,1,maybe\n", HEADER.strip() + ",closed\n", ["row 2, closed", "'maybe'"]),
    ],
)
def test_csv_refusals(tmp_path, body, header, needles):
    p = _csv(tmp_path, body, header)
    with pytest.raises(LabelError) as err:
        read_polylines(p, slice_shape=(64, 64), n_slices=20)
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg
    for needle in needles:
        assert needle in msg, msg


def test_csv_tolerance_and_empty_rows(tmp_path):
    p = _csv(tmp_path, "u1,0,t1,-0.9,0\nu1,0,t1,63.9,64\nu2,0,,,\n")
    aset = read_polylines(p, slice_shape=(64, 64), n_slices=1)
    assert aset.annotators == ["u1", "u2"] and aset.polylines["u2"] == {0: []}
    with pytest.raises(LabelError, match="-0.5"):
        read_polylines(p, slice_shape=(64, 64), tolerance_px=0.5)


def test_csv_needs_the_slice_shape(tmp_path):
    p = _csv(tmp_path, "u1,0,t1,1,1\nu1,0,t1,2,2\n")
    with pytest.raises(LabelError, match="slice_shape"):
        read_polylines(p)


def _json(tmp_path: Path, doc) -> Path:
    p = tmp_path / "traces.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def _doc(points, slice_=0, **extra):
    doc = {"format": "curation-polylines/1", "slice_shape": [64, 64], "annotations": [{"annotator": "u1", "slice": slice_, "traces": [{"points": points}]}]}
    doc.update(extra)
    return doc


@pytest.mark.parametrize(
    ("doc", "needles"),
    [
        (_doc([[1, 1], [2, 2]], format="zooniverse"), ["format", "'curation-polylines/1'", "'zooniverse'"]),
        (_doc([[1, 1], ["abc", 2]]), ["annotations[0].traces[0].points[1], x", "not a number", 'found "abc"']),
        (_doc([[1, 1], [2, 2]], slice_=42), ["annotations[0].slice", "slice 42 is outside the volume (expected 0..19, found 42)"]),
        (_doc([[1, 1]]), ["annotations[0].traces[0]", "at least 2 points", "found 1 point"]),
        (_doc([[1, 1], [2, -3]]), ["annotations[0].traces[0].points[1], y", "-3.0"]),
        (_doc([[1, 1], [99, 2]]), ["annotations[0].traces[0].points[1], x", "99.0"]),
        (_doc([[1, 1], [2, 2]], slice_shape=[64]), ["slice_shape", "[64]"]),
        (_doc([[1, 1], [2]]), ["annotations[0].traces[0].points[1]", "[x, y]"]),
        ("{not json", ["invalid JSON at line 1"]),
    ],
)
def test_json_refusals(tmp_path, doc, needles):
    p = _json(tmp_path, doc)
    with pytest.raises(LabelError) as err:
        read_polylines(p, n_slices=20)
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg
    for needle in needles:
        assert needle in msg, msg


def test_json_slice_shape_must_match_the_caller(tmp_path):
    p = _json(tmp_path, _doc([[1, 1], [2, 2]]))
    assert read_polylines(p, slice_shape=(64, 64)).slice_shape == (64, 64)
    with pytest.raises(LabelError, match=r"expected \(32, 32\), found \(64, 64\)"):
        read_polylines(p, slice_shape=(32, 32))


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(LabelError, match="not found"):
        read_polylines(tmp_path / "nope.csv", slice_shape=(8, 8))
    p = tmp_path / "traces.txt"
    p.write_text("x")
    with pytest.raises(LabelError, match="'.txt'"):
        read_polylines(p)


# --- masks --------------------------------------------------------------------------------


@pytest.fixture
def mask_folder(tmp_path) -> Path:
    root = tmp_path / "masks"
    m = np.zeros((32, 40), np.uint8)
    m[8:20, 10:30] = 1
    (root / "alice").mkdir(parents=True)
    iio.imwrite(root / "alice" / "em_slice_003.png", m * 255)  # black and white
    tifffile.imwrite(root / "alice" / "em_slice_004.tif", m.astype(bool))
    (root / "alice" / "notes.txt").write_text("ignored")
    (root / "bob").mkdir()
    iio.imwrite(root / "bob" / "z3.png", np.repeat((m * 2)[..., None], 3, axis=-1))  # grey RGB, label 2
    tifffile.imwrite(root / "bob" / "z4.tiff", m.astype(np.float32))  # whole-number floats
    return root


def test_mask_folder(mask_folder):
    aset = read_mask_folder(mask_folder, n_slices=20)
    assert aset.kind == "masks" and aset.annotators == ["alice", "bob"]
    assert aset.slice_shape == (32, 40) and aset.slices == [3, 4]
    assert aset.slices_of("bob") == [3, 4]
    assert sorted(p.name for p in aset.sources) == ["em_slice_003.png", "em_slice_004.tif", "z3.png", "z4.tiff"]
    assert aset.masks["alice"][3].max() == 1 and aset.masks["alice"][3].dtype == np.uint8
    assert aset.masks["bob"][3].max() == 2 and aset.masks["bob"][4].max() == 1
    assert aset.to_masks() is aset


def _refused(root: Path, bad: Path, needles: list[str], **kw) -> None:
    with pytest.raises(LabelError) as err:
        read_mask_folder(root, **kw)
    msg = str(err.value)
    assert isinstance(err.value, (CurationError, ValueError))
    assert "\n" not in msg and str(bad) in msg, msg
    for needle in needles:
        assert needle in msg, msg


def test_fractional_mask_refused(mask_folder):
    bad = mask_folder / "bob" / "z5.tif"
    tifffile.imwrite(bad, np.full((32, 40), 0.5, np.float32))
    _refused(mask_folder, bad, ["fractional", "found 0.5"])


def test_mask_shape_refused(mask_folder):
    bad = mask_folder / "bob" / "z5.png"
    iio.imwrite(bad, np.zeros((32, 41), np.uint8))
    _refused(mask_folder, bad, ["shape", "expected (32, 40), found (32, 41)"])


def test_mask_slice_outside_the_volume_refused(mask_folder):
    bad = mask_folder / "alice" / "em_slice_042.png"
    iio.imwrite(bad, np.zeros((32, 40), np.uint8))
    _refused(mask_folder, bad, ["slice 42 is outside the volume (expected 0..19, found 42)"], n_slices=20)


def test_colour_mask_refused(mask_folder):
    bad = mask_folder / "bob" / "z6.png"
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[..., 0] = 255
    iio.imwrite(bad, rgb)
    _refused(mask_folder, bad, ["differing channels"])


def test_duplicate_slice_refused(mask_folder):
    bad = mask_folder / "bob" / "z_003.tif"
    tifffile.imwrite(bad, np.zeros((32, 40), np.uint8))
    _refused(mask_folder, bad, ["two masks for slice 3", "z3.png"])


def test_mask_name_without_slice_refused(mask_folder):
    bad = mask_folder / "bob" / "final.png"
    iio.imwrite(bad, np.zeros((32, 40), np.uint8))
    _refused(mask_folder, bad, ["no slice index", "'final.png'"])


def test_large_labels_refused(mask_folder):
    bad = mask_folder / "bob" / "z7.tif"
    tifffile.imwrite(bad, np.full((32, 40), 300, np.uint16))
    _refused(mask_folder, bad, ["labels out of range", "expected 0..255"])


def test_damaged_mask_refused(mask_folder):
    bad = mask_folder / "bob" / "z8.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _refused(mask_folder, bad, ["cannot read mask"])


def test_folder_refusals(tmp_path):
    with pytest.raises(LabelError, match="not found"):
        read_mask_folder(tmp_path / "nope")
    with pytest.raises(LabelError, match="no annotator folders"):
        read_mask_folder(tmp_path)
    (tmp_path / "alice").mkdir()
    with pytest.raises(LabelError, match="no mask files"):
        read_mask_folder(tmp_path)


def test_annotator_without_masks_is_flagged(mask_folder):
    (mask_folder / "carol").mkdir()
    aset = read_mask_folder(mask_folder)
    assert aset.annotators == ["alice", "bob", "carol"] and aset.slices_of("carol") == []
    res = aggregate(aset, "majority")
    assert res.stats("carol").reasons == ["no annotated slices"] and res.stats("carol").to_dict()["dice"] is None
