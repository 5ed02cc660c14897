"""The models: a valid document, every problem reported with its path, derived values."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from curation.errors import CurationError, MetadataError
from curation.metadata import (
    SCHEMA_VERSION,
    AcquisitionMetadata,
    Finding,
    ReleasePolicy,
    Technique,
    migrate,
    parse_metadata,
)
from curation.metadata import models as models_module


def test_full_document_is_valid(full_doc):
    md = parse_metadata(full_doc)
    assert isinstance(md, AcquisitionMetadata)
    assert md.schema_version == SCHEMA_VERSION
    assert md.acquisition.technique is Technique.FIB_SEM
    assert md.acquisition.date == datetime.date(2024, 3, 1)
    assert md.study.release.policy is ReleasePolicy.hold_until_date
    assert md.study.release.date == datetime.date(2025, 6, 30)
    # normalised identifiers
    authors = md.study.authors
    assert [a.family_name for a in authors] == ["Carberry", "Byron", "Muster"]  # order kept
    assert authors[0].orcid == "0000-0002-1825-0097"  # https://orcid.org/ prefix removed
    assert authors[2].orcid == "0000-0002-1694-233X"
    assert md.study.citation.doi == "10.1038/s41592-019-0396-9"
    # numbers kept as text where the field is text
    assert md.study.citation.volume == "21"
    assert md.study.funding[1].grant_id == "12345"
    assert md.study.corresponding_author.address.postcode == "02912"


def test_minimal_document_defaults(minimal_doc):
    md = parse_metadata(minimal_doc)
    assert md.study.release.policy is ReleasePolicy.immediate
    assert md.image_data.contrast_inverted is False
    assert md.voxel_size_nm() == (None, None, None)
    assert md.shape_zyx() is None
    assert md.study.corresponding_author is None and md.study.citation is None
    assert [n.family_name for n in md.citation_authors()] == ["Byron"]


def test_models_are_frozen(full_doc):
    md = parse_metadata(full_doc)
    with pytest.raises(pydantic.ValidationError):
        md.study.title = "changed"  # type: ignore[misc]


def test_voxel_size_and_shape(full_doc):
    md = parse_metadata(full_doc)
    z, y, x = md.voxel_size_nm()
    assert z == pytest.approx(8.0)
    assert y == pytest.approx(8.0)  # 0.008 µm
    assert x == pytest.approx(8.0)  # 80 Å
    assert md.shape_zyx() == (1200, 2048, 3072)


@pytest.mark.parametrize(
    ("unit", "nm"),
    [("nm", 5), ("µm", 5000), ("um", 5000), ("Å", 0.5), ("A", 0.5), ("pm", 0.005), ("mm", 5e6), ("m", 5e9)],
)
def test_every_unit_converts(minimal_doc, unit, nm):
    minimal_doc["image_data"] = {"voxel_size": {"z": {"value": 5, "unit": unit}}}
    assert parse_metadata(minimal_doc).voxel_size_nm()[0] == pytest.approx(nm)


def test_citation_authors_fall_back_to_study_authors(full_doc):
    md = parse_metadata(full_doc)
    assert [a.family_name for a in md.citation_authors()] == ["Carberry", "Byron"]
    del full_doc["study"]["citation"]["authors"]
    md = parse_metadata(full_doc)
    assert [a.family_name for a in md.citation_authors()] == ["Carberry", "Byron", "Muster"]


def _break_everything(doc):
    doc["study"]["authors"][0]["orcid"] = "0000-0002-1825-0098"  # wrong check digit
    doc["study"]["license"] = "CC-BY-4"  # not SPDX
    doc["study"]["authors"][1]["country"] = "UK"  # not ISO 3166-1
    doc["image_data"]["voxel_size"]["z"]["value"] = -8  # negative
    doc["image_data"]["voxel_size"]["x"]["unit"] = "furlong"  # unknown unit
    doc["acquisition"]["colour"] = "red"  # unknown key
    del doc["study"]["title"]  # missing required field
    doc["study"]["release"] = {"policy": "hold_until_date"}  # without date
    doc["study"]["citation"]["doi"] = "11.1038/nope"  # bad DOI
    doc["acquisition"]["technique"] = "FIBSEM"  # not a technique
    return doc


EXPECTED_FIELDS = {
    "study.authors.0.orcid",
    "study.license",
    "study.authors.1.country",
    "image_data.voxel_size.z.value",
    "image_data.voxel_size.x.unit",
    "acquisition.colour",
    "study.title",
    "study.release.date",
    "study.citation.doi",
    "acquisition.technique",
}


def test_every_problem_is_reported_at_once(full_doc):
    with pytest.raises(MetadataError) as info:
        parse_metadata(_break_everything(full_doc), path="meta.yaml")
    err = info.value
    assert isinstance(err, CurationError) and isinstance(err, ValueError)
    assert all(isinstance(f, Finding) and f.severity == "error" for f in err.errors)
    fields = [f.field for f in err.errors]
    assert set(fields) == EXPECTED_FIELDS
    assert len(fields) == len(set(fields))  # pydantic and jsonschema findings deduplicated
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"meta.yaml: {len(EXPECTED_FIELDS)} problems: ")
    for field in EXPECTED_FIELDS:
        assert f"{field}" in text


def test_findings_say_what_was_expected_and_found(full_doc):
    with pytest.raises(MetadataError) as info:
        parse_metadata(_break_everything(full_doc))
    by_field = {f.field: f for f in info.value.errors}
    orcid = by_field["study.authors.0.orcid"]
    assert "checksum" in orcid.message
    assert orcid.expected == "check digit 7" and orcid.found == "0000-0002-1825-0098"
    assert "checksum digit is wrong (expected check digit 7, found '0000-0002-1825-0098')" in str(info.value)
    assert by_field["study.license"].found == "CC-BY-4"
    assert "did you mean 'CC-BY-4.0'" in by_field["study.license"].message
    assert "did you mean 'GB'" in by_field["study.authors.1.country"].message
    assert by_field["image_data.voxel_size.z.value"].found == -8
    assert "> 0" in by_field["image_data.voxel_size.z.value"].expected
    assert "'µm'" in by_field["image_data.voxel_size.x.unit"].expected
    assert by_field["acquisition.colour"].message.startswith("unknown field")
    assert "beam_energy_kv" in by_field["acquisition.colour"].expected
    assert by_field["study.title"].message == "required field is missing"
    assert by_field["study.release.date"].found is None
    assert "FIB-SEM" in by_field["acquisition.technique"].expected


def test_unknown_key_suggests_a_near_name(minimal_doc):
    minimal_doc["acquisition"]["beam_energy_kev"] = 2
    with pytest.raises(MetadataError, match="did you mean 'beam_energy_kv'"):
        parse_metadata(minimal_doc)


def test_unknown_top_level_key(minimal_doc):
    minimal_doc["sample"] = {}
    minimal_doc["extra"] = 1
    with pytest.raises(MetadataError) as info:
        parse_metadata(minimal_doc)
    assert [f.field for f in info.value.errors] == ["extra"]  # an empty mapping is no value


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("study", "authors"), [], "study.authors"),
        (("study", "title"), "   ", "study.title"),
        (("biosample", "organism", "ncbi_taxon"), 0, "biosample.organism.ncbi_taxon"),
        (("biosample", "organism", "ncbi_taxon"), "10090", "biosample.organism.ncbi_taxon"),
        (("acquisition", "beam_energy_kv"), 0, "acquisition.beam_energy_kv"),
        (("acquisition", "beam_energy_kv"), float("inf"), "acquisition.beam_energy_kv"),
        (("acquisition", "date"), "March 2024", "acquisition.date"),
        (("schema_version",), "0.9.0", "schema_version"),
        (("schema_version",), 1.0, "schema_version"),
        (("study", "authors", 0, "email"), "nobody", "study.authors.0.email"),
        (("image_data", "dtype"), "uint64", "image_data.dtype"),
        (("image_data", "dimensions"), {"z": 1, "y": 0, "x": 3}, "image_data.dimensions.y"),
        (("image_data", "contrast_inverted"), "yes", "image_data.contrast_inverted"),
    ],
)
def test_single_problems(minimal_doc, path, value, field):
    target = minimal_doc
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[path[-1]] = value
    with pytest.raises(MetadataError) as info:
        parse_metadata(minimal_doc)
    assert [f.field for f in info.value.errors] == [field]


def test_newer_schema_version_says_upgrade(minimal_doc):
    minimal_doc["schema_version"] = "2.0.0"
    with pytest.raises(MetadataError, match="upgrade curation"):
        parse_metadata(minimal_doc)


def test_contact_requires_email_affiliation_country(minimal_doc):
    minimal_doc["study"]["corresponding_author"] = {"given_name": "Ada", "family_name": "Byron"}
    with pytest.raises(MetadataError) as info:
        parse_metadata(minimal_doc)
    assert {f.field for f in info.value.errors} == {
        "study.corresponding_author.email",
        "study.corresponding_author.affiliation",
        "study.corresponding_author.country",
    }


def test_empty_values_are_not_given(minimal_doc):
    # what a template leaves blank: null values and sections that are all blank
    minimal_doc["specimen_preparation"] = {"fixation": None, "staining": None}
    minimal_doc["study"]["funding"] = [{"funder": None, "grant_id": None}]
    minimal_doc["biosample"]["tissue"] = None
    md = parse_metadata(minimal_doc)
    assert md.specimen_preparation is None and md.study.funding == [] and md.biosample.tissue is None


def test_yaml_dates_and_iso_strings_both_work(minimal_doc):
    minimal_doc["acquisition"]["date"] = datetime.date(2024, 3, 1)
    a = parse_metadata(minimal_doc)
    minimal_doc["acquisition"]["date"] = "2024-03-01"
    assert parse_metadata(minimal_doc) == a


def test_not_a_mapping():
    with pytest.raises(MetadataError, match="mapping"):
        parse_metadata(["schema_version"])  # type: ignore[arg-type]


def test_migrate_applies_registered_steps(minimal_doc, monkeypatch):
    old = dict(minimal_doc, schema_version="0.9.0")
    old["study"] = dict(old["study"])
    old["study"]["name"] = old["study"].pop("title")

    def rename_name_to_title(doc):
        doc = dict(doc)
        doc["study"] = dict(doc["study"])
        doc["study"]["title"] = doc["study"].pop("name")
        return doc

    monkeypatch.setitem(models_module.MIGRATIONS, "0.9.0", ("1.0.0", rename_name_to_title))
    assert migrate(old)["schema_version"] == "1.0.0"
    assert "name" in old["study"]  # input untouched
    assert parse_metadata(old).study.title == minimal_doc["study"]["title"]


def test_with_fields_sets_dotted_paths(full_doc):
    md = parse_metadata(full_doc)
    new = md.with_fields(
        {
            "acquisition.beam_energy_kv": 2.0,
            "image_data.voxel_size.z": {"value": 0.01, "unit": "µm"},
            "acquisition.technique": "SBF-SEM",
            "acquisition.date": datetime.date(2024, 4, 2),
            "study.authors.1.orcid": "https://orcid.org/0000-0002-1694-233X",
            "biosample.tissue": None,  # None removes a field
        }
    )
    assert new.acquisition.beam_energy_kv == 2.0
    assert new.voxel_size_nm()[0] == pytest.approx(10.0)
    assert new.acquisition.technique is Technique.SBF_SEM
    assert new.acquisition.date == datetime.date(2024, 4, 2)
    assert new.study.authors[1].orcid == "0000-0002-1694-233X"
    assert new.biosample.tissue is None
    assert md.acquisition.beam_energy_kv == 1.5  # the original is unchanged


def test_with_fields_creates_missing_sections(minimal_doc):
    md = parse_metadata(minimal_doc)
    new = md.with_fields(
        {
            "image_data.voxel_size.z": {"value": 40, "unit": "nm"},
            "image_data.dimensions": {"z": 20, "y": 1024, "x": 1024},
            "acquisition.instrument.manufacturer": "Zeiss",
        }
    )
    assert new.voxel_size_nm() == (40.0, None, None)
    assert new.shape_zyx() == (20, 1024, 1024)
    assert new.acquisition.instrument.manufacturer == "Zeiss"


def test_with_fields_validates(minimal_doc):
    md = parse_metadata(minimal_doc)
    with pytest.raises(MetadataError) as info:
        md.with_fields({"acquisition.beam_energy_kv": -1, "acquisition.nonsense": 3})
    assert {f.field for f in info.value.errors} == {"acquisition.beam_energy_kv", "acquisition.nonsense"}
    with pytest.raises(MetadataError, match="no such list item"):
        md.with_fields({"study.authors.5.orcid": "0000-0002-1825-0097"})


def test_to_document_round_trips(full_doc):
    md = parse_metadata(full_doc)
    assert parse_metadata(md.to_document()) == md
