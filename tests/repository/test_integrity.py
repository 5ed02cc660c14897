"""What verify vouches for, and correcting metadata after ingest.

* verify reports lost annexed content as an error (no copy anywhere) and content held
  elsewhere as a warning naming where; a hand-edited metadata.json and an untracked file
  are errors; so is a pending interrupted write;
* `curate metadata update` validates, cross-checks the image (no silent geometry change),
  commits with the changed fields listed; `metadata show` prints the document;
* package refuses a dirty acquisition with a one-line error saying how to fix it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile
import yaml
import zarr

from curation.errors import DirtyError, MismatchError
from curation.packaging import package
from curation.provenance import RunRecord, read_record
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest
from curation.repository.metadata_update import show_metadata, update_metadata
from curation.repository.verify import verify
from curation.testing import em_like_volume, minimal_metadata, write_metadata

CURATE = str(Path(sys.executable).parent / "curate")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    base = tmp_path_factory.mktemp("integrity")
    tifffile.imwrite(base / "v.tif", em_like_volume((16, 64, 64), seed=5))
    md = write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    root = base / "archive"
    init_archive(root)
    ingest(root, [base / "v.tif"], md, name="vol", chunk=(8, 32, 32), shard=(8, 64, 64))
    masks = base / "masks"
    masks.mkdir()
    import numpy as np

    a = np.zeros((64, 64), np.uint8)
    a[5:20, 5:20] = 1
    tifffile.imwrite(masks / "m_0003.tif", a)
    from curation.labels.importer import import_labels

    import_labels(root, "vol", "cells", masks, numbering="z")
    return base


@pytest.fixture
def arch(template, tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(template / "archive", root, symlinks=True)
    return root


def _acq(root: Path) -> Path:
    return root / "acquisitions" / "vol"


def test_verify_ok_on_a_fresh_archive(arch):
    (r,) = verify(arch, "vol")
    assert r.status.value == "ok", r.message
    assert r.data["tracked_changed"] == [] and r.data["warnings"] == []


def test_lost_annexed_content_is_an_error(arch):
    acq = _acq(arch)
    shard = next(p for p in (acq / "vol.ome.zarr" / "0" / "c").rglob("*") if p.is_symlink())
    obj = shard.resolve()
    os.chmod(obj.parent, 0o755)
    obj.unlink()
    (r,) = verify(arch, "vol")
    assert r.failed and "no copy anywhere" in r.message, r.message
    assert r.data["content_lost"]
    res = subprocess.run([CURATE, "verify", str(arch), "vol"], capture_output=True, text=True)
    assert res.returncode == 1


def test_content_elsewhere_is_a_warning_naming_where(arch, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["datalad", "clone", str(arch), str(clone)], check=True, capture_output=True,
                   env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    subprocess.run(["datalad", "get", "-n", "acquisitions/vol"], cwd=clone, check=True, capture_output=True,
                   env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    (r,) = verify(clone, "vol")
    assert not r.failed, r.message
    assert r.data["content_elsewhere"] and "datalad get" in r.message and "warning" in r.message


def test_a_hand_edited_metadata_file_and_an_untracked_file_are_reported(arch):
    acq = _acq(arch)
    doc = json.loads((acq / "metadata.json").read_text())
    doc["study"]["title"] = "edited by hand"
    (acq / "metadata.json").write_text(json.dumps(doc, indent=2))
    (r,) = verify(arch, "vol")
    assert r.failed and "metadata.json" in r.message and r.data["tracked_changed"] == ["metadata.json"]
    dlo.git(acq, "checkout", "--", "metadata.json")
    (acq / "provenance" / "notes.txt").write_text("stray")
    (r,) = verify(arch, "vol")
    assert r.failed and "notes.txt" in r.message


def test_an_edit_that_keeps_size_and_time_is_found(arch):
    acq = _acq(arch)
    p = acq / "provenance" / "ingest.json"
    st = p.stat()
    text = p.read_text()
    p.write_text(text.replace('"ingest"', '"ingesT"', 1))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    (r,) = verify(arch, "vol")
    assert r.failed and "provenance/ingest.json" in r.data["tracked_changed"]


def test_package_refuses_a_dirty_acquisition(arch, tmp_path):
    acq = _acq(arch)
    doc = json.loads((acq / "metadata.json").read_text())
    doc["study"]["title"] = "edited by hand"
    (acq / "metadata.json").write_text(json.dumps(doc, indent=2))
    with pytest.raises(DirtyError, match="uncommitted changes.*metadata update"):
        package(arch, "vol", "bagit", tmp_path / "bag")
    assert not (tmp_path / "bag").exists()
    res = subprocess.run([CURATE, "package", str(arch), "vol", "--format", "bagit", "--out", str(tmp_path / "bag")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "metadata.json" in res.stderr


def _md_file(tmp_path: Path, voxel=(8, 8, 8), **study) -> Path:
    doc = minimal_metadata({"z": voxel[0], "y": voxel[1], "x": voxel[2]})
    doc["study"].update(study)
    p = tmp_path / "new.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_metadata_update_commits_the_changed_fields(arch, tmp_path):
    (r,) = update_metadata(arch, "vol", _md_file(tmp_path, title="A better title"), note="typo")
    assert r.status.value == "ok"
    assert [c["field"] for c in r.data["changes"]] == ["study.title"]
    acq = _acq(arch)
    assert json.loads((acq / "metadata.json").read_text())["study"]["title"] == "A better title"
    log = dlo.log(acq, limit=1)[0]
    assert log["subject"].startswith("Update metadata of vol: study.title") and "A better title" in log["body"]
    rec = read_record(acq / "provenance" / "runs" / "metadata-update-1.json", RunRecord)
    assert rec.details.kind == "metadata-update" and rec.details.changes[0].new == "A better title"
    (v,) = verify(arch, "vol")
    assert v.status.value == "ok", v.message
    (shown,) = show_metadata(arch, "vol")
    assert "A better title" in shown.message and shown.data["document"]["study"]["title"] == "A better title"
    # the same file again: nothing to do
    (again,) = update_metadata(arch, "vol", _md_file(tmp_path, title="A better title"))
    assert again.status.value == "notneeded"
    # a hand edit is replaced by an update
    doc = json.loads((acq / "metadata.json").read_text())
    doc["study"]["title"] = "scribbled"
    (acq / "metadata.json").write_text(json.dumps(doc))
    (r3,) = update_metadata(arch, "vol", _md_file(tmp_path, title="Final title"))
    assert r3.status.value == "ok" and dlo.git(acq, "status", "--porcelain") == ""


def test_metadata_update_refuses_a_silent_geometry_change(arch, tmp_path):
    head = dlo.head(arch)
    with pytest.raises(MismatchError, match=r"voxel_size.z.*--allow-geometry-change"):
        update_metadata(arch, "vol", _md_file(tmp_path, voxel=(10, 8, 8)))
    assert dlo.head(arch) == head
    bad = minimal_metadata({"z": 8, "y": 8, "x": 8}, dimensions={"z": 15, "y": 64, "x": 64})
    (tmp_path / "dims.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(MismatchError, match="dimensions cannot change"):
        update_metadata(arch, "vol", tmp_path / "dims.yaml", allow_geometry_change=True)
    (r,) = update_metadata(arch, "vol", _md_file(tmp_path, voxel=(10, 8, 8)), allow_geometry_change=True)
    assert r.data["geometry_changed"]
    view = open_archive(arch).acquisition("vol")
    assert view.geometry.voxel_size_nm == (10.0, 8.0, 8.0)
    for group in (view.image_path, view.label("cells").path):
        scale = zarr.open_group(str(group), mode="r").attrs["ome"]["multiscales"][0]["datasets"][0][
            "coordinateTransformations"][0]["scale"]
        assert scale == [10.0, 8.0, 8.0]
    (v,) = verify(arch, "vol")
    assert v.status.value == "ok", v.message
