"""`curate train` and `curate segment` are write transactions: killed (SIGKILL) at every step
boundary and run again, they leave what an uninterrupted run leaves (same commits, tags,
files, label versions; clean trees, no staging, no journal). The boundaries come from a
traced run, as in tests/repository/test_transaction.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from curation.repository import datalad_ops as dlo
from curation.repository.archive import open_archive
from curation.repository.transaction import pending

from .test_archive_loop import make_archive

CURATE = str(Path(sys.executable).parent / "curate")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATION_KILL") and k != "CURATION_TRACE_STEPS"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _commands(arch: Path, pipeline: Path) -> dict[str, list[str]]:
    return {
        "train": [CURATE, "train", str(arch), "--pipeline", str(pipeline), "--acquisition", "phantom", "--labels",
                  "envelope@v1", "--name", "envelope", "--threads", "1", "--json"],
        "segment": [CURATE, "segment", str(arch), "phantom", "--model", "envelope@v1", "--one-axis", "--layer",
                    "env", "--threads", "1", "--block-shape", "12,80,88", "--json"],
    }


def _state(arch: Path) -> dict:
    acq = arch / "acquisitions" / "phantom"
    models = arch / "models"
    staging = arch / ".curation" / "staging"
    out = {
        "archive_log": [c["subject"] for c in dlo.log(arch)],
        "archive_tags": dlo.git(arch, "tag").split(),
        "archive_status": dlo.git(arch, "status", "--porcelain", "--untracked-files=all"),
        "staging": sorted(p.relative_to(arch).as_posix() for p in staging.rglob("*")) if staging.exists() else [],
        "acq_log": [c["subject"] for c in dlo.log(acq)],
        "acq_files": sorted(dlo.git(acq, "ls-files").split()),
        "acq_status": dlo.git(acq, "status", "--porcelain", "--untracked-files=all"),
        "labels": [lv.address for lv in open_archive(arch).acquisition("phantom").labels],
    }
    if models.exists():
        out.update(models_log=[c["subject"] for c in dlo.log(models)], models_tags=dlo.git(models, "tag").split(),
                   models_files=sorted(dlo.git(models, "ls-files").split()),
                   models_status=dlo.git(models, "status", "--porcelain", "--untracked-files=all"))
    return out


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=300)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """An archive to train in, and one holding envelope@v1 to segment with."""
    root = tmp_path_factory.mktemp("kill")
    plain = make_archive(root / "plain")
    pipeline = root / "tiny.yaml"
    from curation.segmentation.pipeline import pipeline_yaml

    from .conftest import tiny

    pipeline.write_text(pipeline_yaml(tiny("nuclear-envelope-tap", **{"training.iterations": 2})))
    trained = root / "trained"
    shutil.copytree(plain, trained, symlinks=True)
    r = _run(_commands(trained, pipeline)["train"])
    assert r.returncode == 0, r.stderr[-2000:]
    return {"train": plain, "segment": trained, "pipeline": pipeline}


@pytest.mark.slow
@pytest.mark.parametrize("what", ["train", "segment"])
def test_kill_at_every_step_boundary_converges(templates, tmp_path, what):
    ref = tmp_path / "reference"
    shutil.copytree(templates[what], ref, symlinks=True)
    trace = tmp_path / "trace.txt"
    r = _run(_commands(ref, templates["pipeline"])[what], CURATION_TRACE_STEPS=str(trace))
    assert r.returncode == 0, r.stderr[-2000:]
    expected = _state(ref)
    assert expected["archive_status"] == "" and expected["acq_status"] == "" and expected["staging"] == []
    points = trace.read_text().split()
    assert f"{what}-record#1" in points and any("-annex-" in p for p in points)
    for point in points:
        if point.startswith("segment-block#") and point != "segment-block#1":
            continue  # one block boundary is enough
        arch = tmp_path / f"kill-{point.replace('#', '-')}"
        shutil.copytree(templates[what], arch, symlinks=True)
        killed = _run(_commands(arch, templates["pipeline"])[what], CURATION_KILL_AT=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
        again = _run(_commands(arch, templates["pipeline"])[what])
        assert again.returncode == 0, (point, again.stderr[-2000:])
        out = json.loads(again.stdout)
        assert (out[-1] if isinstance(out, list) else out)["status"] == "ok", point
        assert _state(arch) == expected, f"after a kill at {point}"
        assert not pending(open_archive(arch))
        shutil.rmtree(arch, ignore_errors=True)
    rerun = _run(_commands(ref, templates["pipeline"])[what])
    out = json.loads(rerun.stdout)
    assert (out[-1] if isinstance(out, list) else out)["status"] == "notneeded"
