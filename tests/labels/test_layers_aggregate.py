"""Crowd consensus stored as label versions, and bad inputs that must leave the archive as
it was, on a small generated FIB-SEM archive (8 x 128 x 128 at 10 nm, shards of 2 slices).

The volunteers are those of ``test_consensus.py``: six honest annotators (noisy,
shifted, dilated, eroded), two graffiti artists and one who leaves every slice empty,
drawing slices 0..5 as mask folders and as polylines (CSV and JSON).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from test_consensus import BAD, GOOD, SHAPE, SLICES, draw_annotator, truth_region

from curation.cli.main import cli
from curation.errors import CurationError, DirtyError, InvalidNameError, LabelError, NotFoundError
from curation.labels import layers as L
from curation.labels.aggregation import aggregate_labels
from curation.labels.consensus import dice
from curation.labels.importer import import_labels
from curation.labels.polylines import envelope_band
from curation.labels.store import PlaneSource, write_label_version
from curation.omezarr.ngff import validate_label
from curation.provenance import LabelVersionRecord, read_record
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest
from curation.repository.verify import verify
from curation.testing import write_metadata

N_SLICES = 8


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """A small archive (acquisition ``cells``) and the volunteers' annotations."""
    tmp = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(7)
    truth = np.zeros((N_SLICES, *SHAPE), np.uint8)
    truth[: len(SLICES)] = np.stack([truth_region(z) for z in SLICES])
    volume = (rng.normal(120, 10, truth.shape) + 60 * truth).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(tmp / "cells.tif", volume)
    write_metadata(tmp / "cells.yaml", {"z": 10, "y": 10, "x": 10})
    root = tmp / "archive"
    init_archive(root)
    ingest(root, [tmp / "cells.tif"], tmp / "cells.yaml", name="cells",
           chunk=(1, 64, 64), shard=(2, 64, 64))

    masks = tmp / "masks"
    rows: list[list] = []
    records: list[dict] = []
    draw = np.random.default_rng(20240917)
    for name in GOOD + sorted(BAD):
        (masks / name).mkdir(parents=True)
        for z in SLICES:
            mask, traces = draw_annotator(name, z, draw)
            iio.imwrite(masks / name / f"{name}_slice_{z:04d}.png", mask * 255)
            records.append({"annotator": name, "slice": z,
                            "traces": [{"points": np.round(t.points, 2).tolist(), "closed": t.closed} for t in traces]})
            if not traces:
                rows.append([name, z, "", "", "", ""])
            for k, t in enumerate(traces):
                rows += [[name, z, f"t{k}", f"{x:.2f}", f"{y:.2f}", str(t.closed).lower()] for x, y in t.points]
    with (tmp / "traces.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["annotator", "slice", "trace", "x", "y", "closed"])
        w.writerows(rows)
    (tmp / "traces.json").write_text(json.dumps({"format": "curation-polylines/1", "slice_shape": list(SHAPE),
                                                 "annotations": records}))
    return {"root": root, "tmp": tmp, "truth": truth, "masks": masks, "csv": tmp / "traces.csv",
            "json": tmp / "traces.json"}


def _state(root: Path) -> dict:
    """Everything a failed write must leave as it was."""
    acq = root / "acquisitions" / "cells"
    labels = acq / "cells.ome.zarr" / "labels"
    prov = acq / "provenance" / "labels"
    staging = root / ".curation" / "staging"
    return {
        "status": dlo.status(root, recursive=True),
        "heads": (dlo.head(root), dlo.head(acq)),
        "tags": (dlo.git(root, "tag", "-l"), dlo.git(acq, "tag", "-l")),
        "labels": sorted(p.name for p in labels.iterdir()) if labels.exists() else None,
        "listing": (labels / "zarr.json").read_text() if (labels / "zarr.json").exists() else None,
        "prov": sorted(p.name for p in prov.iterdir()) if prov.exists() else None,
        "staging": sorted(p.name for p in staging.iterdir()) if staging.exists() else [],
    }


# --- consensus --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "source", "band"), [
    ("majority", "masks", None),
    ("staple", "masks", None),
    ("cria", "masks", None),
    ("majority", "csv", None),
    ("cria", "json", 30.0),
])
def test_consensus_layer(small, method, source, band):
    root = small["root"]
    layer = f"nuclei-{method}-{source}"
    (r,) = aggregate_labels(root, "cells", layer, small[source], method=method, band_width_nm=band,
                            names=["1=nucleus"])
    assert r.status.value == "ok" and r.action == "labels-aggregate" and r.data["address"] == f"{layer}@v1"
    arr, attrs = L.read_label_version(root, "cells", layer)
    cur = attrs["curation"]
    assert cur["kind"] == "consensus" and cur["annotated"] == {"slices": SLICES, "regions": []}
    con = cur["consensus"]
    assert [a["annotator"] for a in con["annotators"]] == sorted(GOOD + sorted(BAD))
    assert set(con["flagged"]) == BAD
    assert {a["annotator"] for a in con["annotators"] if a["flagged"]} == BAD
    assert con["method"] == method
    if method == "staple":
        assert all(0.8 < a["sensitivity"] <= 1 for a in con["annotators"] if a["annotator"] in GOOD)
    if band:
        assert con["parameters"]["pixel_size_nm"] == 10.0
        assert con["parameters"]["band_width_px"] == pytest.approx(3.0)

    labels = arr[...]
    assert (labels[len(SLICES):] == 255).all()  # slices nobody drew stay unlabeled
    got = labels[: len(SLICES)]
    truth = small["truth"][: len(SLICES)]
    if band:
        truth = np.stack([envelope_band(t.astype(bool), 3) for t in truth]).astype(np.uint8)
    own = {}
    for a in GOOD + sorted(BAD):
        if source == "masks":
            m = np.stack([iio.imread(small["masks"] / a / f"{a}_slice_{z:04d}.png") > 0 for z in SLICES])
        else:
            from curation.labels.annotations import read_polylines
            from curation.labels.polylines import fill_traces

            aset = read_polylines(small[source], slice_shape=SHAPE)
            m = np.stack([fill_traces(aset.polylines[a][z], SHAPE) for z in SLICES])
        own[a] = np.stack([envelope_band(p, 3) for p in m]) if band else m
    scores = [dice(m, truth) for m in own.values()]
    assert dice(got, truth) > np.median(scores)

    prov = read_record(root / "acquisitions/cells/provenance/labels" / f"{layer}_v1.json", LabelVersionRecord)
    assert prov.action == "labels-aggregate" and prov.lineage.kind == "consensus"
    agg = prov.details
    assert agg.method == method and set(agg.flagged) == BAD and len(agg.annotators) == len(GOOD) + len(BAD)
    assert prov.files() and all(len(s.sha256) == 64 for s in prov.files())
    validate_label(root / "acquisitions/cells/cells.ome.zarr", f"labels/{layer}_v1")
    # shards of slices 6-7 (nobody drew them) are never stored
    assert r.data["stored_shards"] < r.data["n_shards"]
    assert not (root / "acquisitions/cells/cells.ome.zarr/labels" / f"{layer}_v1" / "0" / "c" / "3").exists()


def test_consensus_by_cli_and_verify(small):
    root = small["root"]
    res = CliRunner().invoke(cli, ["labels", "aggregate", str(root), "cells", str(small["masks"]),
                                   "--layer", "nuclei", "--method", "majority", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["address"] == "nuclei@v1" and set(d["flagged"]) == BAD
    res = CliRunner().invoke(cli, ["labels", "aggregate", str(root), "cells", str(small["masks"]),
                                   "--layer", "nuclei", "--method", "staple"])
    assert res.exit_code == 0, res.output
    assert "nuclei@v2" in res.output and "FLAGGED" in res.output
    _, attrs = L.read_label_version(root, "cells", "nuclei")
    assert attrs["curation"]["parents"] == []  # a consensus stands on its annotations, not on nuclei@v1
    (v,) = verify(root, "cells")
    assert v.status.value == "ok", v.message


# --- imports of other formats --------------------------------------------------------------------


def test_tiff_stack_and_zarr_import(small, tmp_path, monkeypatch):
    root = shutil.copytree(small["root"], tmp_path / "archive", symlinks=True)
    # keep no slice in memory between the check and the write: workers re-read the TIFF
    monkeypatch.setattr("curation.labels.importer.IN_MEMORY_BYTES", 0)
    stack = np.zeros((N_SLICES, *SHAPE), np.uint16)
    stack[:, 10:20, 10:20] = 300  # needs uint16 (300 + 1 > 255)
    stack[:, 40:50, 40:50] = 2
    tifffile.imwrite(tmp_path / "gt.tif", stack)
    (r,) = import_labels(root, "cells", "organelles", tmp_path / "gt.tif")
    assert r.data["dtype"] == "uint16" and r.data["unlabeled_value"] == 65535
    assert r.data["label_values"] == [0, 2, 300]
    arr, _ = L.read_label_version(root, "cells", "organelles@v1")
    assert np.array_equal(arr[...], stack)
    # a float TIFF of two slices with whole values, placed by --slices
    tifffile.imwrite(tmp_path / "two.tif", stack[:2].astype(np.float32))
    monkeypatch.undo()
    (r,) = import_labels(root, "cells", "organelles", tmp_path / "two.tif", slices=["3", "5"], kind="prediction",
                         parents=["organelles@v1"], replace=True)
    arr, attrs = L.read_label_version(root, "cells", "organelles")
    assert attrs["curation"]["annotated"] == {"slices": [3, 5], "regions": []} and attrs["curation"]["kind"] == "prediction"
    assert np.array_equal(arr[3], stack[0]) and (arr[4] == 65535).all()
    # our own label image, exported as OME-Zarr, imports back with its unlabeled slices
    src = root / "acquisitions/cells/cells.ome.zarr/labels/organelles_v2"
    export = shutil.copytree(src, tmp_path / "export.ome.zarr")
    (r,) = import_labels(root, "cells", "organelles", export, replace=True)
    assert r.data["annotated"] == {"slices": [3, 5]} and r.data["parents"] == ["organelles@v2"]
    again, _ = L.read_label_version(root, "cells", "organelles@v3")
    assert np.array_equal(again[...], arr[...])
    (v,) = verify(root, "cells")
    assert v.status.value == "ok", v.message
    assert dlo.status(root, recursive=True) == []


# --- bad inputs leave the archive as it was ----------------------------------------------------------


def _mask_dir(tmp: Path, name: str, masks: dict[str, np.ndarray]) -> Path:
    d = tmp / name
    d.mkdir()
    for fname, m in masks.items():
        if fname.endswith(".png"):
            iio.imwrite(d / fname, m)
        else:
            tifffile.imwrite(d / fname, m)
    return d


def test_bad_inputs_leave_the_archive_clean(small, tmp_path):
    root = small["root"]
    before = _state(root)
    ok_mask = np.zeros(SHAPE, np.uint8)
    cases = []

    wrong = _mask_dir(tmp_path, "wrong", {"m_0000.png": np.zeros((100, 128), np.uint8)})
    cases.append((lambda: import_labels(root, "cells", "x", wrong), LabelError, r"shape differs.*\(128, 128\).*\(100, 128\)"))
    stack = tmp_path / "short.tif"
    tifffile.imwrite(stack, np.zeros((5, *SHAPE), np.uint8))
    cases.append((lambda: import_labels(root, "cells", "x", stack), LabelError, r"source has 5 slice\(s\) but the image has 8"))
    two = _mask_dir(tmp_path, "two", {"a_0.png": ok_mask, "a_1.png": ok_mask})
    cases.append((lambda: import_labels(root, "cells", "x", two, slices=[0, 25]), LabelError, r"--slices: slice index out of range \(expected '0..7', found 25\)"))
    cases.append((lambda: import_labels(root, "cells", "x", two, slices=[0]), LabelError, r"1 slice index\(es\) given for a source of 2"))
    named = _mask_dir(tmp_path, "named", {"s_0007.png": ok_mask, "s_0012.png": ok_mask})
    cases.append((lambda: import_labels(root, "cells", "x", named), LabelError, r"s_0012.png.*out of range.*found 12"))
    frac = _mask_dir(tmp_path, "frac", {"f_1.tif": np.full(SHAPE, 0.5, np.float32)})
    cases.append((lambda: import_labels(root, "cells", "x", frac, numbering="z"), LabelError, r"f_1.tif: slice 1: label values must be whole numbers"))
    neg = _mask_dir(tmp_path, "neg", {"n_1.tif": np.full(SHAPE, -1, np.int16)})
    cases.append((lambda: import_labels(root, "cells", "x", neg, numbering="z"), LabelError, r"out of range"))
    colour = np.zeros((*SHAPE, 3), np.uint8)
    colour[0, 0] = [1, 2, 3]
    rgb = _mask_dir(tmp_path, "rgb", {"c_2.png": colour})
    cases.append((lambda: import_labels(root, "cells", "x", rgb, numbering="z"), LabelError, r"c_2.png: slice 2: colour mask with differing channels"))
    poly = tmp_path / "far.json"
    poly.write_text(json.dumps({"format": "curation-polylines/1", "slice_shape": list(SHAPE), "annotations": [
        {"annotator": "u1", "slice": 12, "traces": [{"points": [[1, 1], [5, 5]]}]}]}))
    cases.append((lambda: aggregate_labels(root, "cells", "x", poly), LabelError, r"slice 12 is outside the volume"))
    cases.append((lambda: aggregate_labels(root, "cells", "x", small["csv"], method="mean"), LabelError, r"unknown consensus method"))
    cases.append((lambda: L.show_labels(root, "cells", "nothing@v1"), NotFoundError, r"no label layer 'nothing'"))
    cases.append((lambda: import_labels(root, "cells", "x", two, slices=[0, 1], parents=["ghost@v1"]), NotFoundError, r"--parent"))
    for bad in ("bad/name", "mito_v2", "x.lock", "-x", ""):
        cases.append((lambda bad=bad: import_labels(root, "cells", bad, two, slices=[0, 1]), InvalidNameError, r"--layer"))
    cases.append((lambda: import_labels(root, "cells", "x", two, slices=[0, 1], kind="guess"), LabelError, r"unknown label kind"))
    cases.append((lambda: import_labels(root, "nope", "x", two), NotFoundError, r"no acquisition named 'nope'"))

    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern) as info:
            fn()
        assert "\n" not in str(info.value)
    after = _state(root)
    assert after == before and after["status"] == []


class _Broken(PlaneSource):
    """A real source whose read fails half way (an unreadable slice)."""

    def read(self, region):
        if region[1].start > 0:
            raise LabelError("cannot read the slice", path="broken.tif", field="slice 1")
        return super().read(region)


def test_failures_while_writing_roll_back(small, tmp_path):
    root = Path(shutil.copytree(small["root"], tmp_path / "archive", symlinks=True))
    archive = open_archive(root)
    before = _state(root)
    planes = {z: np.ones(SHAPE, np.uint8) for z in range(2)}
    with pytest.raises(LabelError, match="broken.tif"):
        write_label_version(archive, "cells", "broken", _Broken((N_SLICES, *SHAPE), "uint8", [0, 1], planes=planes),
                            annotated={"slices": [0, 1]})
    assert _state(root) == before

    # the archive refuses the commit (a pre-commit hook): the dataset's commit and tag are undone
    hook = Path(dlo.git(root, "rev-parse", "--git-path", "hooks").strip())
    hook = hook if hook.is_absolute() else root / hook
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "pre-commit").write_text("#!/bin/sh\necho 'commits are frozen' >&2\nexit 1\n")
    os.chmod(hook / "pre-commit", 0o755)
    src = PlaneSource((N_SLICES, *SHAPE), "uint8", [0, 1], planes=planes)
    with pytest.raises(CurationError, match="frozen"):
        write_label_version(archive, "cells", "late", src, annotated={"slices": [0, 1]})
    assert _state(root) == before
    (hook / "pre-commit").unlink()
    (r,) = [write_label_version(archive, "cells", "late", src, annotated={"slices": [0, 1]})]
    assert r.data["address"] == "late@v1" and r.data["label_values"] == [1]
    (v,) = verify(root, "cells")
    assert v.status.value == "ok", v.message


class _BoxPrediction(PlaneSource):
    """A model's prediction over one box of the volume: everything else unlabeled."""

    def __init__(self, shape, box):
        super().__init__(shape, "uint8", [], planes={})
        self.box = box

    def read(self, region):
        out = np.full(tuple(s.stop - s.start for s in region), self.fill, np.uint8)
        inner = [slice(max(r.start, b[0]), min(r.stop, b[1])) for r, b in zip(region, self.box)]
        if all(s.start < s.stop for s in inner):
            dst = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(inner, region))
            out[dst] = 0
            out[dst][:, : (inner[1].stop - inner[1].start) // 2] = 1
        return out

    def is_fill(self, region):
        return any(r.stop <= b[0] or r.start >= b[1] for r, b in zip(region, self.box))


def test_region_prediction_and_dirty_labels(small, tmp_path):
    root = Path(shutil.copytree(small["root"], tmp_path / "archive", symlinks=True))
    archive = open_archive(root)
    box = [(0, 4), (0, 64), (0, 64)]
    regions = [{"z": [0, 4], "y": [0, 64], "x": [0, 64]}]
    with pytest.raises(LabelError, match=r"annotated.regions\[0\].y"):
        write_label_version(archive, "cells", "pred", _BoxPrediction((N_SLICES, *SHAPE), box),
                            annotated={"regions": [{"z": [0, 4], "y": [0, 200], "x": [0, 64]}]})
    r = write_label_version(archive, "cells", "pred", _BoxPrediction((N_SLICES, *SHAPE), box), kind="prediction",
                            annotated={"regions": regions}, label_values=[0, 1], names={1: "nucleus"},
                            note="unet-test")
    assert r.status.value == "ok" and r.data["kind"] == "prediction"
    level0 = root / "acquisitions/cells/cells.ome.zarr/labels/pred_v1/0/c"
    stored = sorted(p.relative_to(level0).as_posix() for p in level0.rglob("*") if p.is_file() or p.is_symlink())
    assert stored == ["0/0/0", "1/0/0"]  # the box covers 2 of 16 level-0 shards (z 0-3, y/x 0-63)
    (shown,) = L.show_labels(root, "cells", "pred")
    assert shown.data["value_counts"] == {"0": 4 * 64 * 32, "1": 4 * 64 * 32}
    assert shown.data["lineage"]["note"] == "unet-test" and shown.data["kind"] == "prediction"
    # the prediction against the nuclei consensus, on the box only
    (gt,) = aggregate_labels(root, "cells", "gt", small["masks"], method="majority")
    from curation.labels.diff import diff_labels

    (d,) = diff_labels(root, "cells", "gt@v1", "pred@v1")
    assert d.data["slices_common"] == [0, 1, 2, 3] and d.data["compared_voxels"] == 4 * 64 * 64
    # a hand edit of a stored version must not slip into the next commit
    zj = root / "acquisitions/cells/cells.ome.zarr/labels/pred_v1/zarr.json"
    zj.write_text(zj.read_text().replace("unet-test", "edited"))
    with pytest.raises(DirtyError, match="uncommitted changes"):
        aggregate_labels(root, "cells", "gt", small["masks"], method="majority")
    dlo.git(root / "acquisitions/cells", "checkout", "--", ".")
    (v,) = verify(root, "cells")
    assert v.status.value == "ok", v.message


def test_clipped_polyline_vertices_are_recorded(small, tmp_path):
    """A vertex a pixel or two past the edge is clipped, and the run record says so (issue 12)."""
    rows = small["csv"].read_text().splitlines()
    header, first = rows[0], rows[1].split(",")
    first[3] = "-1.5"  # x of the first vertex, 1.5 px left of the slice
    p = tmp_path / "dragged.csv"
    p.write_text("\n".join([header, ",".join(first), *rows[2:]]) + "\n")
    (r,) = aggregate_labels(small["root"], "cells", "nuclei-dragged", p, method="majority")
    assert r.status.value == "ok" and "1 vertex up to 1.5 px outside" in r.message
    prov = read_record(small["root"] / "acquisitions/cells/provenance/labels/nuclei-dragged_v1.json",
                       LabelVersionRecord)
    assert prov.details.warnings == r.data["warnings"] and "row 2" in prov.details.warnings[0]
