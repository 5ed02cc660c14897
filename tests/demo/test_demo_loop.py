"""The whole loop, as `make demo` runs it, on a small phantom."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curation.demo.pipeline import PipelineError, load_pipeline


def test_demo_runs_the_whole_loop(tmp_path):
    curate = str(Path(sys.executable).parent / "curate")
    out = subprocess.run([curate, "demo", str(tmp_path / "demo"), "--json"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    records = json.loads(out.stdout)
    actions = [r["action"] for r in records]
    for needed in ("demo-phantom", "init", "ingest", "labels-import", "labels-diff", "verify", "package", "demo"):
        assert needed in actions
    assert all(r["status"] == "ok" for r in records)
    root = tmp_path / "demo"
    assert (root / "deposit-empiar").is_dir() and (root / "deposit-ro-crate" / "ro-crate-metadata.json").is_file()
    show = subprocess.run([curate, "show", str(root / "archive"), "phantom", "--json"], capture_output=True, text=True)
    labels = json.loads(show.stdout)["labels"]
    assert [(lab["name"], lab["version"], lab["kind"]) for lab in labels] == [
        ("envelope", 1, "ground-truth"), ("envelope", 2, "ground-truth")]


def test_pipeline_definitions_are_validated(tmp_path):
    assert [s.kind for s in load_pipeline().steps][:2] == ["ingest", "labels-import"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: x\nsteps:\n  - train: {}\n")
    with pytest.raises(PipelineError, match="unknown kind 'train'"):
        load_pipeline(bad)
