"""`curate experiment learning-curve` is one write transaction: killed (SIGKILL) at its own
checkpoints (after a draw, after the record) and in the middle of the apply, then
run again, it leaves what an uninterrupted run leaves (fixed iterations and one thread make
the trainings repeat exactly; only their durations differ), a clean tree and no staging."""

from __future__ import annotations

import csv
import io
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

from .conftest import tiny_args

CURATE = str(Path(sys.executable).parent / "curate")
#: what differs between two identical runs: when, and how long (and so the reports' sizes)
VOLATILE = {"started", "finished", "seconds", "created", "train_seconds", "bytes"}


def _command(arch: Path) -> list[str]:
    return [CURATE, "experiment", "learning-curve", str(arch), "vol", "--pipeline", "nuclear-envelope-tap",
            "--labels", "env@v1", "--slices", "1,2", "--repeats", "1", "--iterations", "4", "--json", *tiny_args()]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATION_KILL") and k != "CURATION_TRACE_STEPS"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=300)


def _stable(doc):
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _csv(text: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader(io.StringIO(text))]


def _state(arch: Path) -> dict:
    acq = arch / "acquisitions" / "vol"
    staging = arch / ".curation" / "staging"
    return {
        "archive_log": [c["subject"] for c in dlo.log(arch)],
        "archive_status": dlo.git(arch, "status", "--porcelain", "--untracked-files=all"),
        "staging": sorted(p.relative_to(arch).as_posix() for p in staging.rglob("*")) if staging.exists() else [],
        "acq_log": [c["subject"] for c in dlo.log(acq)],
        "acq_status": dlo.git(acq, "status", "--porcelain", "--untracked-files=all"),
        "files": sorted(dlo.git(acq, "ls-files").split()),
        "annexed": sorted(p.relative_to(acq).as_posix() for p in (acq / "analysis").rglob("*") if p.is_symlink()),
        "tables": {p.relative_to(acq).as_posix(): _csv(p.read_text())
                   for p in sorted((acq / "analysis").rglob("*.csv"))},
        "runs": {p.name: _stable(json.loads(p.read_text())) for p in sorted((acq / "provenance" / "runs").glob("*"))},
    }


@pytest.mark.slow
def test_kill_at_step_boundaries_converges(curve_template, tmp_path):
    ref = tmp_path / "reference"
    shutil.copytree(curve_template, ref, symlinks=True)
    trace = tmp_path / "trace.txt"
    r = _run(_command(ref), CURATION_TRACE_STEPS=str(trace))
    assert r.returncode == 0, r.stderr[-3000:]
    expected = _state(ref)
    assert expected["acq_status"] == "" and expected["staging"] == [] and expected["annexed"]
    (run,) = expected["runs"].values()
    assert [d["k"] for d in run["details"]["draws"]] == [1, 2]
    points = trace.read_text().split()
    ours = ["learning-curve-draw#1", "learning-curve-record#1"]
    assert set(ours) | {"learning-curve-draw#2", "learning-curve-report#1"} <= set(points)
    applied = [p for p in points if p.startswith("step-")]
    # the apply's steps are the same journal every analysis uses (tests/analysis/test_transaction.py
    # kills each of them); here one in the middle of it
    chosen = ours + [next(p for p in applied if "annex-add" in p)]
    for point in chosen:
        arch = tmp_path / f"kill-{point.replace('#', '-')}"
        shutil.copytree(curve_template, arch, symlinks=True)
        killed = _run(_command(arch), CURATION_KILL_AT=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
        again = _run(_command(arch))
        assert again.returncode == 0, (point, again.stderr[-2000:])
        out = json.loads(again.stdout)
        assert (out[-1] if isinstance(out, list) else out)["status"] == "ok", point
        assert _state(arch) == expected, f"after a kill at {point}"
        assert not pending(open_archive(arch))
        shutil.rmtree(arch, ignore_errors=True)
