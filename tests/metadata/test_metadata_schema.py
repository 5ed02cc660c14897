"""The generated JSON Schema: drift against schemas/, and the examples validate against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from curation.metadata import SCHEMA_ID, SCHEMA_VERSION, export_schemas, schema_dict
from curation.records import Status

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schemas" / "acquisition.schema.json"


def test_schema_file_has_not_drifted():
    assert SCHEMA_FILE.is_file(), f"{SCHEMA_FILE} is missing: run `make schemas`"
    on_disk = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert on_disk == schema_dict(), (
        f"{SCHEMA_FILE.relative_to(REPO)} differs from the models in curation/metadata: "
        "run `make schemas` and commit the result (and bump SCHEMA_VERSION, with a "
        "migration, if a released schema changed)"
    )


def test_schema_header():
    s = schema_dict()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"] == SCHEMA_ID
    assert SCHEMA_ID.startswith("https://") and SCHEMA_VERSION in SCHEMA_ID
    assert s["schema_version"] == SCHEMA_VERSION == "1.0.0"
    assert s["title"]
    assert s["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert set(s["required"]) == {"schema_version", "study", "biosample", "acquisition"}
    assert s["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(s)
    assert "x-curation-def" not in json.dumps(s)


def test_schema_dict_is_a_copy():
    s = schema_dict()
    s["title"] = "changed"
    assert schema_dict()["title"] != "changed"


def test_export_writes_then_is_notneeded(tmp_path):
    (first,) = export_schemas(tmp_path / "schemas")
    assert first.status is Status.ok
    target = tmp_path / "schemas" / "acquisition.schema.json"
    assert first.path == str(target)
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "$defs"')  # sorted keys, indent 2
    assert json.loads(text) == schema_dict()
    (again,) = export_schemas(tmp_path / "schemas")
    assert again.status is Status.notneeded
    target.write_text("{}\n", encoding="utf-8")
    (fixed,) = export_schemas(tmp_path / "schemas")
    assert fixed.status is Status.ok and json.loads(target.read_text(encoding="utf-8")) == schema_dict()


def _as_json(path: Path):
    """A document as JSON tools see it: YAML dates become ISO text."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return json.loads(json.dumps(data, default=str))


@pytest.mark.parametrize("name", ["fibsem-full.yaml", "sbfsem-minimal.yaml", "tem-hold.json"])
def test_examples_validate_with_plain_jsonschema(examples_dir, name):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_as_json(examples_dir / name))]
    assert errors == []


def test_plain_jsonschema_catches_structure_errors(examples_dir):
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    doc = _as_json(examples_dir / "fibsem-full.yaml")
    doc["study"]["release"].pop("date")
    doc["study"]["authors"][0]["country"] = "XX"
    doc["image_data"]["voxel_size"]["z"]["unit"] = "inch"
    doc["acquisition"]["date"] = "2024-13-45"
    paths = {tuple(e.absolute_path) for e in validator.iter_errors(doc)}
    assert ("study", "release") in paths  # if/then: hold_until_date needs a date
    assert ("study", "authors", 0, "country") in paths
    assert ("image_data", "voxel_size", "z") in paths  # reported at the nullable anyOf
    assert ("acquisition", "date") in paths
