"""The whole loop, as `make demo` runs it, on a small phantom; pipelines as declared steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curation.demo.loop import INCOMPLETE, run_demo
from curation.demo.phantom import PhantomSpec
from curation.errors import AlreadyExistsError, PipelineError
from curation.pipelines import kinds, load_pipeline

CURATE = str(Path(sys.executable).parent / "curate")


def test_demo_runs_the_whole_loop(tmp_path):
    out = subprocess.run([CURATE, "demo", str(tmp_path / "demo"), "--json"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    records = json.loads(out.stdout)
    actions = [r["action"] for r in records]
    for needed in ("demo-phantom", "init", "ingest", "labels-import", "labels-diff", "train", "segment", "verify",
                   "package", "demo"):
        assert needed in actions
    assert all(r["status"] == "ok" for r in records)
    root = tmp_path / "demo"
    assert (root / "deposit-empiar").is_dir() and (root / "deposit-ro-crate" / "ro-crate-metadata.json").is_file()
    assert not (root / INCOMPLETE).exists()
    assert (root / "README.md").is_file() and (root / "index.html").is_file()
    show = subprocess.run([CURATE, "show", str(root / "archive"), "phantom", "--json"], capture_output=True, text=True)
    labels = json.loads(show.stdout)["labels"]
    assert [(lab["name"], lab["version"], lab["kind"]) for lab in labels] == [
        ("envelope", 1, "ground-truth"), ("envelope", 2, "ground-truth"), ("envelope", 3, "ground-truth"),
        ("envelope-predicted", 1, "prediction"), ("envelope-predicted-probability", 1, "probability"),
        ("nucleus", 1, "ground-truth"), ("pores", 1, "ground-truth"), ("pores-instances", 1, "instances"),
        ("pores-predicted", 1, "prediction"), ("pores-predicted-probability", 1, "probability"),
        ("pores-sparse", 1, "ground-truth")]
    # trained on sparse ground truth, segmented: two models in models/, their predictions as layers
    models = json.loads(subprocess.run([CURATE, "models", "list", str(root / "archive"), "--json"],
                                       capture_output=True, text=True).stdout)
    assert [(m["data"]["model"], m["data"]["labels"]) for m in models] == [
        ("envelope-tap@v1", "envelope@v2"), ("pores-3d@v1", "pores-sparse@v1")]
    (diff,) = [r for r in records if r["action"] == "labels-diff"]
    assert diff["data"]["slices_added"] == [16, 32] and diff["data"]["slices_removed"] == []
    # it ends with pore statistics per nucleus, which agree with what the phantom was made of
    (phantom,) = [r for r in records if r["action"] == "demo-phantom"]
    (pores,) = [r for r in records if r["action"] == "analyze"]
    d = pores["data"]
    assert d["objects"] == phantom["data"]["n_pores"] and len(d["parents"]) == 1
    assert [(a["quantity"], a["tolerance"], a["agrees"]) for a in d["agreement"]] == [
        ("count", 0, True), ("diameter_nm", 0.05, True), ("density_per_um2", 0.05, True)]
    assert d["findings"] == [] and "agrees with the phantom's truth" in pores["message"]
    report = root / "archive" / d["report"]
    assert report.is_file() and "Agreement with known values" in report.read_text()
    readme = (root / "README.md").read_text()
    assert "### Analyses" in readme and "analysis-1: objects of pores@v1 per nucleus@v1" in readme
    assert "analysis/analysis-1/report.html" in (root / "index.html").read_text()
    # a tiny learning curve of the envelope's five slices, stored and shown like the analyses
    (curve,) = [r for r in records if r["action"] == "learning-curve"]
    assert [p["k"] for p in curve["data"]["points"]] == [1, 2] and curve["data"]["projection"]["add"] == 2
    assert (root / "archive" / curve["data"]["plot"]).is_file() and "learning-curve-1" in readme


def test_pipeline_definitions_are_validated(tmp_path):
    assert [s.kind for s in load_pipeline().steps][:2] == ["ingest", "labels-import"]
    assert {"ingest", "labels-import", "labels-aggregate", "labels-diff", "metadata-update", "verify",
            "package", "analyze", "evaluate", "learning-curve", "train", "segment"} <= set(kinds())
    (analyze,) = [s for s in load_pipeline().steps if s.kind == "analyze"]
    assert analyze.params.expect == "phantom" and analyze.params.preset == "nuclear-pore"
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: x\nsteps:\n  - nosuchstep: {}\n")
    with pytest.raises(PipelineError, match="unknown kind 'nosuchstep'"):
        load_pipeline(bad)
    bad.write_text("pipeline: x\nsteps:\n  - labels-import: {layer: a, slicez: [1]}\n")
    with pytest.raises(PipelineError, match=r"step 0 \(labels-import\): slicez"):
        load_pipeline(bad)


def test_a_failing_demo_leaves_nothing_and_can_run_again(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: broken\nphantom: {shape: [16, 64, 64]}\nacquisition: phantom\nsteps:\n"
                   "  - ingest: {}\n  - labels-import: {layer: e, ground_truth: envelope, slices: [99]}\n")
    root = tmp_path / "demo"
    with pytest.raises(PipelineError, match="outside the phantom"):
        run_demo(root, PhantomSpec(shape=(16, 64, 64)), pipeline=bad)
    assert not root.exists()
    # a folder left by a killed demo (marked incomplete) is cleared by the next run
    root.mkdir()
    (root / INCOMPLETE).write_text("")
    (root / "archive").mkdir()
    good = tmp_path / "good.yaml"
    good.write_text("pipeline: small\nphantom: {shape: [16, 64, 64]}\nacquisition: phantom\nsteps:\n  - ingest: {}\n")
    out = run_demo(root, PhantomSpec(shape=(16, 64, 64)), pipeline=good)
    assert out[0].action == "demo-cleanup" and out[-1].action == "demo" and not (root / INCOMPLETE).exists()
    with pytest.raises(AlreadyExistsError):
        run_demo(root, PhantomSpec(shape=(16, 64, 64)), pipeline=good)


def test_curate_run_runs_a_pipeline_on_an_archive(tmp_path):
    import numpy as np
    import tifffile

    from curation.repository.archive import init_archive
    from curation.testing import em_like_volume, write_metadata

    (tmp_path / "slices").mkdir()
    vol = em_like_volume((6, 32, 32))
    for z in range(6):
        tifffile.imwrite(tmp_path / "slices" / f"s.{z + 1:03d}.tif", vol[z])
    write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "masks" / "m.002.tif", np.ones((32, 32), np.uint8))
    init_archive(tmp_path / "arch")
    (tmp_path / "p.yaml").write_text(
        "pipeline: mine\nacquisition: vol\nsteps:\n  - ingest: {source: slices, metadata: m.yaml}\n"
        "  - labels-import: {layer: cells, source: masks}\n  - verify: {}\n")
    out = subprocess.run([CURATE, "run", str(tmp_path / "arch"), str(tmp_path / "p.yaml"), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["action"] for r in records] == ["ingest", "labels-import", "verify"]
    assert records[1]["data"]["annotated"] == {"slices": [1]}  # m.002 matches s.002, which is z 1
    demo = subprocess.run([CURATE, "run", str(tmp_path / "arch"), str(Path(__file__).parents[2] / "pipelines" /
                                                                       "demo.yaml")], capture_output=True, text=True)
    assert demo.returncode == 1 and "curate demo" in demo.stderr
