"""Versioned label layers on a real SBF-SEM acquisition (sbem-mito: 20 slices, 1024 x 1024).

One archive per module: the images are ingested once, the mitochondria ground truth is
imported as mito@v1 (all slices) and a subset as mito@v2 (through the CLI), and each
test checks one side of the result: round trip, lineage, immutability, tags, diff,
listing, NGFF conformance (ome-zarr-models and the spec's JSON schemas) and fixity.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from curation.cli.main import cli
from curation.errors import ImmutableError, InvalidNameError, LabelError, NotFoundError
from curation.labels import layers as L
from curation.labels.importer import import_labels
from curation.labels.store import PlaneSource, write_label_version
from curation.omezarr.ngff import validate_label
from curation.provenance import LabelVersionRecord, read_record
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest
from curation.repository.verify import verify
from curation.testing import write_metadata

pytestmark = pytest.mark.shared_data

V2_FILES = [f"mitos_3D.{i:03d}.png" for i in range(13, 18)]  # image slices 3..7


def _truth(shared_data: Path) -> np.ndarray:
    files = sorted((shared_data / "sbem-mito" / "labels").glob("mitos_3D.*.png"))
    return np.stack([np.asarray(iio.imread(f))[..., 0] for f in files])


@pytest.fixture(scope="module")
def sbem(shared_data, tmp_path_factory):
    """An archive with sbem ingested, mito@v1 (20 slices) and mito@v2 (5 slices, by the CLI)."""
    tmp = tmp_path_factory.mktemp("layers")
    root = tmp / "archive"
    md = tmp / "sbem.yaml"
    write_metadata(md, {"z": 40, "y": 5.9, "x": 5.9}, technique="SBF-SEM")
    init_archive(root)
    ingest(root, [shared_data / "sbem-mito" / "images"], md, name="sbem")
    # no --slices: mitos_3D.010.png ... go to the z of images.010.png ..., as ingest recorded them
    v1 = import_labels(root, "sbem", "mito", shared_data / "sbem-mito" / "labels",
                       names={1: "mitochondrion"}, note="all slices", creator="A. Tracer")
    subset = tmp / "subset"
    subset.mkdir()
    for f in V2_FILES:
        shutil.copy(shared_data / "sbem-mito" / "labels" / f, subset / f)
    res = CliRunner().invoke(cli, ["labels", "import", str(root), "sbem", str(subset), "--layer", "mito",
                                   "--slices", "3", "4", "5-7", "--replace", "--names", "1=mitochondrion", "--note",
                                   "five slices", "--json"])
    assert res.exit_code == 0, res.output
    v2 = json.loads(res.output)
    return {"root": root, "v1": v1, "v2": v2, "truth": _truth(shared_data), "tmp": tmp}


def test_import_records(sbem):
    (r1,) = sbem["v1"]
    assert r1.status.value == "ok" and r1.action == "labels-import"
    assert r1.data["address"] == "mito@v1" and r1.data["dtype"] == "uint8" and r1.data["unlabeled_value"] == 255
    assert r1.data["label_values"] == [0, 1] and r1.data["tag"] == "sbem/mito/v1"
    assert r1.path == "acquisitions/sbem/sbem.ome.zarr/labels/mito_v1"
    v2 = sbem["v2"]
    assert v2["status"] == "ok" and v2["address"] == "mito@v2" and v2["annotated"] == {"slices": [3, 4, 5, 6, 7]}


def test_round_trip(sbem):
    root, truth = sbem["root"], sbem["truth"]
    a1, attrs1 = L.read_label_version(root, "sbem", "mito@v1")
    assert a1.dtype == np.uint8 and a1.shape == (20, 1024, 1024)
    assert a1.fill_value == 255
    assert np.array_equal(a1[...], truth)
    a2, attrs2 = L.read_label_version(root, "sbem", "mito")  # the latest
    assert attrs2["curation"]["version"] == 2
    v2 = a2[...]
    assert np.array_equal(v2[3:8], truth[3:8])
    assert (v2[:3] == 255).all() and (v2[8:] == 255).all()  # unlabeled, not background
    # coarser levels agree: mode downsampling keeps 0/1 where annotated and 255 elsewhere
    import zarr

    g = zarr.open_group(str(Path(root) / "acquisitions/sbem/sbem.ome.zarr/labels/mito_v2"), mode="r")
    lv1 = g["1"][...]
    assert set(np.unique(lv1[3:8]).tolist()) == {0, 1} and (lv1[:3] == 255).all()


def test_attrs_and_lineage(sbem):
    root = sbem["root"]
    _, attrs = L.read_label_version(root, "sbem", "mito@v1")
    cur = attrs["curation"]
    assert cur["schema_key"] == "LabelLineage" and cur["schema_version"] == "2.0.0"
    assert cur["layer"] == "mito" and cur["version"] == 1 and cur["address"] == "mito@v1"
    assert cur["kind"] == "ground-truth" and cur["parents"] == [] and cur["creator"] == "A. Tracer"
    assert cur["annotated"] == {"slices": list(range(20)), "regions": []} and cur["unlabeled_value"] == 255
    assert cur["note"] == "all slices" and cur["tool_version"] and re.match(r"\d{4}-\d\d-\d\dT", cur["created"])
    assert len(cur["sources"]) == 20 and all(len(s["sha256"]) == 64 and s["size"] > 0 for s in cur["sources"])
    assert cur["sources"][0]["name"] == "mitos_3D.010.png"
    il = attrs["ome"]["image-label"]
    props = {p["label-value"]: p["name"] for p in il["properties"]}
    assert props == {0: "background", 1: "mitochondrion", 255: "unlabeled"}
    colors = {c["label-value"]: c["rgba"] for c in il["colors"]}
    assert colors[255][3] == 0 and len({tuple(c) for c in colors.values()}) == len(colors)
    assert il["source"] == {"image": "../../"}
    ms = attrs["ome"]["multiscales"][0]
    assert ms["type"] == "mode"
    image = json.loads((Path(root) / "acquisitions/sbem/sbem.ome.zarr/zarr.json").read_text())
    ims = image["attributes"]["ome"]["multiscales"][0]
    assert [d["coordinateTransformations"] for d in ms["datasets"]] == [d["coordinateTransformations"] for d in ims["datasets"]]

    _, attrs2 = L.read_label_version(root, "sbem", "mito@v2")
    assert attrs2["curation"]["parents"] == ["mito@v1"] and attrs2["curation"]["creator"] == "Curation Tests <tests@curation.invalid>"
    listing = json.loads((Path(root) / "acquisitions/sbem/sbem.ome.zarr/labels/zarr.json").read_text())
    assert listing["attributes"]["ome"]["labels"] == ["mito_v1", "mito_v2"]

    prov = read_record(Path(root) / "acquisitions/sbem/provenance/labels/mito_v2.json", LabelVersionRecord)
    assert prov.schema_key == "LabelVersionRecord" and prov.action == "labels-import"
    assert prov.group == "labels/mito_v2" and prov.address == "mito@v2" and prov.lineage.parents == ["mito@v1"]
    assert [p.address for p in prov.labels("parent")] == ["mito@v1"] and len(prov.files()) == 5
    assert prov.started <= prov.finished and prov.storage.tree_sha256 and prov.storage.n_files > 0
    assert prov.details.slice_map[0].model_dump() == {"source": "mitos_3D.013.png", "slice": 3,
                                                      "image_source": "images.013.png"}
    assert prov.details.base is None  # --replace


def test_show_and_list(sbem):
    root = sbem["root"]
    runner = CliRunner()
    res = runner.invoke(cli, ["show", str(root), "sbem", "--json"])
    assert res.exit_code == 0, res.output
    labels = json.loads(res.output)["labels"]
    assert labels == [
        {"name": "mito", "version": 1, "address": "mito@v1", "kind": "ground-truth",
         "path": "acquisitions/sbem/sbem.ome.zarr/labels/mito_v1"},
        {"name": "mito", "version": 2, "address": "mito@v2", "kind": "ground-truth",
         "path": "acquisitions/sbem/sbem.ome.zarr/labels/mito_v2"},
    ]
    res = runner.invoke(cli, ["labels", "list", str(root), "sbem", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert [(r["data"]["address"], r["data"]["latest"]) for r in listed] == [("mito@v1", False), ("mito@v2", True)]
    res = runner.invoke(cli, ["labels", "show", str(root), "sbem", "mito@v2", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    truth = sbem["truth"][3:8]
    assert shown["annotated_slices"] == [3, 4, 5, 6, 7]
    assert shown["value_counts"] == {"0": int((truth == 0).sum()), "1": int((truth == 1).sum())}
    assert shown["tags"] == {"dataset": ["sbem/mito/v2"], "archive": ["sbem/mito/v2"]}
    assert [a["address"] for a in shown["ancestry"]] == ["mito@v1"]
    assert shown["annotated_sources"][0] == {"z": 3, "source": "images.013.png"}
    assert shown["archive_commit"] == dlo.git(Path(root), "rev-parse", "sbem/mito/v2^{commit}").strip()
    assert shown["dataset_commit"] == dlo.git(Path(root) / "acquisitions/sbem", "rev-parse", "sbem/mito/v2^{commit}").strip()
    text = runner.invoke(cli, ["labels", "show", str(root), "sbem", "mito"])
    assert text.exit_code == 0 and "mitochondrion" in text.output and "mito@v2" in text.output


def test_tags_and_commits(sbem):
    root = Path(sbem["root"])
    acq = root / "acquisitions" / "sbem"
    for repo in (root, acq):
        tags = dlo.git(repo, "tag", "-l").split()
        assert {"sbem/mito/v1", "sbem/mito/v2"} <= set(tags)
        kind = dlo.git(repo, "cat-file", "-t", "sbem/mito/v1").strip()
        assert kind == "tag"  # annotated
    # the archive's tag records the dataset's commit of the same version
    sub = dlo.git(root, "rev-parse", "sbem/mito/v1:acquisitions/sbem").strip()
    assert sub == dlo.git(acq, "rev-parse", "sbem/mito/v1^{commit}").strip()
    assert "mito@v2" in dlo.log(root, limit=1)[0]["subject"]
    assert dlo.status(root, recursive=True) == []


def test_immutable(sbem):
    root = sbem["root"]
    archive = open_archive(root)
    before = dlo.head(root)
    src = PlaneSource((20, 1024, 1024), "uint8", [0], planes={0: np.zeros((1024, 1024), np.uint8)})
    with pytest.raises(ImmutableError, match="mito@v1 exists"):
        write_label_version(archive, "sbem", "mito", src, annotated={"slices": [0]}, version=1)
    with pytest.raises(ImmutableError):
        import_labels(root, "sbem", "mito@v2", sbem["tmp"] / "subset", slices=[3, 4, 5, 6, 7])
    with pytest.raises(LabelError, match="numbered in order"):
        write_label_version(archive, "sbem", "mito", src, annotated={"slices": [0]}, version=7)
    assert dlo.head(root) == before and dlo.status(root, recursive=True) == []
    assert sorted(p.name for p in (Path(root) / "acquisitions/sbem/sbem.ome.zarr/labels").iterdir()) == [
        "mito_v1", "mito_v2", "zarr.json"]


def test_diff(sbem):
    from curation.labels.diff import diff_labels

    (r,) = diff_labels(sbem["root"], "sbem", "mito@v1", "mito@v2")
    d = r.data
    assert d["slices_removed"] == [0, 1, 2] + list(range(8, 20)) and d["slices_added"] == []
    assert d["slices_common"] == [3, 4, 5, 6, 7] and d["changed_voxels"] == 0
    assert d["dice"] == {"0": 1.0, "1": 1.0} and d["b_descends_from_a"]
    assert d["per_value"]["1"]["voxels_a"] == int((sbem["truth"][3:8] == 1).sum())
    res = CliRunner().invoke(cli, ["labels", "diff", str(sbem["root"]), "sbem", "mito@v2", "mito@v1"])
    assert res.exit_code == 0 and "15 slice(s) added" in res.output


def test_unknown_addresses(sbem):
    root = sbem["root"]
    with pytest.raises(NotFoundError, match=r"no label layer 'nuclei'.*mito@v1, v2"):
        L.read_label_version(root, "sbem", "nuclei")
    with pytest.raises(NotFoundError, match="has no version 9"):
        L.show_labels(root, "sbem", "mito@v9")
    with pytest.raises(InvalidNameError):
        L.show_labels(root, "sbem", "mito@vx")
    res = CliRunner().invoke(cli, ["labels", "diff", str(root), "sbem", "mito@v1", "mito@v3"])
    assert res.exit_code == 1 and "has no version 3" in res.output and len(res.output.strip().splitlines()) == 1


def test_ngff_conformance(sbem, shared_data):
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    folder = shared_data / "ngff" / "0.5" / "schemas"
    schemas = {p.name: json.loads(p.read_text()) for p in folder.glob("*.schema")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in schemas.values())
    zroot = Path(sbem["root"]) / "acquisitions/sbem/sbem.ome.zarr"
    for group in ("mito_v1", "mito_v2"):
        validate_label(zroot, f"labels/{group}")
        attrs = json.loads((zroot / "labels" / group / "zarr.json").read_text())["attributes"]
        for name in ("label.schema", "strict_label.schema", "image.schema"):
            validator = jsonschema.Draft202012Validator(schemas[name], registry=registry)
            errors = [e.message for e in validator.iter_errors(attrs)]
            assert not errors, (group, name, errors)


def test_verify_passes(sbem):
    (r,) = verify(sbem["root"], "sbem")
    assert r.status.value == "ok", r.message
    assert r.data["unexpected"] == [] and r.data["missing"] == [] and r.data["annex_fsck"] == "ok"
