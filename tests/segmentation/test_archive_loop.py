"""The whole segmentation loop in a real archive, through the CLI: train a tiny model into
models/ (MODEL@vN, tagged, validated and tested by bioimage.io), segment with and without
tri-axis prediction, reproduce bit for bit, `datalad rerun`, fine-tune, and refuse a
tampered weight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curation.repository import datalad_ops as dlo
from curation.segmentation.pipeline import pipeline_yaml

from .conftest import tiny

CURATE = str(Path(sys.executable).parent / "curate")
GT_SLICES = [3, 9, 15, 21]


def _env() -> dict:
    from curation.tools import ensure_tool_path

    ensure_tool_path()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATION_KILL") and k != "CURATION_TRACE_STEPS"}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}


def curate(*args: str, ok: bool = True) -> dict | list:
    out = subprocess.run([CURATE, *args, "--json"], capture_output=True, text=True, env=_env(), timeout=300)
    if ok:
        assert out.returncode == 0, out.stderr[-3000:]
    if ok:
        return json.loads(out.stdout)
    return {**json.loads(out.stdout or "{}"), "stderr": out.stderr, "returncode": out.returncode}


def make_archive(root: Path) -> Path:
    """A phantom (24 x 80 x 88 at 8 nm) ingested, its envelope traced on four slices."""
    from curation.demo.phantom import PhantomSpec, write_phantom
    from curation.pipelines import RunContext, load_pipeline, run_pipeline
    from curation.repository.archive import init_archive

    root.mkdir(parents=True, exist_ok=True)
    phantom = write_phantom(root / "acq", PhantomSpec(shape=(24, 80, 88), seed=5))
    init_archive(root / "arch")
    (root / "p.yaml").write_text(
        "pipeline: t\nacquisition: phantom\nsteps:\n  - ingest: {}\n"
        f"  - labels-import: {{layer: envelope, ground_truth: envelope, slices: {GT_SLICES}}}\n")
    ctx = RunContext(archive=root / "arch", acquisition="phantom", workdir=root, base=root, phantom=phantom)
    assert not any(r.failed for r in run_pipeline(load_pipeline(root / "p.yaml"), ctx))
    (root / "tiny-envelope.yaml").write_text(pipeline_yaml(tiny("nuclear-envelope-tap", **{"training.iterations": 20, "architecture.width": 8})))
    return root / "arch"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("loop"))


def test_train_segment_reproduce_rerun(template, tmp_path):
    from curation.labels.layers import read_label_version  # noqa: F401 - the read model below
    from curation.repository.archive import open_archive
    from curation.segmentation.package import bioimageio_test, validate_package

    arch = tmp_path / "arch"
    shutil.copytree(template, arch, symlinks=True)
    pipeline = str(template.parent / "tiny-envelope.yaml")
    train = ["train", str(arch), "--pipeline", pipeline, "--acquisition", "phantom", "--labels", "envelope@v1",
             "--name", "envelope", "--threads", "1"]
    first = curate(*train)
    assert [r["action"] for r in first] == ["models-init", "train"]  # the first model creates models/
    t = {**first[-1]["data"], "status": first[-1]["status"]}
    assert t["status"] == "ok" and t["model"] == "envelope@v1" and t["tag"] == "models/envelope/v1"
    pkg = arch / "models" / "envelope" / "v1"
    assert sorted(p.name for p in pkg.iterdir()) == ["README.md", "cover.png", "rdf.yaml", "test_input.npy",
                                                    "test_output.npy", "unet_v1.py", "weights.pt"]
    assert (pkg / "weights.pt").is_symlink()  # annexed, immutable
    for repo in (arch, arch / "models"):
        assert "models/envelope/v1" in dlo.git(repo, "tag").split()
        assert dlo.git(repo, "status", "--porcelain") == ""
    assert validate_package(pkg) == []
    passed, problems = bioimageio_test(pkg)
    assert passed, problems
    record = json.loads((arch / "models" / "provenance" / "envelope_v1.json").read_text())
    assert record["details"]["kind"] == "train" and record["details"]["labels"] == "envelope@v1"
    assert curate(*train)["status"] == "notneeded"  # the same job again

    listed = curate("models", "list", str(arch))
    assert [m["data"]["model"] for m in listed] == ["envelope@v1"]

    # one axis, then tri-axis with the views kept
    s1 = curate("segment", str(arch), "phantom", "--model", "envelope@v1", "--one-axis", "--layer", "env",
                "--threads", "1")
    assert s1["prediction"] == "env@v1" and s1["probability"] == "env-probability@v1" and not s1["tri_axis"]
    s2 = curate("segment", str(arch), "phantom", "--model", "envelope@v1", "--tri-axis", "--keep-views",
                "--layer", "env-tap", "--threads", "1")
    assert s2["tri_axis"] and set(s2["views"]) == {"z", "y", "x"}
    view = open_archive(arch).acquisition("phantom")
    pred = view.label("env@v1")
    assert pred.kind == "prediction" and pred.lineage.run == "runs/segmentation-1"
    run = view.label("env-tap@v1").record()
    assert {i.kind for i in run.inputs} >= {"model", "image"}
    (model_ref,) = [i for i in run.inputs if i.kind == "model"]
    assert model_ref.weights_sha256 == t["weights_sha256"]
    prob = np.asarray(view.label("env-probability@v1").array(0)[:])
    assert prob.dtype == np.uint8 and prob.max() > prob.min()
    again = curate("segment", str(arch), "phantom", "--model", "envelope@v1", "--one-axis", "--layer", "env",
                   "--threads", "1")
    assert again["status"] == "notneeded"

    for address in ("env@v1", "env-tap-probability@v1"):
        r = curate("reproduce", str(arch), "phantom", address)
        assert r["status"] == "ok" and r["identical"], r["message"]

    # the archive's last commit carries a DataLad run record: `datalad rerun` repeats it
    assert "[DATALAD RUNCMD]" in dlo.git(arch, "log", "-1", "--format=%B")
    out = subprocess.run(["datalad", "rerun"], cwd=arch, capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    view = open_archive(arch).acquisition("phantom")
    for a, b in (("env-tap@v1", "env-tap@v2"), ("env-tap-probability@v1", "env-tap-probability@v2")):
        assert np.array_equal(view.label(a).array(0)[:], view.label(b).array(0)[:])
    assert dlo.git(arch, "status", "--porcelain") == ""

    # fine-tuning names its parent; show draws the model lineage beside the label lineage
    ft = curate("train", str(arch), "--pipeline", pipeline, "--acquisition", "phantom", "--labels", "envelope@v1",
                "--name", "envelope", "--threads", "1", "--init", "envelope@v1", "--seed", "1")
    assert ft["model"] == "envelope@v2" and ft["parent"] == "envelope@v1"
    shown = curate("models", "show", str(arch), "envelope@v2")
    assert shown["card"]["parent"]["version"] == 1
    assert [line.split()[0].lstrip("^") or line.split()[1] for line in shown["lineage"]][0] == "envelope@v2"
    assert any("envelope@v1" in line and "phantom/envelope@v1" in line for line in shown["lineage"][1:])

    # the web catalog shows the model cards beside the acquisition's layers
    from starlette.testclient import TestClient

    from curation.web.app import create_app

    with TestClient(create_app(arch), base_url="http://127.0.0.1") as client:
        page = client.get("/a/phantom")
        assert page.status_code == 200
        for text in ("Model cards", "envelope@v1:", "envelope@v2:", "Validation Dice", "Parent model",
                     "env-tap-probability@v1", "/models/envelope/v1/cover.png", t["weights_sha256"]):
            assert text in page.text, text
        cover = client.get("/models/envelope/v1/cover.png")
        assert cover.status_code == 200 and cover.content[:4] == b"\x89PNG"
        assert client.get("/models/nosuch/v1/cover.png").status_code == 404

    # a tampered weight is refused before anything is read
    weights = arch / "models" / "envelope" / "v1" / "weights.pt"
    dlo.annex(arch / "models", "unlock", "envelope/v1/weights.pt")
    with open(weights, "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    refused = curate("segment", str(arch), "phantom", "--model", "envelope@v1", "--layer", "x", ok=False)
    assert refused["returncode"] == 1 and refused["status"] == "error"
    assert "sha256" in refused["stderr"] and "weights.pt" in refused["stderr"] and "changed" in refused["stderr"]
