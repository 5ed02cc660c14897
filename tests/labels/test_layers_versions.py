"""Where label slices land, and what a new version holds.

Bug 1: an acquisition ingested from ``images.010.png ... images.029.png`` has z 0-19; masks
``mitos_3D.010-012.png`` must land on z 0-2 (the z of the image files with the same
numbers), and numbers that match no image file are refused with both numberings shown.

Bug 2: importing into an existing layer builds on its latest version (v2 = v1's slices plus
the new ones; a slice given again replaces the old one and the record says so);
``--replace`` starts from nothing; an import that changes nothing stores nothing; a
consensus is not the child of an earlier consensus unless --parent says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from curation.cli.main import cli
from curation.errors import LabelError
from curation.labels.aggregation import aggregate_labels
from curation.labels.diff import diff_labels
from curation.labels.importer import import_labels
from curation.provenance import LabelVersionRecord
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest
from curation.testing import em_like_volume, write_metadata

pytestmark = pytest.mark.shared_data


def _masks(shared: Path, numbers, dest: Path, rename=None) -> Path:
    dest.mkdir(parents=True)
    for n in numbers:
        src = shared / "sbem-mito" / "labels" / f"mitos_3D.{n:03d}.png"
        shutil.copy(src, dest / (rename(n) if rename else src.name))
    return dest


def _truth(shared: Path, n: int) -> np.ndarray:
    return np.asarray(iio.imread(shared / "sbem-mito" / "labels" / f"mitos_3D.{n:03d}.png"))[..., 0]


@pytest.fixture(scope="module")
def arch(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("versions")
    root = tmp / "archive"
    init_archive(root)
    md = write_metadata(tmp / "sbem.yaml", {"z": 40, "y": 5.9, "x": 5.9}, technique="SBF-SEM")
    ingest(root, [shared_data / "sbem-mito" / "images"], md, name="sbem")
    return {"root": root, "tmp": tmp}


def test_masks_land_on_the_image_slices_their_numbers_name(arch, shared_data, tmp_path):
    src = _masks(shared_data, [10, 11, 12], tmp_path / "m")
    (r,) = import_labels(arch["root"], "sbem", "first", src)
    assert r.data["annotated"]["slices"] == [0, 1, 2] and r.data["numbering"] == "source"
    lv = open_archive(arch["root"]).acquisition("sbem").label("first@v1")
    a = lv.array(0)
    for z, n in enumerate([10, 11, 12]):
        assert np.array_equal(a[z], _truth(shared_data, n))
    assert (a[3:] == 255).all()
    rec = lv.record()
    assert [(e.source, e.slice, e.image_source) for e in rec.details.slice_map] == [
        ("mitos_3D.010.png", 0, "images.010.png"), ("mitos_3D.011.png", 1, "images.011.png"),
        ("mitos_3D.012.png", 2, "images.012.png")]
    shown = CliRunner().invoke(cli, ["labels", "show", str(arch["root"]), "sbem", "first"])
    assert shown.exit_code == 0 and "z 0      images.010.png" in shown.output


def test_all_twenty_masks_import_without_slices(arch, shared_data):
    (r,) = import_labels(arch["root"], "sbem", "all", shared_data / "sbem-mito" / "labels")
    assert r.data["annotated"]["slices"] == list(range(20))


def test_numbers_matching_no_image_file_are_refused_with_both_numberings(arch, shared_data, tmp_path):
    src = _masks(shared_data, [10, 11, 12], tmp_path / "m", rename=lambda n: f"mask_{n - 10:03d}.png")
    head = dlo.head(arch["root"])
    with pytest.raises(LabelError) as info:
        import_labels(arch["root"], "sbem", "bad", src)
    msg = str(info.value)
    assert "10-29" in msg and "images.010.png" in msg  # the image's numbering
    assert "0-2" in msg and "mask_000.png" in msg  # the masks'
    assert "--numbering z" in msg and "--slices 0-2" in msg  # what settles it
    assert dlo.head(arch["root"]) == head
    (r,) = import_labels(arch["root"], "sbem", "bad", src, numbering="z")
    assert r.data["annotated"]["slices"] == [0, 1, 2]


def test_single_file_stack_numbers_refused_when_both_readings_fit(tmp_path):
    root = tmp_path / "a"
    init_archive(root)
    tifffile.imwrite(tmp_path / "v.tif", em_like_volume((6, 32, 32)))
    ingest(root, [tmp_path / "v.tif"], write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8}), name="v")
    masks = tmp_path / "masks"
    masks.mkdir()
    for n in (1, 3):
        tifffile.imwrite(masks / f"v-{n:04d}.tif", np.ones((32, 32), np.uint8))
    with pytest.raises(LabelError, match=r"two ways.*--numbering z \(0-based: z 1, 3\).*--numbering z1"):
        import_labels(root, "v", "m", masks)
    (r,) = import_labels(root, "v", "m", masks, numbering="z1")
    assert r.data["annotated"]["slices"] == [0, 2]
    tifffile.imwrite(masks / "v-0000.tif", np.ones((32, 32), np.uint8))  # 0 only fits the 0-based reading
    (r,) = import_labels(root, "v", "m", masks)
    assert r.data["slices_added"] == [1, 3] and r.data["numbering"] == "z"  # built on v1 (z 0, 2)


def test_a_new_version_builds_on_the_previous_one(arch, shared_data, tmp_path):
    root = arch["root"]
    (v1,) = import_labels(root, "sbem", "pores", _masks(shared_data, [10, 15, 20], tmp_path / "a"), note="three")
    (v2,) = import_labels(root, "sbem", "pores", _masks(shared_data, [12, 13], tmp_path / "b"), note="two more")
    assert v2.data["address"] == "pores@v2" and v2.data["parents"] == ["pores@v1"]
    assert v2.data["annotated"]["slices"] == [0, 2, 3, 5, 10]
    assert v2.data["slices_added"] == [2, 3] and v2.data["overridden"] == [] and v2.data["base"] == "pores@v1"
    a = open_archive(root).acquisition("sbem").label("pores@v2").array(0)
    for z in (0, 2, 3, 5, 10):
        assert np.array_equal(a[z], _truth(shared_data, z + 10))
    (d,) = diff_labels(root, "sbem", "pores@v1", "pores@v2")
    assert "2 slice(s) added, 0 removed" in d.message
    # a slice given again replaces the old one, and the record and the diff say so
    c = tmp_path / "c"
    c.mkdir()
    changed = _truth(shared_data, 15).copy()
    changed[:100, :100] = 1
    iio.imwrite(c / "mitos_3D.015.png", changed)
    (v3,) = import_labels(root, "sbem", "pores", c)
    assert v3.data["overridden"] == [5] and v3.data["slices_added"] == [] and "1 replaced (5)" in v3.message
    rec = open_archive(root).acquisition("sbem").label("pores@v3").record()
    assert isinstance(rec, LabelVersionRecord) and rec.details.overridden == [5] and rec.details.base == "pores@v2"
    (d,) = diff_labels(root, "sbem", "pores@v2", "pores@v3")
    assert d.data["changed_slices"] == [5] and "1 changed (5)" in d.message
    # the same import again changes nothing: no new version
    head = dlo.head(root)
    (again,) = import_labels(root, "sbem", "pores", c)
    assert again.status.value == "notneeded" and dlo.head(root) == head
    # --replace starts from nothing
    (v4,) = import_labels(root, "sbem", "pores", _masks(shared_data, [12], tmp_path / "d"), replace=True)
    assert v4.data["annotated"]["slices"] == [2] and v4.data["base"] is None and v4.data["parents"] == ["pores@v3"]


def test_cli_readme_walkthrough_adds_two_slices(arch, shared_data, tmp_path):
    root = str(arch["root"])
    r1 = CliRunner().invoke(cli, ["labels", "import", root, "sbem", str(_masks(shared_data, [10, 11, 12],
                                  tmp_path / "a")), "--layer", "walk", "--names", "1=mitochondrion", "--json"])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(cli, ["labels", "import", root, "sbem", str(_masks(shared_data, [13, 14], tmp_path / "b")),
                                  "--layer", "walk", "--note", "two more slices"])
    assert r2.exit_code == 0, r2.output
    diff = CliRunner().invoke(cli, ["labels", "diff", root, "sbem", "walk@v1", "walk@v2"])
    assert "2 slice(s) added, 0 removed" in diff.output


def test_a_consensus_has_no_parent_unless_given(arch, tmp_path):
    ann = tmp_path / "ann"
    for who in ("alice", "bob", "carol"):
        (ann / who).mkdir(parents=True)
        m = np.zeros((1024, 1024), np.uint8)
        m[100:300, 100:300] = 1
        iio.imwrite(ann / who / "images.012.png", m)
    root = arch["root"]
    (c1,) = aggregate_labels(root, "sbem", "crowd", ann)
    (same,) = aggregate_labels(root, "sbem", "crowd", ann)  # the same command again: nothing new
    assert same.status.value == "notneeded" and same.data["address"] == "crowd@v1"
    (c2,) = aggregate_labels(root, "sbem", "crowd", ann, method="staple")
    assert c1.data["parents"] == [] and c2.data["parents"] == [] and c2.data["address"] == "crowd@v2"
    (c3,) = aggregate_labels(root, "sbem", "crowd", ann, parents=["crowd@v2"])
    assert c3.data["parents"] == ["crowd@v2"]
