"""One write transaction: kill -9 at every step boundary of ingest, label import and
metadata update, then the same command again, must give what an uninterrupted run
gives, with a clean tree and no staging left. Also: a real failure mid-apply is undone.

The boundaries come from the transaction itself: a traced run (CURATION_TRACE_STEPS)
lists every checkpoint it passes; each is then a kill point (CURATION_KILL_AT).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curation.errors import TransactionError
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive
from curation.repository.ingest import ingest
from curation.repository.transaction import pending, transaction
from curation.repository.verify import verify
from curation.testing import em_like_volume, write_metadata

CURATE = str(Path(sys.executable).parent / "curate")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATION_KILL") and k != "CURATION_TRACE_STEPS"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tx")
    vol = em_like_volume((12, 64, 48), seed=3)
    folder = base / "slices"
    folder.mkdir()
    for z in range(vol.shape[0]):
        tifffile.imwrite(folder / f"img.{z + 10:03d}.tif", vol[z])
    md = write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    masks = base / "masks"
    masks.mkdir()
    for n in (11, 14):
        a = np.zeros((64, 48), np.uint8)
        a[10:30, 5:25] = 1
        tifffile.imwrite(masks / f"mito.{n:03d}.tif", a)
    empty = base / "empty-archive"
    init_archive(empty)
    with_image = base / "with-image"
    init_archive(with_image)
    ingest(with_image, [folder], md, name="vol", chunk=(4, 32, 32), shard=(4, 64, 64))
    md2 = base / "m2.yaml"
    write_metadata(md2, {"z": 8, "y": 8, "x": 8})
    text = md2.read_text().replace("Test acquisition", "Corrected title")
    md2.write_text(text)
    return {"base": base, "folder": folder, "md": md, "masks": masks, "empty": empty, "with_image": with_image,
            "md2": md2}


def _commands(inputs, arch: Path) -> dict[str, list[str]]:
    return {
        "ingest": [CURATE, "ingest", str(arch), str(inputs["folder"]), "--metadata", str(inputs["md"]), "--name",
                   "vol", "--chunk", "4,32,32", "--shard", "4,64,64", "--no-progress", "--json"],
        "labels-import": [CURATE, "labels", "import", str(arch), "vol", str(inputs["masks"]), "--layer", "mito",
                          "--names", "1=mitochondrion", "--json"],
        "metadata-update": [CURATE, "metadata", "update", str(arch), "vol", str(inputs["md2"]), "--json"],
    }


def _template(inputs, what: str) -> Path:
    return inputs["empty"] if what == "ingest" else inputs["with_image"]


def _state(arch: Path) -> dict:
    """What must be equal between an interrupted-then-rerun archive and a clean run's."""
    acq = arch / "acquisitions" / "vol"
    state = {
        "archive_log": [c["subject"] for c in dlo.log(arch)],
        "archive_tags": dlo.git(arch, "tag").split(),
        "archive_status": dlo.git(arch, "status", "--porcelain", "--untracked-files=all"),
        "staging": sorted(p.relative_to(arch).as_posix() for p in (arch / ".curation" / "staging").rglob("*")
                          if p.is_file()) if (arch / ".curation" / "staging").exists() else [],
    }
    if acq.exists():
        state.update(
            acq_log=[c["subject"] for c in dlo.log(acq)],
            acq_tags=dlo.git(acq, "tag").split(),
            acq_status=dlo.git(acq, "status", "--porcelain", "--untracked-files=all"),
            files=sorted(dlo.git(acq, "ls-files").split()),
            # a label group's zarr.json holds its lineage, which says when it was made
            checksums={p.name: [line for line in p.read_text().splitlines()
                                if not (line.startswith("labels/") and line.split("\t")[0].count("/") == 2)]
                       for p in sorted((acq / "provenance").rglob("*.tsv"))},
            lineage={g.name: {k: v for k, v in json.loads((g / "zarr.json").read_text())["attributes"]["curation"]
                              .items() if k != "created"}
                     for g in sorted((acq / "vol.ome.zarr" / "labels").glob("*_v*"))},
            metadata=(acq / "metadata.json").read_text(),
        )
    return state


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(**env), timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("what", ["ingest", "labels-import", "metadata-update"])
def test_kill_at_every_step_boundary_converges(inputs, tmp_path, what):
    ref = tmp_path / "reference"
    shutil.copytree(_template(inputs, what), ref, symlinks=True)
    trace = tmp_path / "trace.txt"
    r = _run(_commands(inputs, ref)[what], CURATION_TRACE_STEPS=str(trace))
    assert r.returncode == 0, r.stderr
    expected = _state(ref)
    assert expected["archive_status"] == "" and expected["staging"] == []
    points = trace.read_text().split()
    assert any(p.startswith("journal") for p in points) and any(p.startswith("step-") for p in points)
    survived = []
    for point in points:
        arch = tmp_path / f"kill-{point.replace('#', '-')}"
        shutil.copytree(_template(inputs, what), arch, symlinks=True)
        killed = _run(_commands(inputs, arch)[what], CURATION_KILL_AT=point)
        assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
        again = _run(_commands(inputs, arch)[what])
        assert again.returncode == 0, (point, again.stderr[-2000:])
        got = _state(arch)
        assert got == expected, f"after a kill at {point}: {got} != {expected}"
        assert not pending(__import__("curation.repository.archive", fromlist=["x"]).open_archive(arch))
        (res,) = [v for v in verify(arch, "vol")]
        assert not res.failed, (point, res.message)
        survived.append(point)
        shutil.rmtree(arch, ignore_errors=True)
    assert survived == points


def test_a_failing_step_is_undone(inputs, tmp_path):
    """A real error while applying (here: a tag that cannot be made) undoes every step."""
    arch = tmp_path / "arch"
    shutil.copytree(inputs["with_image"], arch, symlinks=True)
    from curation.labels.importer import import_labels
    from curation.repository.archive import open_archive

    before = _state(arch)
    acq = arch / "acquisitions" / "vol"
    # a ref that makes the tag's name impossible: tags/vol/mito is a file, so tags/vol/mito/v1 cannot exist
    dlo.git(acq, "tag", "vol/mito")
    with pytest.raises(TransactionError, match="undone"):
        import_labels(arch, "vol", "mito", inputs["masks"])
    dlo.git(acq, "tag", "-d", "vol/mito")
    assert _state(arch) == before
    assert not pending(open_archive(arch))
    # and the same import then works
    (res,) = import_labels(arch, "vol", "mito", inputs["masks"])
    assert res.data["address"] == "mito@v1"


def test_writers_finish_an_interrupted_transaction_of_another_job(inputs, tmp_path):
    arch = tmp_path / "arch"
    shutil.copytree(inputs["with_image"], arch, symlinks=True)
    cmds = _commands(inputs, arch)
    killed = _run(cmds["labels-import"], CURATION_KILL_AT="step-5-commit")
    assert killed.returncode == -9
    from curation.repository.archive import open_archive

    assert pending(open_archive(arch))
    r = _run(cmds["metadata-update"])
    assert r.returncode == 0, r.stderr
    assert "finished an interrupted labels-import of vol" in r.stdout
    assert dlo.git(arch / "acquisitions" / "vol", "tag").split() == ["vol/mito/v1"]
    with transaction(open_archive(arch), "noop", job="x") as tx:
        assert tx.recovered == []
    assert _state(arch)["archive_status"] == ""


def test_the_same_ingest_again_is_notneeded_and_another_is_refused(inputs, tmp_path):
    from curation.errors import AlreadyExistsError

    arch = tmp_path / "arch"
    shutil.copytree(inputs["with_image"], arch, symlinks=True)
    (again,) = ingest(arch, [inputs["folder"]], inputs["md"], name="vol", chunk=(4, 32, 32), shard=(4, 64, 64))
    assert again.status.value == "notneeded" and "already ingested" in again.message
    with pytest.raises(AlreadyExistsError):
        ingest(arch, [inputs["folder"]], inputs["md"], name="vol", chunk=(4, 64, 64), shard=(4, 64, 64))
