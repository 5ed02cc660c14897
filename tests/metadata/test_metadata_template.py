"""The commented YAML template: parses, names every field, and validates once filled."""

from __future__ import annotations

import re

import pytest
import yaml

from curation.errors import MetadataError
from curation.metadata import Technique, parse_metadata, schema_dict, template

FILL = {
    "<title of the study>": "FIB-SEM of mouse cortex",
    "<a paragraph describing the study and the data>": "An isotropic volume of layer 4.",
    "<SPDX licence id>": "CC-BY-4.0",
    "<given name>": "Josiah",
    "<family name>": "Carberry",
    "<scientific name>": "Mus musculus",
    "<NCBI taxon id>": "10090",
}


def _values(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _values(v)
    elif isinstance(node, list):
        for v in node:
            yield from _values(v)
    else:
        yield node


def _fill(text: str) -> str:
    placeholders = {v for v in _values(yaml.safe_load(text)) if isinstance(v, str) and v.startswith("<")}
    assert placeholders == set(FILL), "the template's placeholders changed: update FILL"
    for placeholder, value in FILL.items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.parametrize("technique", [t.value for t in Technique])
def test_template_parses_and_validates_once_filled(technique):
    text = template(technique)
    assert isinstance(yaml.safe_load(text), dict)
    md = parse_metadata(yaml.safe_load(_fill(text)))
    assert md.acquisition.technique.value == technique
    assert md.study.authors[0].family_name == "Carberry"
    assert md.biosample.organism.ncbi_taxon == 10090


def test_unfilled_template_reports_every_placeholder():
    with pytest.raises(MetadataError) as info:
        parse_metadata(yaml.safe_load(template()), path="meta.yaml")
    errors = info.value.errors
    assert {f.found for f in errors} == set(FILL)
    assert all("placeholder" in f.message for f in errors)
    assert {f.field for f in errors} >= {"study.title", "biosample.organism.ncbi_taxon", "study.authors.0.given_name"}


def test_template_filled_further_validates():
    data = yaml.safe_load(_fill(template("SBF-SEM")))
    data["image_data"]["voxel_size"]["z"] = {"value": 40, "unit": "nm"}
    data["acquisition"]["beam_energy_kv"] = 2.0
    data["study"]["authors"][0]["orcid"] = "0000-0002-1825-0097"
    data["study"]["corresponding_author"].update(
        given_name="Josiah", family_name="Carberry", email="j@example.org", affiliation="Brown", country="US"
    )
    md = parse_metadata(data)
    assert md.voxel_size_nm()[0] == 40.0 and md.study.corresponding_author.country == "US"


def test_half_filled_optional_section_is_an_error():
    data = yaml.safe_load(_fill(template()))
    data["study"]["corresponding_author"]["given_name"] = "Josiah"
    with pytest.raises(MetadataError) as info:
        parse_metadata(data)
    assert "study.corresponding_author.email" in {f.field for f in info.value.errors}


def _property_names(node, out):
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            out.add(key)
            _property_names(value, out)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _property_names(value, out)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, out)
    return out


def test_template_names_and_comments_every_field():
    text = template()
    lines = text.splitlines()
    for name in _property_names(schema_dict(), set()):
        hits = [ln for ln in lines if re.match(rf"^\s*(- )?{name}:", ln)]
        assert hits, f"field {name!r} is missing from the template"
    for ln in lines:
        if re.match(r"^\s*(- )?[a-z_]+:", ln):
            i = lines.index(ln)
            commented = "#" in ln or lines[i - 1].strip().startswith("#")
            assert commented, f"template line without a comment: {ln!r}"


def test_technique_specific_hints():
    fib = template("FIB-SEM")
    sbf = template("sbf-sem")  # case and punctuation do not matter
    assert "milling step" in fib and "milling step" not in sbf
    assert "cutting step" in sbf and "cutting step" not in fib
    assert "technique: SBF-SEM" in sbf
    assert "kV" in template("TEM")


def test_unknown_technique():
    with pytest.raises(MetadataError, match="unknown technique") as info:
        template("MRI")
    assert info.value.field == "acquisition.technique"
