"""Preservation: push the archive to a RIA store, clone it back, and check it bit for bit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_packaging import build_archive

from curation.packaging import package
from curation.repository.preservation import push, restore
from curation.errors import ArchiveError, InvalidNameError
from curation.repository.verify import verify

SKIP_DIRS = {".git"}
SKIP_FILES = {".curation/lock", ".curation/lock.info"}


def tree_digests(root: Path) -> dict[str, str]:
    """sha256 of every work-tree file (annexed content followed), .git folders left out."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel in SKIP_FILES:
                continue
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("ria")
    root = tmp / "vem-archive"
    labels = build_archive(root, shared_data, tmp)
    store = tmp / "store"
    res = push(root, f"ria+file://{store}")
    return {"root": root, "store": store, "res": res, "labels": labels, "tmp": tmp}


def test_push_creates_sibling_and_pushes_everything(pushed):
    res = pushed["res"]
    assert [r.action for r in res] == ["push", "push"] and all(r.status.value == "ok" for r in res)
    done = res[-1].data
    assert done["alias"] == "vem-archive" and done["clone_url"].endswith("#~vem-archive")
    assert len(done["datasets"]) == 2 and all(d["id"] for d in done["datasets"])
    assert done["files"] >= 30 and done["bytes"] > 40e6  # raw copy, image and label shards
    assert (pushed["store"] / "alias" / "vem-archive").is_symlink()
    assert (pushed["store"] / "ria-layout-version").is_file()


def test_clone_from_store_is_bit_identical_and_verifies(pushed, tmp_path):
    clone = tmp_path / "clone"
    res = restore(pushed["res"][-1].data["clone_url"], clone)
    assert res[0].action == "restore" and res[0].status.value == "ok" and res[0].data["files"] >= 30
    original, copy = tree_digests(pushed["root"]), tree_digests(clone)
    assert copy == original  # every file, every byte
    results = verify(clone)
    assert [r.status.value for r in results] == ["ok"], [r.message for r in results]
    data = results[0].data
    assert data["annex_fsck"] == "ok" and data["content_absent"] == [] and data["ngff"] == "ok"
    assert data["tree_sha256"]["image"]  # the tree checksum recorded at ingest still matches
    assert len(data["tree_sha256"]) == 1 + len(pushed["labels"])
    # a restored archive packages like the original
    out = package(clone, "sbem", "datacite", tmp_path / "dc")
    assert out[0].status.value == "ok"


def test_clone_by_dataset_id_without_content_is_reported(pushed, tmp_path):
    """A clone whose content was not fetched: verify says so, packaging refuses clearly."""
    from curation.errors import PackagingError
    from curation.repository import datalad_ops as dlo

    dl = dlo._dl()
    clone = tmp_path / "bare"
    dl.clone(source=pushed["res"][-1].data["id_url"], path=str(clone), result_renderer="disabled")
    dl.get(dataset=str(clone), path=str(clone / "acquisitions" / "sbem"), get_data=False,
           result_renderer="disabled")
    (result,) = verify(clone)
    assert result.status.value == "ok" and result.data["content_absent"]
    with pytest.raises(PackagingError, match="datalad get"):
        package(clone, "sbem", "bagit", tmp_path / "bag")
    assert not (tmp_path / "bag").exists()


def test_push_again_is_incremental_and_quiet(pushed, capfd):
    res = push(pushed["root"], f"ria+file://{pushed['store']}")
    assert res[0].status.value == "notneeded" and res[-1].status.value == "ok"
    assert res[-1].data["files"] == 0  # nothing new to transfer
    assert capfd.readouterr().out == ""  # the library never prints


def test_first_push_prints_nothing(shared_data, tmp_path, capfd):
    root = tmp_path / "small"
    build_archive(root, shared_data, tmp_path, keep_raw=False, labels=False)
    capfd.readouterr()
    push(root, f"ria+file://{tmp_path}/store", name="backup", alias="small-archive")
    assert capfd.readouterr().out == ""


def test_push_refuses_bad_urls_and_names(pushed, tmp_path):
    root = pushed["root"]
    for bad in ("file:///tmp/store", "ria+file://relative/store", f"ria+file://{tmp_path}/../x",
                f"ria+file://{tmp_path}/s#~alias"):
        with pytest.raises(InvalidNameError):
            push(root, bad)
    with pytest.raises(InvalidNameError):
        push(root, f"ria+file://{tmp_path}/s", name="../evil")
    with pytest.raises(InvalidNameError):
        restore(f"ria+file://{tmp_path}/s", tmp_path / "c")  # which dataset?
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "x").write_text("x")
    with pytest.raises(ArchiveError, match="not empty"):
        restore(pushed["res"][-1].data["clone_url"], target)
