"""Typed records: v1 records (written by curation 0.1, kept as fixtures) still read, every
model is exported to schemas/ without drift, and bad records are refused with the field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from curation.errors import RecordError
from curation.omezarr import checksum as cks
from curation.provenance import (
    IngestRecord,
    LabelLineage,
    LabelVersionRecord,
    RunRecord,
    parse_record,
    read_record,
    record_json,
)
from curation.schemas import generators, schema_text

REPO = Path(__file__).resolve().parents[2]
V1 = Path(__file__).parent / "fixtures" / "v1"


def test_v1_ingest_record_reads():
    r = read_record(V1 / "provenance" / "ingest.json", IngestRecord)
    assert r.schema_version == "2.0.0" and r.id == "ingest" and r.acquisition == "vol"
    assert [s.name for s in r.sources] == ["vol.tif"] and r.sources[0].size == 34186
    assert r.image.plan.voxel_size_nm == (8.0, 8.0, 8.0) and r.image.n_shards == 1
    assert r.engine.threads == 2 and r.reader == "tiff" and r.agent is None
    assert r.image.plan.to_plan().shape == (8, 64, 64)


@pytest.mark.parametrize("group", ["mito_v1", "envelope_v1"])
def test_v1_label_records_and_lineage_read(group):
    rec = read_record(V1 / "provenance" / "labels" / f"{group}.json", LabelVersionRecord)
    attrs = json.loads((V1 / "labels" / group / "zarr.json").read_text())["attributes"]["curation"]
    lineage = parse_record(attrs, LabelLineage, acquisition="vol")
    assert rec.lineage.address == lineage.address == rec.address
    assert rec.storage.tree_sha256 == cks.tree_checksum(cks.read_tsv(V1 / "provenance" / "labels" /
                                                                     f"{group}.checksums.tsv"))
    if group == "mito_v1":
        assert rec.details.kind == "labels-import" and rec.details.slice_map[1].slice == 3
        assert lineage.annotated.slices == [1, 3] and lineage.consensus is None
    else:
        assert rec.details.kind == "labels-aggregate" and rec.details.method == "majority"
        assert [a.annotator for a in lineage.consensus.annotators] == ["alice", "bob", "carol"]
    # what is read round-trips through the current model
    assert parse_record(record_json(rec), LabelVersionRecord) == rec
    assert parse_record(record_json(lineage), LabelLineage) == lineage


def test_v1_checksums_read():
    entries = cks.read_tsv(V1 / "provenance" / "checksums.tsv")
    assert cks.tree_checksum(entries) == read_record(V1 / "provenance" / "ingest.json", IngestRecord).image.tree_sha256


def test_bad_records_name_the_file_and_field(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema_key": "RunRecord", "schema_version": "2.0.0", "id": "x", "action": "a",
                             "started": "t", "finished": "t", "tool": {"version": 1}}))
    with pytest.raises(RecordError, match=r"r.json: tool.version"):
        read_record(p, RunRecord)
    p.write_text(json.dumps({"schema_key": "RunRecord", "schema_version": "9.0.0"}))
    with pytest.raises(RecordError, match="schema version"):
        read_record(p, RunRecord)
    p.write_text("{")
    with pytest.raises(RecordError, match="not valid JSON"):
        read_record(p, RunRecord)
    with pytest.raises(RecordError, match="another kind"):
        read_record(V1 / "provenance" / "ingest.json", LabelVersionRecord)
    tsv = tmp_path / "c.tsv"
    tsv.write_text("path\tsize\tsha256\n../etc/passwd\t1\t" + "0" * 64 + "\n")
    with pytest.raises(RecordError, match="line 2"):
        cks.read_tsv(tsv)


@pytest.mark.parametrize("name", sorted(generators()))
def test_schema_files_have_not_drifted(name):
    path = REPO / "schemas" / name
    assert path.is_file(), f"{path} is missing: run `make schemas`"
    expected = generators()[name]()
    assert path.read_text() == schema_text(expected), (
        f"schemas/{name} differs from the models: run `make schemas` and commit the result (and bump "
        "schema_version, with a migration, if a released schema changed)")
    jsonschema.Draft202012Validator.check_schema(expected)
    assert expected["$id"].startswith("https://") and expected["schema_version"] in expected["$id"]


def test_records_validate_against_their_exported_schema():
    rec = read_record(V1 / "provenance" / "labels" / "envelope_v1.json", LabelVersionRecord)
    schema = json.loads((REPO / "schemas" / "label-version-record.schema.json").read_text())
    jsonschema.validate(record_json(rec), schema)
    ing = read_record(V1 / "provenance" / "ingest.json", IngestRecord)
    jsonschema.validate(record_json(ing), json.loads((REPO / "schemas" / "ingest-record.schema.json").read_text()))
