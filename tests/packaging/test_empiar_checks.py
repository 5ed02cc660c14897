"""EMPIAR's codes and the strict checks of a deposition JSON, against EMPIAR's own schema and example."""

from __future__ import annotations

import copy
import json

import pytest

from curation.packaging.empiar import format_code, initials, voxel_code
from curation.packaging.empiar_checks import check_deposition, check_official


@pytest.fixture(scope="module")
def example(shared_data):
    return json.loads((shared_data / "empiar" / "working_example.json").read_text())


@pytest.fixture(scope="module")
def schema_path(shared_data):
    return shared_data / "empiar" / "empiar_deposition.schema.json"


def test_official_example_passes_both(example, schema_path):
    assert check_official(example, schema_path) == []
    assert check_deposition(example) == []


@pytest.mark.parametrize("path, value, field", [
    (("imagesets", 0, "category"), "('T1', '') and more", "imagesets[0].category"),  # unanchored upstream
    (("imagesets", 0, "voxel_type"), "('OT', 'float')", "imagesets[0].voxel_type"),
    (("authors", 0, "author_orcid"), "0000-0002-1825-0098", "authors[0].author_orcid"),  # check digit
    (("corresponding_author", "last_name"), "   ", "corresponding_author.last_name"),
    (("corresponding_author", "country"), "AX", "corresponding_author.country"),  # ISO, not EMPIAR's
    (("citation", 0, "doi"), "10.1038/abc def", "citation[0].doi"),
    (("authors", 1, "order_id"), 5, "authors[1].order_id"),
    (("release_date",), "XX", "release_date"),
    (("experiment_type",), 10, "experiment_type"),
    (("imagesets", 0, "num_images_or_tilt_series"), 0, "imagesets[0].num_images_or_tilt_series"),
])
def test_strict_checks_catch_what_the_schema_lets_through(example, path, value, field):
    doc = copy.deepcopy(example)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    fields = [p.field for p in check_deposition(doc)]
    assert field in fields, fields


def test_strict_checks_list_every_problem(example):
    doc = copy.deepcopy(example)
    del doc["corresponding_author"]
    doc["citation"] = []
    doc["title"] = "short"
    fields = {p.field for p in check_deposition(doc)}
    assert {"corresponding_author", "citation", "title"} <= fields


def test_codes():
    assert format_code(".dm4") == "('T6', '')" and format_code(".DM3") == "('T5', '')"
    assert format_code(".tif") == format_code(".tiff") == "('T3', '')" and format_code(".png") == "('T10', '')"
    assert format_code(".xyz") == "('OT', 'XYZ')"
    assert voxel_code("uint8") == "('T1', '')" and voxel_code("int16") == "('T4', '')"
    assert voxel_code("float32") == "('T7', '')" and voxel_code("float64") == "('OT', '64 BIT FLOAT')"
    assert initials("Yi-Wei") == "YW" and initials("Josiah Stinkney") == "JS" and initials("Émile") == "É"
