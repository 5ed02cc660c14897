"""`curate analyze` and `curate evaluate` are one write transaction each: killed (SIGKILL) at
every step boundary and run again, they leave what an uninterrupted run leaves, with a
clean tree and no staging (the boundaries come from a traced run, as in
tests/repository/test_transaction.py)."""

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
from curation.repository.verify import verify

CURATE = str(Path(sys.executable).parent / "curate")
VOLATILE = {"started", "finished", "seconds", "created"}


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATION_KILL") and k != "CURATION_TRACE_STEPS"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _commands(arch: Path) -> dict[str, list[str]]:
    return {
        "analyze": [CURATE, "analyze", str(arch), "vol", "--layer", "cell-pred@v1", "--per", "cell@v1",
                    "--min-size-nm3", "1000", "--json"],
        "evaluate": [CURATE, "evaluate", str(arch), "vol", "--prediction", "cell-pred@v1", "--truth", "cell@v1",
                     "--json"],
    }


def _stable(doc):
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _record(path: Path) -> dict:
    doc = _stable(json.loads(path.read_text()))
    for out in doc.get("outputs", []):
        if out["kind"] == "label":  # its zarr.json holds the lineage, which says when it was made
            out.pop("tree_sha256")
    return doc


def _state(arch: Path) -> dict:
    acq = arch / "acquisitions" / "vol"
    staging = arch / ".curation" / "staging"
    return {
        "archive_log": [c["subject"] for c in dlo.log(arch)],
        "archive_tags": dlo.git(arch, "tag").split(),
        "archive_status": dlo.git(arch, "status", "--porcelain", "--untracked-files=all"),
        "staging": sorted(p.relative_to(arch).as_posix() for p in staging.rglob("*")) if staging.exists() else [],
        "acq_log": [c["subject"] for c in dlo.log(acq)],
        "acq_tags": dlo.git(acq, "tag").split(),
        "acq_status": dlo.git(acq, "status", "--porcelain", "--untracked-files=all"),
        "files": sorted(dlo.git(acq, "ls-files").split()),
        "annexed": sorted(p.relative_to(acq).as_posix() for p in (acq / "analysis").rglob("*") if p.is_symlink()),
        "tables": {p.relative_to(acq).as_posix(): p.read_text() for p in sorted((acq / "analysis").rglob("*.csv"))},
        "runs": {p.name: _record(p) for p in sorted((acq / "provenance" / "runs").glob("*"))},
        "checksums": {p.name: [line for line in p.read_text().splitlines() if not line.endswith("zarr.json")
                               and "/zarr.json\t" not in line]
                      for p in sorted((acq / "provenance" / "labels").glob("*-instances_v*.tsv"))},
        "lineage": {g.name: _stable(json.loads((g / "zarr.json").read_text())["attributes"]["curation"])
                    for g in sorted((acq / "vol.ome.zarr" / "labels").glob("*-instances_v*"))},
    }


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("what", ["analyze", "evaluate"])
def test_kill_at_every_step_boundary_converges(small_template, tmp_path, what):
    ref = tmp_path / "reference"
    shutil.copytree(small_template, ref, symlinks=True)
    trace = tmp_path / "trace.txt"
    r = _run(_commands(ref)[what], CURATION_TRACE_STEPS=str(trace))
    assert r.returncode == 0, r.stderr
    expected = _state(ref)
    assert expected["archive_status"] == "" and expected["acq_status"] == "" and expected["staging"] == []
    assert expected["runs"] and expected["annexed"]
    points = trace.read_text().split()
    assert f"{'analysis' if what == 'analyze' else 'evaluation'}-record#1" in points
    assert any(p.startswith("step-") and "annex-add" in p for p in points)
    for point in points:
        arch = tmp_path / f"kill-{point.replace('#', '-')}"
        shutil.copytree(small_template, arch, symlinks=True)
        killed = _run(_commands(arch)[what], CURATION_KILL_AT=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
        again = _run(_commands(arch)[what])
        assert again.returncode == 0, (point, again.stderr[-2000:])
        out = json.loads(again.stdout)
        assert (out[-1] if isinstance(out, list) else out)["status"] == "ok", point
        got = _state(arch)
        assert got == expected, f"after a kill at {point}"
        assert not pending(open_archive(arch))
        (res,) = verify(arch, "vol")
        assert not res.failed, (point, res.message)
        shutil.rmtree(arch, ignore_errors=True)
