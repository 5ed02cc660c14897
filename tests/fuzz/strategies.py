"""Hypothesis strategies for what users hand to curation: metadata documents, polyline
exports, mask folders and label options. Shared by the in-suite fuzz tests; each draws
small inputs (a test run stays in seconds) and mixes valid structure with hostile values."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from curation.testing import minimal_metadata

# --- values -----------------------------------------------------------------------------------------

_WEIRD_TEXT = st.sampled_from(["", " ", "../x", "CON", "a\x00b", "\u202e", "é", "NaN", "inf", "-0", "1e400",
                               "0x10", "~", "null", "yes", "@", "{}", "[]", "a\nb", "\t", "😀" * 3])
_TEXT = st.one_of(st.text(max_size=12), _WEIRD_TEXT)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), _TEXT,
)
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=8)


# --- metadata documents -------------------------------------------------------------------------------


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple) -> Any:
    if not path:
        return doc
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


@st.composite
def metadata_documents(draw) -> Any:
    """A valid minimal document with a few fields replaced, removed or added."""
    doc = copy.deepcopy(minimal_metadata({"z": 8, "y": 8, "x": 8}))
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            doc = _set(doc, path, draw(JSONISH))
        elif action == "delete" and path:
            doc = _delete(doc, path)
        elif action == "add":
            node = doc
            for key in path:
                node = node[key]
            if isinstance(node, dict):
                node[draw(_TEXT)] = draw(JSONISH)
    return doc


#: raw document text: YAML/JSON fragments glued, including constructs that hurt parsers
METADATA_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from([
        "study:\n", "  title: x\n", "a: &a [1]\n", "b: *a\n", "c: *nope\n", "!!python/object:os.system\n",
        "- 1\n", "{", "}", "[", "]", "\"", ": :\n", "\t", "\ufeff", "\x00", "1e400\n", "x: 1" + "0" * 5000 + "\n",
        "schema_version: '1.0.0'\n", "image_data:\n  voxel_size: {z: {value: 8, unit: nm}}\n", "...\n", "---\n",
        "?\n", "key: !!binary AAAA\n", "%YAML 1.1\n", "[" * 200, "{" * 200,
    ]), max_size=12).map("".join),
)


# --- polylines ------------------------------------------------------------------------------------------

_CELL = st.one_of(st.integers(-5, 70).map(str), st.floats(-5, 70, allow_nan=False).map(lambda v: f"{v:.2f}"),
                  _TEXT, st.sampled_from(["nan", "inf", "-inf", "1e308", "true", "", "3.0", "2,5"]))
_COLUMNS = ["annotator", "user_name", "slice", "subject_z", "frame", "trace", "x", "y", "closed", "other"]


@st.composite
def polyline_csv(draw) -> str:
    header = draw(st.one_of(
        st.just(["annotator", "slice", "trace", "x", "y"]),
        st.just(["annotator", "slice", "trace", "x", "y", "closed"]),
        st.lists(st.sampled_from(_COLUMNS), max_size=7),
    ))
    rows = draw(st.lists(st.lists(_CELL, min_size=0, max_size=len(header) + 1), max_size=8))
    quote = draw(st.booleans())

    def line(cells: list[str]) -> str:
        return ",".join(f'"{c}"' if quote else c for c in cells)

    return "\n".join([line(header)] + [line(r) for r in rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))


@st.composite
def polyline_json(draw) -> Any:
    point = st.one_of(st.lists(st.floats(-4, 36, allow_nan=False), min_size=2, max_size=2), JSONISH)
    trace = st.one_of(st.fixed_dictionaries({"points": st.lists(point, max_size=5)},
                                            optional={"closed": st.one_of(st.booleans(), SCALARS)}), JSONISH)
    record = st.one_of(st.fixed_dictionaries({"annotator": st.one_of(_TEXT, SCALARS),
                                              "slice": st.one_of(st.integers(-2, 5), SCALARS)},
                                             optional={"traces": st.one_of(st.lists(trace, max_size=3), JSONISH)}),
                       JSONISH)
    doc = draw(st.fixed_dictionaries(
        {"format": st.one_of(st.just("curation-polylines/1"), SCALARS),
         "slice_shape": st.one_of(st.just([32, 32]), JSONISH),
         "annotations": st.one_of(st.lists(record, max_size=4), JSONISH)}))
    return doc if draw(st.integers(0, 9)) else draw(JSONISH)


# --- mask folders ---------------------------------------------------------------------------------------

MASK_DTYPES = st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64", "bool"])
MASK_SHAPES = st.sampled_from([(8, 8), (8, 9), (1, 8), (2, 8, 8), (8, 8, 3), (8, 8, 4)])
MASK_NAMES = st.sampled_from(["s_000.png", "s_001.tif", "s_002.tiff", "slice7.png", "nodigits.png", "a_1.tif",
                              "b_01.png", ".hidden_3.png", "notes.txt", "z99999999999999999999.png"])
ANNOTATORS = st.sampled_from(["u1", "u2", "volunteer 3", "é", "BASE", "base", "x" * 120])


# --- label options --------------------------------------------------------------------------------------

NAME_TOKENS = st.lists(st.one_of(st.from_regex(r"\A-?[0-9]{1,25}=.{0,6}\Z"), _TEXT), max_size=4)
ADDRESS = st.one_of(st.from_regex(r"\A[a-z_-]{0,6}(@v?-?[0-9]{0,25})?\Z"), _TEXT)
SLICE_TOKENS = st.lists(st.one_of(st.from_regex(r"\A-?[0-9]{1,6}([-,]|\.\.)?-?[0-9]{0,6}\Z"), _TEXT,
                                  st.sampled_from(["0-99999999999", "1..1e9", "5-3", "00007"]),
                                  st.integers(-3, 10**12)), max_size=4)
