"""The safe loaders: bounded YAML aliases, JSON numbers and depth, CSV headers; one line each."""

from __future__ import annotations

import pytest

from curation.errors import CurationError, LabelError
from curation.safeload import escape, load_json, read_csv
from curation.safeyaml import MAX_NODES, load_yaml


def test_small_aliases_are_expanded_within_the_bound():
    assert load_yaml("a: &a [1, 2]\nb: *a\n", aliases=True) == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(CurationError, match="aliases"):
        load_yaml("a: &a [1, 2]\nb: *a\n")  # configuration files refuse aliases outright


def test_alias_budget_counts_expanded_nodes():
    wide = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * (MAX_NODES // 1000 + 1)) + "]\n"
    with pytest.raises(CurationError, match=f"more than {MAX_NODES} values through its aliases"):
        load_yaml(wide, path="w.yaml", aliases=True)


@pytest.mark.parametrize("text, field, found", [
    ('{"a": [1, {"b": 1e400}]}', "a.1.b", "1e400"),
    ('{"a": -Infinity}', "a", "-Infinity"),
    ('{"n": ' + "1" * 40 + "}", "n", "1111111111"),
])
def test_json_numbers_out_of_range_name_the_field(text, field, found):
    with pytest.raises(LabelError) as exc:
        load_json(text, path="x.json", error=LabelError)
    assert exc.value.field == field and found in str(exc.value.found)
    assert str(exc.value).startswith(f"x.json: {field}: a number out of range")


def test_json_depth_is_bounded_even_below_the_recursion_limit():
    with pytest.raises(CurationError, match="nests too deeply"):
        load_json("[" * 100 + "]" * 100, path="d.json")
    assert load_json("[" * 30 + "]" * 30) is not None


def test_csv_with_bom_and_crlf_reads(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("\ufeffannotator,slice\r\nu1,0\r\n".encode())
    header, rows = read_csv(p)
    assert header == ["annotator", "slice"] and list(rows) == [(2, {"annotator": "u1", "slice": "0"})]


def test_escape_shows_control_characters():
    assert escape("a\x1b[2Jb\n") == "a\\x1b[2Jb\\n"
