"""`curate analyze` and `curate evaluate` on real archives: what they store (instance layer
with lineage, tables, plots, report, typed run record, one commit), that the phantom's
pores come back as the phantom made them, and evaluation scores computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import tifffile

from curation.analysis.evaluate import evaluate
from curation.analysis.run import analyze, parse_expectation
from curation.demo.phantom import PhantomSpec, generate_volume, write_phantom
from curation.errors import AnalysisError, NotFoundError
from curation.labels.importer import import_labels
from curation.pipelines import kinds
from curation.provenance import read_record
from curation.provenance.analysis import AnalysisDetails, EvaluationDetails, Expectation
from curation.provenance.runs import RunRecord
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest
from curation.repository.verify import verify

CURATE = str(Path(sys.executable).parent / "curate")
PHANTOM = PhantomSpec(shape=(40, 192, 192), seed=2)


def curate(*args: str) -> dict:
    out = subprocess.run([CURATE, *args, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-2000:]
    return json.loads(out.stdout)


# --- the phantom: pores per nucleus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("analysis-phantom")
    ph = write_phantom(base / "phantom", PHANTOM)
    root = base / "archive"
    init_archive(root)
    ingest(root, [ph.images_dir], ph.metadata_path, name="ph")
    for layer, gt in (("envelope", "envelope"), ("pores", "pores"), ("nucleus", "nuclei")):
        import_labels(root, "ph", layer, ph.ground_truth_dir / gt)
    return root, ph


def test_analyze_pores_per_nucleus_agrees_with_the_phantom(phantom_archive):
    root, ph = phantom_archive
    density = ph.n_pores / ph.envelope_area_um2
    res = curate("analyze", str(root), "ph", "--layer", "pores@v1", "--within", "envelope@v1", "--per", "nucleus@v1",
                 "--preset", "nuclear-pore", "--expect", f"count={ph.n_pores}/0", "--expect", "diameter_nm=120/5%",
                 "--expect", f"density_per_um2={density}/5%", "--expect-source", "the phantom")
    assert res["status"] == "ok" and res["objects"] == ph.n_pores and res["removed_outside"] == 0
    assert [a["quantity"] for a in res["agreement"]] == ["count", "diameter_nm", "density_per_um2"]
    assert all(a["agrees"] for a in res["agreement"]), res["agreement"]
    assert res["findings"] == [] and "agrees with the phantom" in res["message"]
    assert res["instances"] == "pores-instances@v1" and res["tag"] == "ph/pores-instances/v1"

    view = open_archive(root).acquisition("ph")
    # the instance layer: kind instances, lineage to its input and its run, one id per pore
    inst = view.label("pores-instances@v1")
    assert inst.kind == "instances" and inst.parents == ["pores@v1"] and inst.lineage.run == "runs/analysis-1"
    assert inst.lineage.annotated == view.label("pores@v1").lineage.annotated
    ids, truth = np.asarray(inst.array(0)[:]), np.asarray(view.label("pores@v1").array(0)[:])
    assert int(ids.max()) == ph.n_pores and np.array_equal(ids > 0, truth > 0)
    pairs = np.unique(np.stack([ids[truth > 0], truth[truth > 0]]), axis=1)
    assert pairs.shape[1] == ph.n_pores  # one-to-one with the phantom's ids

    # the run record: typed details, inputs with their tree checksums, every output listed
    rec = read_record(view.path / "provenance" / "runs" / "analysis-1.json", RunRecord)
    d = rec.details
    assert isinstance(d, AnalysisDetails) and rec.id == "runs/analysis-1" and rec.action == "analyze"
    assert [(i.role, i.address) for i in rec.labels()] == [("objects", "pores@v1"), ("within", "envelope@v1"),
                                                          ("per", "nucleus@v1")]
    assert rec.labels()[0].tree_sha256 == view.label("pores@v1").record().storage.tree_sha256
    assert d.settings.per_mode == "components" and d.settings.surface_method == "mesh"
    assert d.settings.within_rule == "any" and d.settings.within_margin_nm == 16.0
    assert d.settings.diameter_column == "disc_diameter_nm" and d.counts.objects == ph.n_pores
    assert d.parents_total == 1 and d.parents[0].count == ph.n_pores
    assert d.parents[0].density_per_um2 == pytest.approx(density, rel=0.05)
    assert d.expectation == Expectation(source="the phantom", count=ph.n_pores, diameter_nm=120.0,
                                        density_per_um2=density)
    files = sorted(Path(o.path).name for o in rec.outputs if o.kind != "label")
    assert files == ["montage.png", "objects.csv", "objects.parquet", "parents.csv", "parents.parquet",
                     "parents.png", "report.html", "sizes.png"]
    assert rec.outputs[0].address == "pores-instances@v1" and rec.outputs[0].tree_sha256 == \
        inst.record().storage.tree_sha256
    # tables, plots and report: committed, binary files annexed, the tree clean
    folder = view.path / "analysis" / "analysis-1"
    assert all((folder / f).is_symlink() for f in files)
    table = pq.read_table(folder / "objects.parquet")
    assert table.num_rows == ph.n_pores and table.column("parent_id").to_pylist() == [1] * ph.n_pores
    assert pacsv.read_csv(folder / "parents.csv")["count"].to_pylist() == [ph.n_pores]
    page = (folder / "report.html").read_text()
    assert "Agreement with known values" in page and "DISAGREES" not in page
    assert view.dirty() == [] and dlo.log(view.path)[0]["subject"].startswith("Analyze ph: pores@v1")
    (v,) = verify(root, "ph")
    assert not v.failed, v.message
    # the same request again: nothing new
    again = analyze(root, "ph", "pores@v1", within="envelope@v1", per="nucleus@v1", preset_name="nuclear-pore",
                    expected=d.expectation)
    assert again[-1].status.value == "notneeded" and again[-1].data["run"] == "runs/analysis-1"


def test_analyze_refuses_what_it_cannot_do(phantom_archive):
    root, _ = phantom_archive
    with pytest.raises(NotFoundError, match="no label layer 'nope'"):
        analyze(root, "ph", "nope@v1")
    with pytest.raises(AnalysisError, match="unknown preset"):
        analyze(root, "ph", "pores@v1", preset_name="ribosome")
    with pytest.raises(AnalysisError, match="new version of an input layer"):
        analyze(root, "ph", "pores@v1", per="nucleus@v1", output="nucleus")
    with pytest.raises(AnalysisError, match="known value"):
        parse_expectation(["width=3"])
    e = parse_expectation(["count=12/2", "diameter_nm=120/5%", "density_per_um2=11/0.1"], "a paper")
    assert (e.count, e.count_tolerance, e.diameter_tolerance, e.density_tolerance) == (12, 2, 0.05, 0.1)
    assert {"analyze", "evaluate"} <= set(kinds())


# --- evaluation: hand-computed ---------------------------------------------------------------------
#
# Image 8 x 64 x 64, voxels (24, 8, 8) nm. Truth annotates slices 2 and 5:
#   slice 2: A = [10:20, 10:20] (100 voxels); slice 5: B = [30:40, 30:40] (100 voxels).
# Prediction (every slice): P1 = z 1..3 x [10:20, 12:22]; P2 = z 4..6 x [50:55, 50:55];
#   P3 = slice 7 x [0:30, 0:30] (never annotated: never counted).
# Semantic, value 1, on slices 2 and 5: tp = 80 (A and P1 overlap 10 x 8), fp = 20 (P1 beyond A)
#   + 25 (P2 on slice 5) = 45, fn = 20 (A beyond P1) + 100 (B) = 120.
# Objects: A-P1 IoU on annotated voxels 80 / (100 + 100 - 80) = 2/3 -> matched; P2 unmatched (FP),
#   B unmatched (FN), P3 not scored: F1 = 2 / (2 + 1 + 1) = 0.5.
# HD95 of A-P1: squares 2 columns apart on one slice; 80 voxels at 0, 10 at 1 px, 10 at 2 px each way;
#   95th percentile 2 px = 16 nm.

TP, FP, FN = 80, 45, 120


def test_evaluate_matches_hand_computed_values(small_archive):
    res = curate("evaluate", str(small_archive), "vol", "--prediction", "cell-pred@v1", "--truth", "cell@v1")
    assert res["status"] == "ok" and res["compared_voxels"] == 2 * 64 * 64 and res["unpredicted_voxels"] == 0
    sem = {s["value"]: s for s in res["semantic"]}
    one = sem[1]
    assert (one["tp"], one["fp"], one["fn"], one["name"]) == (TP, FP, FN, "cell")
    assert one["dice"] == pytest.approx(2 * TP / (2 * TP + FP + FN))
    assert one["iou"] == pytest.approx(TP / (TP + FP + FN))
    assert one["precision"] == pytest.approx(TP / (TP + FP)) and one["recall"] == pytest.approx(TP / (TP + FN))
    (inst,) = res["instances"]
    assert (inst["value"], inst["n_truth"], inst["n_pred"], inst["tp"], inst["fp"], inst["fn"]) == (1, 2, 2, 1, 1, 1)
    assert inst["f1"] == pytest.approx(0.5) and inst["mean_matched_iou"] == pytest.approx(2 / 3)
    assert inst["hd95_nm_median"] == pytest.approx(16.0) and inst["hd95_nm_max"] == pytest.approx(16.0)
    assert inst["truth_from"] == inst["prediction_from"] == "components"

    view = open_archive(small_archive).acquisition("vol")
    rec = read_record(view.path / "provenance" / "runs" / "evaluation-1.json", RunRecord)
    assert isinstance(rec.details, EvaluationDetails) and rec.action == "evaluate"
    assert [(i.role, i.address, i.tree_sha256) for i in rec.labels()] == [
        ("prediction", "cell-pred@v1", view.label("cell-pred@v1").record().storage.tree_sha256),
        ("truth", "cell@v1", view.label("cell@v1").record().storage.tree_sha256)]
    assert rec.details.semantic[1].dice == pytest.approx(one["dice"])
    folder = view.path / "analysis" / "evaluation-1"
    assert sorted(p.name for p in folder.iterdir()) == ["instances.csv", "matches.csv", "report.html", "scores.png",
                                                       "semantic.csv"]
    matches = pacsv.read_csv(folder / "matches.csv").to_pylist()
    assert matches == [{"value": 1, "truth_id": 1, "prediction_id": 1, "iou": pytest.approx(2 / 3),
                        "hd95_nm": pytest.approx(16.0)}]
    assert view.dirty() == [] and view.known_labels() == "cell@v1; cell-pred@v1"  # no label layer written
    assert dlo.log(view.path)[0]["subject"] == "Evaluate vol: cell-pred@v1 against cell@v1 (evaluation-1)"


def test_evaluate_binary_and_instances(small_archive):
    # the truth against itself, as instances: everything perfect
    (a,) = analyze(small_archive, "vol", "cell@v1")
    assert a.data["instances"] == "cell-instances@v1" and a.data["objects"] == 2
    (r,) = evaluate(small_archive, "vol", "cell-instances@v1", "cell@v1", binary=True)
    (inst,) = r.data["instances"]
    assert inst["prediction_from"] == "instances" and inst["truth_from"] == "components"
    assert (inst["tp"], inst["fp"], inst["fn"], inst["f1"], inst["hd95_nm_max"]) == (2, 0, 0, 1.0, 0.0)
    assert [s["name"] for s in r.data["semantic"]] == ["background", "foreground"]
    assert all(s["dice"] == 1.0 for s in r.data["semantic"])
    # the same again: already stored
    (again,) = evaluate(small_archive, "vol", "cell-instances@v1", "cell@v1", binary=True)
    assert again.status.value == "notneeded" and again.data["run"] == r.data["run"]


def test_phantom_gt_folder_has_the_nucleus(tmp_path):
    spec = PhantomSpec(shape=(16, 96, 96), seed=1)
    ph = write_phantom(tmp_path / "p", spec)
    _, envelope, pores, _ = generate_volume(spec)
    nuclei = np.stack([tifffile.imread(p) for p in sorted((ph.ground_truth_dir / "nuclei").glob("*.tif"))])
    assert nuclei.shape == spec.shape and nuclei.dtype == np.uint8
    assert np.all(nuclei[(envelope > 0) | (pores > 0)] == 1)


def test_pipeline_steps_analyze_and_evaluate(small_archive, tmp_path):
    from curation.errors import PipelineError
    from curation.pipelines import RunContext, run_pipeline
    from curation.pipelines.model import Pipeline

    plan = Pipeline.model_validate({"pipeline": "t", "acquisition": "vol", "steps": [
        {"analyze": {"layer": "cell-pred@v1", "min_size_nm3": 24 * 8 * 8 * 100, "output": "blobs"}},
        {"evaluate": {"prediction": "blobs@v1", "truth": "cell@v1", "binary": True}}]})
    ctx = RunContext(archive=small_archive, acquisition="vol", workdir=tmp_path, base=tmp_path)
    out = run_pipeline(plan, ctx)
    assert [r.action for r in out] == ["analyze", "evaluate"] and not any(r.failed for r in out)
    # P2 (75 voxels) is smaller than 100 voxels: P1 and P3 are kept
    assert out[0].data["objects"] == 2 and out[0].data["removed_small"] == 1
    (inst,) = out[1].data["instances"]
    assert inst["prediction_from"] == "instances" and (inst["tp"], inst["fp"], inst["fn"]) == (1, 0, 1)
    bad = Pipeline.model_validate({"pipeline": "t", "steps": [{"analyze": {"layer": "x", "expect": "phantom"}}]})
    with pytest.raises(PipelineError, match="needs a pipeline with a phantom"):
        run_pipeline(bad, RunContext(archive=small_archive, acquisition="vol", workdir=tmp_path, base=tmp_path))
