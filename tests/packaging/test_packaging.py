"""Packaging one acquisition as EMPIAR deposition, RO-Crate, BagIt bag and DataCite metadata.

One archive per module: the real SBEM slices from shared data, ingested with a complete
study, and two versions of its mitochondria label layer imported with the label importer
(the label-specific checks skip when the label layer is not installed).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from curation.packaging import package
from curation.errors import CurationError, InvalidNameError, NotFoundError, PackagingError
from curation.repository.archive import init_archive, open_archive
from curation.repository.ingest import ingest

ORCID = "0000-0002-1825-0097"

STUDY = f"""\
schema_version: "1.0.0"
study:
  title: "Serial block-face SEM of mouse cerebellum with mitochondria ground truth"
  description: "Twenty consecutive SBEM slices with manual mitochondria labels."
  license: CC-BY-4.0
  keywords: [mitochondria, SBEM, cerebellum]
  authors:
    - given_name: Josiah Stinkney
      family_name: Carberry
      orcid: {ORCID}
      email: josiah@example.org
      affiliation: Brown University
      country: US
    - given_name: Yi-Wei
      family_name: Chang
      affiliation: California Institute of Technology
      country: US
  corresponding_author:
    given_name: Josiah
    family_name: Carberry
    orcid: {ORCID}
    email: josiah@example.org
    affiliation: Brown University
    country: US
    address: {{street: "69 Brown St", city: Providence, state_or_province: RI, postcode: "02912"}}
  principal_investigators:
    - given_name: Josiah
      family_name: Carberry
      orcid: {ORCID}
      email: josiah@example.org
      affiliation: Brown University
      country: US
  funding:
    - funder: Wellcome Trust
      grant_id: "123456/Z/20/Z"
      funder_id: https://ror.org/029chgv08
  citation:
    status: published
    title: "Deep learning segmentation of mitochondria in serial block-face SEM"
    journal: Nature Methods
    year: 2018
    volume: "15"
    first_page: "677"
    last_page: "680"
    doi: 10.1038/s41592-018-0106-z
  release: {{policy: hold_until_publication}}
biosample:
  organism: {{scientific_name: Mus musculus, ncbi_taxon: 10090}}
  tissue: cerebellum
acquisition:
  technique: SBF-SEM
image_data:
  voxel_size:
    z: {{value: 40, unit: nm}}
    y: {{value: 5.9, unit: nm}}
    x: {{value: 5.9, unit: nm}}
"""


def write_metadata(path: Path, *, drop: tuple[str, ...] = ()) -> Path:
    import yaml

    doc = yaml.safe_load(STUDY)
    for key in drop:
        doc["study"].pop(key, None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def build_archive(root: Path, shared_data: Path, tmp: Path, *, keep_raw: bool = True,
                  labels: bool = True, sources: Path | None = None, name: str = "sbem") -> list[str]:
    """An archive with the SBEM acquisition; returns the label addresses it holds.

    Labels (when the label layer is installed): mito@v1 imports all 20 ground-truth
    slices; mito@v2 re-imports slices 0-9 only (--replace), with mito@v1 as its parent.
    """
    import shutil

    init_archive(root, title="packaging tests")
    md = write_metadata(tmp / f"{name}.yaml")
    ingest(root, [sources or shared_data / "sbem-mito" / "images"], md, name=name,
           keep_raw=keep_raw)
    if not labels:
        return []
    try:
        from curation.labels.importer import import_labels
    except ImportError:
        return []
    masks = shared_data / "sbem-mito" / "labels"
    import_labels(root, name, "mito", masks, note="CDeep3M ground truth")
    half = tmp / f"{name}-half-masks"
    half.mkdir()
    for f in sorted(masks.glob("*.png"))[:10]:
        shutil.copy(f, half / f.name)
    import_labels(root, name, "mito", half, note="slices 0-9 reviewed again", replace=True)
    return ["mito@v1", "mito@v2"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("pkg")
    root = tmp / "archive"
    addresses = build_archive(root, shared_data, tmp)
    return {"root": root, "labels": addresses, "tmp": tmp}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def empiar_schema(shared_data: Path) -> Path:
    return shared_data / "empiar" / "empiar_deposition.schema.json"


# --- EMPIAR ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empiar_package(archive, shared_data):
    out = archive["tmp"] / "empiar"
    res = package(archive["root"], "sbem", "empiar", out, empiar_schema=empiar_schema(shared_data))
    return out, res


def test_empiar_json_validates_against_official_schema(empiar_package, shared_data):
    import jsonschema

    from curation.packaging.empiar import check_deposition

    out, res = empiar_package
    doc = json.loads((out / "empiar_deposition.json").read_text())
    schema = json.loads(empiar_schema(shared_data).read_text())
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(doc)
    assert check_deposition(doc) == []
    assert res[0].action == "package" and res[0].status.value == "ok"
    assert res[0].data["format"] == "empiar" and res[0].data["files"] > 40 and res[0].data["bytes"] > 0


def test_empiar_codes_people_and_citation(empiar_package):
    out, _ = empiar_package
    doc = json.loads((out / "empiar_deposition.json").read_text())
    assert doc["experiment_type"] == 4  # SBF-SEM
    assert doc["release_date"] == "HP"  # hold until publication
    assert doc["scale"] == "4"  # tissue
    assert doc["authors"][0] == {"name": "('Carberry', 'JS')", "order_id": 0, "author_orcid": ORCID}
    assert doc["authors"][1] == {"name": "('Chang', 'YW')", "order_id": 1, "author_orcid": None}
    ca = doc["corresponding_author"]
    assert (ca["first_name"], ca["last_name"], ca["country"], ca["town_or_city"]) == \
        ("Josiah", "Carberry", "US", "Providence")
    assert doc["principal_investigator"][0]["organization"] == "Brown University"
    cit = doc["citation"][0]
    assert cit["published"] is True and cit["j_or_nj_citation"] is True
    assert cit["doi"] == "10.1038/s41592-018-0106-z" and cit["year"] == 2018
    assert [a["name"] for a in cit["authors"]] == ["('Carberry', 'JS')", "('Chang', 'YW')"]


def test_empiar_imagesets_and_files(empiar_package, archive, shared_data):
    out, _ = empiar_package
    doc = json.loads((out / "empiar_deposition.json").read_text())
    sets = {s["directory"]: s for s in doc["imagesets"]}
    raw, vol = sets["/data/raw"], sets["/data/volume"]
    assert raw["header_format"] == raw["data_format"] == "('T10', '')"  # PNG as recorded
    assert raw["num_images_or_tilt_series"] == 20 and raw["voxel_type"] == "('T1', '')"
    assert vol["category"] == "('T13', '')" and vol["data_format"] == "('T3', '')"
    assert vol["pixel_width"] == pytest.approx(59.0)  # Å
    assert "40 nm = 400 Å" in vol["details"]  # the voxel depth EMPIAR has no field for
    # the raw files are the originals, byte for byte
    for src in sorted((shared_data / "sbem-mito" / "images").glob("*.png")):
        assert sha256(out / "data" / "raw" / src.name) == sha256(src)
    # the volume TIFFs hold level 0 exactly
    import tifffile
    import zarr

    level0 = zarr.open_array(str(archive["root"] / "acquisitions/sbem/sbem.ome.zarr/0"), mode="r")
    tiffs = sorted((out / "data" / "volume").glob("*.tif"))
    assert len(tiffs) == 20
    assert np.array_equal(tifffile.imread(tiffs[7]), level0[7])
    # the manifest checks out with sha256sum
    proc = subprocess.run(["sha256sum", "-c", "--quiet", "manifest-sha256.txt"], cwd=out, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = len((out / "manifest-sha256.txt").read_text().splitlines())
    # every file but the manifest and the package record (hidden, written last)
    assert listed == sum(1 for p in out.rglob("*") if p.is_file()) - 2
    assert (out / ".curation-package.json").is_file()
    readme = (out / "README.md").read_text()
    assert "empiar-depositor" in readme and "$" not in readme.replace("$ ", "")
    # the codes explained (issue 12): not bare ('T13', '') tuples
    assert "Category T13 (reconstructed volumes), format T3 (TIFF), voxel type T1 (unsigned 8-bit integer)" in readme
    assert "OT (other: segmentation)" in readme and "('T" not in readme
    assert empiar_package[1][0].data["dataset_commit"] and empiar_package[1][0].data["archive_commit"]


def test_empiar_label_imagesets(empiar_package, archive):
    out, _ = empiar_package
    doc = json.loads((out / "empiar_deposition.json").read_text())
    labels = [s for s in doc["imagesets"] if s["directory"].startswith("/data/labels/")]
    if not archive["labels"]:
        pytest.skip("the label layer is not installed")
    assert len(labels) == 1 and "mito@v2" in labels[0]["name"]  # default: the latest version of each layer
    lab = labels[0]
    assert lab["directory"] == "/data/labels/mito_v2" and lab["category"] == "('OT', 'segmentation')"
    details = lab["details"]
    for text in ("Parents: mito@v1", "kind: ground-truth", "z 0-9 (10 whole slices)", "255 means unlabeled",
                 "slices 0-9 reviewed again", "mitos_3D.010.png", "40 nm = 400 Å"):
        assert text in details, text
    import tifffile

    tiffs = sorted((out / "data" / "labels" / "mito_v2").glob("*.tif"))
    assert len(tiffs) == 20
    annotated, unannotated = tifffile.imread(tiffs[5]), tifffile.imread(tiffs[15])
    assert set(np.unique(annotated)) <= {0, 1} and annotated.max() == 1
    assert (unannotated == 255).all()  # the unlabeled value is kept, not turned into background


def test_empiar_chosen_label_version(archive, tmp_path):
    if not archive["labels"]:
        pytest.skip("the label layer is not installed")
    out = tmp_path / "v1"
    res = package(archive["root"], "sbem", "empiar", out, labels=["mito@v1"])
    assert res[0].data["labels"] == ["mito@v1"]
    assert (out / "data" / "labels" / "mito_v1").is_dir() and not (out / "data" / "labels" / "mito_v2").exists()
    with pytest.raises(NotFoundError, match="no version 9"):
        package(archive["root"], "sbem", "empiar", tmp_path / "v9", labels=["mito@v9"])
    with pytest.raises(NotFoundError, match="no label layer named 'nucleus'"):
        package(archive["root"], "sbem", "empiar", tmp_path / "nuc", labels=["nucleus"])
    assert not (tmp_path / "v9").exists() and not (tmp_path / "nuc").exists()


def test_empiar_missing_metadata_lists_everything_and_writes_nothing(shared_data, tmp_path):
    root = tmp_path / "archive"
    init_archive(root, title="incomplete")
    md = write_metadata(tmp_path / "md.yaml", drop=("corresponding_author", "citation", "principal_investigators"))
    ingest(root, [shared_data / "sbem-mito" / "images"], md, name="sbem")
    out = tmp_path / "out" / "empiar"
    (tmp_path / "out").mkdir()
    with pytest.raises(PackagingError) as info:
        package(root, "sbem", "empiar", out)
    msg = str(info.value)
    assert "\n" not in msg
    for field in ("study.corresponding_author", "study.citation", "study.principal_investigators"):
        assert field in msg
    assert len(info.value.errors) == 3
    assert list((tmp_path / "out").iterdir()) == []  # no folder, no temporary left behind
    # the other formats that need no EMPIAR fields still work from the same archive
    res = package(root, "sbem", "datacite", tmp_path / "out" / "dc")
    assert res[0].status.value == "ok"


def test_empiar_raw_from_recorded_sources_checked(shared_data, tmp_path):
    """Without --keep-raw the raw files come from their recorded paths, after a sha256 check."""
    import shutil

    slices = tmp_path / "slices"
    shutil.copytree(shared_data / "sbem-mito" / "images", slices)
    root = tmp_path / "archive"
    build_archive(root, shared_data, tmp_path, keep_raw=False, labels=False, sources=slices)
    res = package(root, "sbem", "empiar", tmp_path / "ok")
    assert len(list((tmp_path / "ok" / "data" / "raw").iterdir())) == 20
    assert res[0].data["imagesets"][0]["files"] == 20
    # a changed source (same size, other bytes) is refused, and nothing is left behind
    victim = slices / "images.015.png"
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(PackagingError, match="differs from what was recorded"):
        package(root, "sbem", "empiar", tmp_path / "changed")
    # a missing source is refused before anything is written
    victim.unlink()
    with pytest.raises(PackagingError, match="images.015.png: missing"):
        package(root, "sbem", "empiar", tmp_path / "missing")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not (tmp_path / "changed").exists() and not (tmp_path / "missing").exists() and leftovers == []


# --- safety of names and output folders -------------------------------------------------------------


def test_output_folder_rules(archive, tmp_path):
    root = archive["root"]
    with pytest.raises(InvalidNameError, match="'..'"):
        package(root, "sbem", "datacite", tmp_path / "a" / ".." / "b")
    with pytest.raises(InvalidNameError, match="inside the archive"):
        package(root, "sbem", "datacite", root / "export")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(PackagingError, match="not empty"):
        package(root, "sbem", "bagit", full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(InvalidNameError, match="symbolic link"):
        package(root, "sbem", "datacite", link)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert package(root, "sbem", "datacite", empty)[0].status.value == "ok"  # an empty folder is fine
    with pytest.raises(PackagingError, match="unknown package format"):
        package(root, "sbem", "zip", tmp_path / "zip")


def test_label_and_acquisition_names_cannot_escape(archive, tmp_path):
    root = archive["root"]
    for bad in ("../mito", "/etc/passwd", "mito/../../x@v1", "..@v1"):
        with pytest.raises(InvalidNameError):
            package(root, "sbem", "empiar", tmp_path / "x", labels=[bad])
    with pytest.raises(InvalidNameError):
        package(root, "../sbem", "empiar", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_safe_join_refuses_escapes(tmp_path):
    from curation.packaging.export_common import safe_join

    assert safe_join(tmp_path, "data/raw/a.tif") == tmp_path / "data" / "raw" / "a.tif"
    for bad in ("../x", "/abs/x", "data/../../x", "", "a//b", "C:/x"):
        with pytest.raises(InvalidNameError):
            safe_join(tmp_path, bad)
    (tmp_path / "out").symlink_to("/", target_is_directory=True)
    with pytest.raises(InvalidNameError, match="escape"):
        safe_join(tmp_path, "out/etc")


def test_symlink_out_of_archive_is_refused(tmp_path):
    from curation.packaging.export_common import copy_tree

    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text("outside")
    (src / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PackagingError, match="points outside"):
        copy_tree(src, tmp_path / "dst", inside=src)


# --- BagIt ------------------------------------------------------------------------------------------------


def test_bagit_validates_and_holds_everything(archive, tmp_path):
    import bagit

    out = tmp_path / "bag"
    res = package(archive["root"], "sbem", "bagit", out)
    bag = bagit.Bag(str(out))
    bag.validate()
    assert bag.algorithms == ["sha256"]
    for key in ("Source-Organization", "Contact-Name", "Contact-Email", "External-Description", "Bagging-Date",
                "Curation-Version"):
        assert bag.info.get(key), key
    assert bag.info["Contact-Email"] == "josiah@example.org"
    acq = archive["root"] / "acquisitions" / "sbem"
    payload = out / "data" / "sbem"
    for rel in ("metadata.json", "provenance/ingest.json", "provenance/checksums.tsv", "sbem.ome.zarr/zarr.json",
                "sbem.ome.zarr/0/c/0/0/0", "raw/images.010.png"):
        p = payload / rel
        assert p.is_file() and not p.is_symlink(), rel  # real files, annex links followed
        assert sha256(p) == sha256(acq / rel)
    for address in archive["labels"]:
        group = address.replace("@v", "_v")
        assert (payload / "sbem.ome.zarr" / "labels" / group / "zarr.json").is_file()
        assert (payload / "provenance" / "labels" / f"{group}.json").is_file()
    assert not (payload / ".git").exists() and not (payload / ".datalad").exists()
    assert res[0].data["files"] == len(bag.payload_entries()) and res[0].data["bytes"] > 40e6


# --- RO-Crate ----------------------------------------------------------------------------------------------


def test_rocrate_entities_and_actions(archive, tmp_path):
    from rocrate.rocrate import ROCrate

    out = tmp_path / "crate"
    res = package(archive["root"], "sbem", "ro-crate", out)
    crate = ROCrate(out)
    image = crate.get("sbem/sbem.ome.zarr/")
    assert image is not None and image.type == "Dataset"
    assert int(image["contentSize"]) > 20e6 and image["fileCount"] >= 14
    assert crate.root_dataset["license"].id == "https://spdx.org/licenses/CC-BY-4.0"
    authors = crate.root_dataset["author"]
    me = authors[0]
    assert me.id == f"https://orcid.org/{ORCID}" and me.type == "Person" and me["familyName"] == "Carberry"
    actions = {a.id: a for a in crate.get_by_type("CreateAction")}
    ingest_action = actions["#run-ingest"]
    assert ingest_action["instrument"]["name"] == "curation" and ingest_action["instrument"]["version"]
    assert ingest_action["result"][0].id == "sbem/sbem.ome.zarr/"
    assert len(ingest_action["object"]) == 20 and ingest_action["startTime"] and ingest_action["endTime"]
    assert ingest_action["object"][0]["sha256"]
    # no file-by-file listing of the chunks
    assert not any(e.id.startswith("sbem/sbem.ome.zarr/0/c") for e in crate.get_entities())
    assert res[0].data["actions"][0] == "#run-ingest"
    if not archive["labels"]:
        pytest.skip("the label layer is not installed")
    for address in archive["labels"]:
        group = address.replace("@v", "_v")
        lab = crate.get(f"sbem/sbem.ome.zarr/labels/{group}/")
        assert lab is not None and lab["name"] == address and int(lab["contentSize"]) > 0
        assert lab.id in [e.id for e in image["hasPart"]]
        action = actions[f"#run-labels-{group}"]
        assert action["result"][0].id == lab.id and action["agent"]["name"]
        assert action["instrument"]["name"] == "curation" and action["startTime"] <= action["endTime"]
        assert any(e.get("sha256") for e in action["object"])  # the imported mask files
    v2 = crate.get("sbem/sbem.ome.zarr/labels/mito_v2/")
    assert "sbem/sbem.ome.zarr/labels/mito_v1/" in [e.id for e in v2["isBasedOn"]]
    assert "sbem/sbem.ome.zarr/labels/mito_v1/" in [e.id for e in actions["#run-labels-mito_v2"]["object"]]


def test_rocrate_with_chosen_labels_rewrites_listing(archive, tmp_path):
    if not archive["labels"]:
        pytest.skip("the label layer is not installed")
    out = tmp_path / "crate"
    package(archive["root"], "sbem", "ro-crate", out, labels=["mito@v2"])
    listing = json.loads((out / "sbem/sbem.ome.zarr/labels/zarr.json").read_text())
    assert listing["attributes"]["ome"]["labels"] == ["mito_v2"]
    assert not (out / "sbem/sbem.ome.zarr/labels/mito_v1").exists()
    assert not (out / "sbem/provenance/labels/mito_v1.json").exists()


# --- DataCite -------------------------------------------------------------------------------------------------


def test_datacite_mandatory_fields(archive, tmp_path):
    from curation.packaging.datacite import check_datacite

    out = tmp_path / "dc"
    res = package(archive["root"], "sbem", "datacite", out, doi="https://doi.org/10.5281/zenodo.1234567")
    doc = json.loads((out / "datacite.json").read_text())
    assert check_datacite(doc) == []
    a = doc["data"]["attributes"]
    assert a["identifiers"] == [{"identifier": "10.5281/zenodo.1234567", "identifierType": "DOI"}]
    c = a["creators"][0]
    assert (c["nameType"], c["givenName"], c["familyName"]) == ("Personal", "Josiah Stinkney", "Carberry")
    assert c["nameIdentifiers"][0] == {"nameIdentifier": f"https://orcid.org/{ORCID}",
                                       "nameIdentifierScheme": "ORCID", "schemeUri": "https://orcid.org"}
    assert c["affiliation"] == [{"name": "Brown University"}]
    assert a["titles"][0]["title"].startswith("Serial block-face") and a["publisher"]["name"]
    assert isinstance(a["publicationYear"], int) and a["types"]["resourceTypeGeneral"] == "Dataset"
    assert a["rightsList"][0]["rightsIdentifier"] == "cc-by-4.0"
    assert a["fundingReferences"][0] == {"funderName": "Wellcome Trust", "funderIdentifier": "https://ror.org/029chgv08",
                                         "funderIdentifierType": "ROR", "awardNumber": "123456/Z/20/Z"}
    assert a["relatedIdentifiers"][0]["relatedIdentifier"] == "10.1038/s41592-018-0106-z"
    assert any(s.endswith("bytes") for s in a["sizes"]) and a["formats"] and a["version"]
    assert any(s.get("subjectScheme") == "NCBI Taxonomy" for s in a["subjects"])
    assert res[0].data["doi"] == "10.5281/zenodo.1234567"
    # without a DOI: no identifier, and the README says why
    out2 = tmp_path / "dc2"
    res2 = package(archive["root"], "sbem", "datacite", out2)
    assert json.loads((out2 / "datacite.json").read_text())["data"]["attributes"]["identifiers"] == []
    assert "no DOI was given" in (out2 / "README.md").read_text() and "none yet" in res2[0].data["identifier"]
    with pytest.raises(PackagingError, match="not a DOI"):
        package(archive["root"], "sbem", "datacite", tmp_path / "dc3", doi="nonsense")
    assert not (tmp_path / "dc3").exists()


def test_datacite_check_reports_missing_fields():
    from curation.packaging.datacite import check_datacite

    problems = check_datacite({"data": {"attributes": {"creators": [], "titles": [], "types": {}}}})
    fields = {p.field for p in problems}
    assert {"creators", "titles", "publisher", "publicationYear", "types.resourceTypeGeneral"} <= fields


# --- run records ------------------------------------------------------------------------------------------------


def test_run_records_share_one_shape(archive):
    from curation.packaging import read_run_records

    runs = read_run_records(open_archive(archive["root"]).acquisition("sbem"))
    assert runs[0].id == "ingest" and runs[0].action == "ingest"
    assert len(runs[0].inputs) == 20 and runs[0].inputs[0]["sha256"]
    assert runs[0].outputs[0]["path"] == "sbem.ome.zarr" and runs[0].outputs[0]["tree_sha256"]
    assert runs[0].agent and runs[0].agent["name"] == "Curation Tests <tests@curation.invalid>"
    keys = set(runs[0].to_dict())
    for r in runs[1:]:
        assert set(r.to_dict()) == keys
        assert r.id.startswith("labels/") and r.outputs[0]["kind"] == "label"
    assert len(runs) == 1 + len(archive["labels"])


def test_run_records_of_future_runs_join_unchanged(archive, tmp_path):
    """A typed run record under provenance/runs/ (training, prediction ...) joins as it is."""
    import shutil

    from curation.packaging.runrecords import read_run_records
    from curation.provenance import Agent, ImageRef, LabelRef, OutputRef, RunRecord, ToolInfo, write_record
    from curation.provenance.runs import GenericDetails

    root = Path(shutil.copytree(archive["root"], tmp_path / "archive", symlinks=True))
    acq = root / "acquisitions" / "sbem"
    rec = RunRecord(id="runs/train-1", action="train", acquisition="sbem", started="2030-01-01T00:00:00+00:00",
                    finished="2030-01-01T02:00:00+00:00", agent=Agent(name="A. Person"),
                    tool=ToolInfo(version="9.9"),
                    inputs=[ImageRef(acquisition="sbem", path="sbem.ome.zarr"), LabelRef(address="mito@v2")],
                    outputs=[OutputRef(kind="model", path="models/unet.pt")],
                    details=GenericDetails(values={"epochs": 3}))
    write_record(acq / "provenance" / "runs" / "train-1.json", rec)
    runs = read_run_records(open_archive(root).acquisition("sbem"), git_agents=False)
    (run,) = [r for r in runs if r.id == "runs/train-1"]
    assert (run.action, run.record) == ("train", "provenance/runs/train-1.json")
    assert run.inputs == [{"kind": "image", "path": "sbem.ome.zarr", "role": "image"},
                          {"kind": "label", "address": "mito@v2", "role": "parent"}]
    assert run.outputs[0]["path"] == "models/unet.pt" and run.parameters == {"values": {"epochs": 3}}
    assert run.agent == {"name": "A. Person"}


def test_all_errors_are_curation_errors():
    assert issubclass(PackagingError, CurationError) and issubclass(InvalidNameError, CurationError)


# --- EMPIAR codes from the metadata --------------------------------------------------------------------------


def _source_with(archive, updates):
    from dataclasses import replace

    from curation.packaging.context import load_source

    src = load_source(archive["root"], "sbem")
    return replace(src, metadata=src.metadata.with_fields(updates))


def test_empiar_technique_mapping(archive):
    from curation.packaging.empiar import EXPERIMENT_TYPES, metadata_problems

    assert EXPERIMENT_TYPES == {"SBF-SEM": 4, "FIB-SEM": 5, "ATUM-SEM": 11}
    assert metadata_problems(_source_with(archive, {"acquisition.technique": "FIB-SEM"}), None) == []
    tem = _source_with(archive, {"acquisition.technique": "TEM"})
    (problem,) = metadata_problems(tem, None)
    assert problem.field == "acquisition.technique" and "no experiment type" in problem.message
    assert metadata_problems(tem, 13) == []  # an explicit code is accepted
    assert metadata_problems(tem, 10)[0].field == "experiment_type"  # not an EMPIAR code


def test_empiar_release_codes(archive):
    from datetime import date, timedelta

    from curation.packaging.empiar import metadata_problems, release_code

    def with_release(policy, when=None):
        rel = {"policy": policy, **({"date": when.isoformat()} if when else {})}
        return _source_with(archive, {"study.release": rel})

    assert release_code(with_release("immediate")) == "RE"
    assert release_code(with_release("hold_until_publication")) == "HP"
    soon = with_release("hold_until_date", date.today() + timedelta(days=90))
    assert release_code(soon) == "HO" and metadata_problems(soon, None) == []
    assert release_code(with_release("hold_until_date", date.today() - timedelta(days=1))) == "RE"
    late = with_release("hold_until_date", date.today() + timedelta(days=800))
    assert [p.field for p in metadata_problems(late, None)] == ["study.release.date"]


def test_empiar_names_it_cannot_hold_are_listed_with_missing_fields(archive):
    from curation.packaging.empiar import metadata_problems

    src = _source_with(archive, {"study.authors.1.family_name": "O'Brien", "study.citation": None,
                                 "study.principal_investigators.0.country": "AX"})
    fields = [p.field for p in metadata_problems(src, None)]
    assert fields == ["study.principal_investigators.0.country", "study.authors.1.family_name", "study.citation"]


# --- the command line ----------------------------------------------------------------------------------------


def test_cli_package(archive, tmp_path):
    from click.testing import CliRunner

    from curation.cli.main import cli

    runner = CliRunner()
    out = tmp_path / "dc"
    res = runner.invoke(cli, ["package", str(archive["root"]), "sbem", "--format", "datacite", "--out", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["status"] == "ok" and data["format"] == "datacite" and (out / "datacite.json").is_file()
    res = runner.invoke(cli, ["package", str(archive["root"]), "sbem", "--format", "empiar", "--out",
                              str(tmp_path / "e"), "--labels", "../x"])
    assert res.exit_code == 1 and "error:" in res.output and not (tmp_path / "e").exists()
    res = runner.invoke(cli, ["package", str(archive["root"]), "sbem", "--format", "zip", "--out", str(tmp_path)])
    assert res.exit_code == 2  # a usage error


def test_finished_package_rerun_is_notneeded(archive, tmp_path):
    """A package killed right after its final rename, run again, is notneeded, not "--out not empty"."""
    from curation.provenance.io import read_record
    from curation.provenance.package import PACKAGE_RECORD, PackageRecord

    out = tmp_path / "dc"
    first = package(archive["root"], "sbem", "datacite", out, doi="10.5072/abc")
    assert first[0].status.value == "ok"
    record = read_record(out / PACKAGE_RECORD, PackageRecord)
    assert record.format == "datacite" and record.acquisition == "sbem" and record.labels == archive["labels"]
    files = sorted(p.name for p in out.iterdir())
    again = package(archive["root"], "sbem", "datacite", out, doi="10.5072/abc")
    assert again[0].status.value == "notneeded" and "already written" in again[0].message
    assert sorted(p.name for p in out.iterdir()) == files
    with pytest.raises(PackagingError, match="not empty"):  # another job: never written over
        package(archive["root"], "sbem", "datacite", out, doi="10.5072/other")


def test_bag_with_package_record_still_validates(archive, tmp_path):
    import bagit

    from curation.provenance.package import PACKAGE_RECORD

    out = tmp_path / "bag"
    package(archive["root"], "sbem", "bagit", out, labels=["mito@v1"])
    assert (out / PACKAGE_RECORD).is_file()
    bagit.Bag(str(out)).validate()
    assert package(archive["root"], "sbem", "bagit", out, labels=["mito@v1"])[0].status.value == "notneeded"


def test_leftovers_of_a_killed_package_are_removed(archive, tmp_path):
    import os

    out = tmp_path / "dc"
    dead = _dead_pid()
    stale = tmp_path / f".dc.p{dead}.abc123.partial"
    (stale / "data").mkdir(parents=True)
    live = tmp_path / f".dc.p{os.getppid()}.xyz.partial"  # a running process's folder is kept
    live.mkdir()
    package(archive["root"], "sbem", "datacite", out)
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dc", live.name])


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
