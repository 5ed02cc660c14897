"""Segmentation pipelines: the shipped YAML files, validation, safe loading, the schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from curation.errors import PipelineError
from curation.records import Status
from curation.segmentation import schemas
from curation.segmentation.pipeline import (
    SegmentationPipeline,
    load_pipeline,
    parse_pipeline,
    pipeline_yaml,
    pipelines_dir,
    receptive_radius,
    size_multiple,
    with_overrides,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["mitochondria-2d", "nuclear-pores-3d", "nuclear-envelope-tap"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pipelines_load_by_name_and_path(name):
    by_name = load_pipeline(name)
    by_path = load_pipeline(pipelines_dir() / f"{name}.yaml")
    assert by_name == by_path
    assert by_name.name == name and by_name.schema_version == "1.0.0"
    assert by_name.intended_use and by_name.limitations


def test_shipped_pipelines_say_what_the_issue_asks():
    mito = load_pipeline("mitochondria-2d")
    assert mito.architecture.dims == "2d" and mito.target.foreground == [1]
    assert mito.resampling.voxel_size_nm.y == mito.resampling.voxel_size_nm.x == 12.0
    pores = load_pipeline("nuclear-pores-3d")
    assert pores.architecture.dims == "3d"
    assert pores.resampling.voxel_size_nm.as_tuple() == (8.0, 8.0, 8.0)
    tap = load_pipeline("nuclear-envelope-tap")
    assert tap.inference.tri_axis and tap.inference.combine == "vote"


@pytest.mark.parametrize("name", SHIPPED)
def test_yaml_round_trip(name):
    p = load_pipeline(name)
    assert parse_pipeline(pipeline_yaml(p)) == p


def test_halo_auto_is_the_receptive_radius_rounded_to_the_size_multiple():
    p = load_pipeline("mitochondria-2d")
    assert p.inference.halo == "auto"
    assert p.architecture.receptive_radius == receptive_radius(4) == 58
    assert p.halo == 64 and p.halo % size_multiple(4) == 0


def test_unknown_pipeline_name_lists_the_shipped_ones():
    with pytest.raises(PipelineError) as e:
        load_pipeline("mitochondria-3d")
    assert "mitochondria-2d" in str(e.value) and "--pipeline" in str(e.value)


@pytest.mark.parametrize("change, field, words", [
    ({"training.patch": [32, 64, 64]}, "", "must give 2 sizes"),
    ({"training.patch": [100, 100]}, "", "multiples of 8"),
    ({"inference.tile": [128, 128]}, "", "leaves no room"),
    ({"architecture.context_slices": 2}, "architecture", "2.5d networks only"),
    ({"inference.combine": "vote"}, "", "needs tri_axis"),
    ({"inference.tri_axis": True}, "", "isotropic"),
    ({"training.iterations": None, "training.max_minutes": None}, "training", "stopping point"),
    ({"optimizer.lr": -1}, "optimizer.lr", "greater than 0"),
    ({"normalization.low": 99.9}, "normalization", "must exceed"),
])
def test_invalid_pipelines_name_the_field(change, field, words):
    with pytest.raises(PipelineError) as e:
        with_overrides(load_pipeline("mitochondria-2d"), change)
    assert words in str(e.value)
    assert field in str(e.value)


def test_unknown_keys_are_errors():
    doc = load_pipeline("mitochondria-2d").model_dump(mode="json")
    doc["training"]["learning_rate"] = 0.1
    with pytest.raises(PipelineError) as e:
        parse_pipeline(yaml.safe_dump(doc), path="p.yaml")
    assert "training.learning_rate" in str(e.value) and "p.yaml" in str(e.value)


def test_override_of_a_missing_field_is_refused():
    with pytest.raises(PipelineError, match="no such pipeline field"):
        with_overrides(load_pipeline("mitochondria-2d"), {"training.epochz": 3})


def test_pipelines_are_frozen():
    p = load_pipeline("mitochondria-2d")
    with pytest.raises(Exception):
        p.training.seed = 3  # type: ignore[misc]


# --- safe YAML -----------------------------------------------------------------------------------


def test_alias_bomb_is_refused_before_expansion():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i, (prev, cur) in enumerate(zip("abcdefgh", "bcdefghi")):
        bomb += f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    with pytest.raises(PipelineError) as e:
        parse_pipeline(bomb, path="bomb.yaml")
    assert "aliases" in str(e.value) and "bomb.yaml" in str(e.value) and "line 2" in str(e.value)


def test_huge_documents_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("description: '" + "x" * (2 * 1024 * 1024) + "'\n")
    with pytest.raises(PipelineError, match="too large"):
        load_pipeline(big)


def test_deep_nesting_is_refused():
    with pytest.raises(PipelineError, match="nests deeper"):
        parse_pipeline("a: " + "[" * 200 + "]" * 200)


def test_python_tags_are_refused():
    with pytest.raises(PipelineError, match="not valid YAML"):
        parse_pipeline("name: !!python/object/apply:os.system ['echo owned']")


def test_not_a_mapping():
    with pytest.raises(PipelineError, match="mapping of fields"):
        parse_pipeline("- a\n- b\n")


# --- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", sorted(schemas.SCHEMAS))
def test_schema_files_have_not_drifted(filename):
    path = REPO / "schemas" / filename
    assert path.is_file(), f"{path} is missing: run `make schemas`"
    assert json.loads(path.read_text(encoding="utf-8")) == schemas.schema_dict(filename), (
        f"schemas/{filename} differs from the models in curation/segmentation: run `make schemas` and commit "
        "the result (and bump the schema_version if a released schema changed)")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_pipelines_validate_with_plain_jsonschema(name):
    schema = json.loads((REPO / "schemas" / "pipeline.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = yaml.safe_load((pipelines_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert errors == []


def test_schema_header():
    s = schemas.schema_dict("pipeline.schema.json")
    assert s["$schema"].endswith("2020-12/schema") and "1.0.0" in s["$id"]
    assert s["properties"]["schema_version"]["const"] == "1.0.0"
    assert s["additionalProperties"] is False
    assert s["properties"]["training"]["$ref"]  # descriptions come from the field docstrings
    assert "Patch size" in json.dumps(s)


def test_export_writes_then_is_notneeded(tmp_path):
    from curation.schemas import export_all

    first = export_all(tmp_path)
    assert {r.status for r in first} == {Status.ok} and (tmp_path / "pipeline.schema.json").is_file()
    again = export_all(tmp_path)
    assert {r.status for r in again} == {Status.notneeded}


def test_pipeline_model_is_the_schema_root():
    assert SegmentationPipeline.model_json_schema()["title"] == "SegmentationPipeline"
