"""Reading metadata files: YAML and JSON, syntax errors with lines, check records."""

from __future__ import annotations

import json
import shutil

import pytest

from curation.errors import MetadataError
from curation.metadata import check_metadata, dump_text, load_metadata
from curation.records import Status, count


def test_load_yaml_and_json_examples(examples_dir):
    yml = load_metadata(examples_dir / "fibsem-full.yaml")
    assert yml.study.authors[0].orcid == "0000-0002-1825-0097"
    js = load_metadata(examples_dir / "tem-hold.json")
    assert js.acquisition.technique.value == "ssTEM"
    assert js.study.license == "LicenseRef-lab-data-agreement"
    assert js.shape_zyx() == (4841, 25000, 30000)


def test_written_document_loads_back(tmp_path, examples_dir):
    md = load_metadata(examples_dir / "fibsem-full.yaml")
    (tmp_path / "copy.yaml").write_text(dump_text(md.to_document()), encoding="utf-8")
    (tmp_path / "copy.json").write_text(dump_text(md.to_document(), as_json=True), encoding="utf-8")
    assert load_metadata(tmp_path / "copy.yaml") == md
    assert load_metadata(tmp_path / "copy.json") == md


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "meta.yaml"
    p.write_text('schema_version: "1.0.0"\nstudy:\n  title: [unclosed\n  license: CC0-1.0\n', encoding="utf-8")
    with pytest.raises(MetadataError) as info:
        load_metadata(p)
    text = str(info.value)
    assert str(p) in text and "invalid YAML at line" in text
    assert "\n" not in text


def test_yaml_bad_indentation_line(tmp_path):
    p = tmp_path / "meta.yaml"
    p.write_text("study:\n  title: a\n   description: b\n", encoding="utf-8")
    with pytest.raises(MetadataError, match=r"meta\.yaml: invalid YAML at line 3"):
        load_metadata(p)


def test_json_syntax_error_names_line(tmp_path):
    p = tmp_path / "meta.json"
    p.write_text('{\n  "schema_version": "1.0.0",\n  "study": \n}\n', encoding="utf-8")
    with pytest.raises(MetadataError, match=r"meta\.json: invalid JSON at line 4"):
        load_metadata(p)


def test_duplicate_keys_are_refused(tmp_path):
    p = tmp_path / "meta.yaml"
    p.write_text("study:\n  title: a\n  title: b\n", encoding="utf-8")
    with pytest.raises(MetadataError, match=r"line 3.*duplicate key 'title' \(first given at line 2\)"):
        load_metadata(p)


@pytest.mark.parametrize(("text", "what"), [("- a\n- b\n", "mapping"), ("", "empty"), ("just text\n", "mapping")])
def test_top_level_must_be_a_mapping(tmp_path, text, what):
    p = tmp_path / "meta.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError, match=what) as info:
        load_metadata(p)
    assert info.value.path == str(p)


def test_missing_file(tmp_path):
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(tmp_path / "absent.yaml")


def test_findings_carry_line_numbers(tmp_path, examples_dir):
    text = (examples_dir / "sbfsem-minimal.yaml").read_text(encoding="utf-8")
    text = text.replace("ncbi_taxon: 9606", "ncbi_taxon: -5")
    p = tmp_path / "meta.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError) as info:
        load_metadata(p)
    (finding,) = info.value.errors
    assert finding.field == "biosample.organism.ncbi_taxon"
    assert text.splitlines()[finding.line - 1].strip() == "ncbi_taxon: -5"
    assert f"(line {finding.line})" in str(info.value)


def test_check_valid_document_with_warnings(examples_dir):
    results = check_metadata(examples_dir / "sbfsem-minimal.yaml")
    assert all(r.action == "metadata-check" and not r.failed for r in results)
    assert count(results, 1, severity="ok") == 1
    warned = {r.data["field"] for r in results if r.data["severity"] == "warning"}
    assert {
        "study.authors.0.orcid",
        "study.corresponding_author",
        "study.citation",
        "image_data.voxel_size.z",
        "image_data.voxel_size.y",
        "image_data.voxel_size.x",
    } <= warned
    json.dumps([r.to_json() for r in results])  # records are JSON-safe


def test_check_complete_document_gives_one_ok_record(examples_dir):
    results = check_metadata(examples_dir / "fibsem-full.yaml")
    assert len(results) == 1
    (r,) = results
    assert r.status is Status.ok and r.path == str(examples_dir / "fibsem-full.yaml")


def test_check_reports_one_error_record_per_problem(tmp_path, examples_dir):
    p = tmp_path / "meta.yaml"
    text = (examples_dir / "fibsem-full.yaml").read_text(encoding="utf-8")
    text = text.replace("orcid: 0000-0001-5109-3700", "orcid: 0000-0001-5109-3701")
    text = text.replace("technique: FIB-SEM", "technique: FIB")
    p.write_text(text, encoding="utf-8")
    results = check_metadata(p)
    assert count(results, 2, status="error") == 2 and len(results) == 2
    by_field = {r.data["field"]: r for r in results}
    orcid = by_field["study.authors.1.orcid"]
    assert orcid.data["expected"] == "check digit 0" and orcid.data["found"] == "0000-0001-5109-3701"
    assert orcid.path == str(p) and "checksum digit is wrong" in orcid.message
    assert by_field["acquisition.technique"].data["found"] == "FIB"


def test_check_unreadable_file_is_one_error_record(tmp_path):
    p = tmp_path / "meta.yaml"
    p.write_text("a: [\n", encoding="utf-8")
    (r,) = check_metadata(p)
    assert r.failed and "invalid YAML" in r.message and r.data["field"] is None


def test_check_on_a_copy_of_the_json_example(tmp_path, examples_dir):
    shutil.copy(examples_dir / "tem-hold.json", tmp_path / "m.json")
    results = check_metadata(tmp_path / "m.json")
    assert not any(r.failed for r in results)
    assert count(results, 1, field="study.corresponding_author") == 1
