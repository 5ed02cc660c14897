"""Property-based fuzzing of user inputs (issue 12): zero tracebacks, zero "unexpected".

Every input a user can hand over (a metadata document, a polyline export, a folder of
mask folders, label options) either works or raises a :class:`CurationError`; any other
exception is a bug. The runs here are short (``max_examples`` small, no deadline);
``CURATION_FUZZ_EXAMPLES=2000`` runs them longer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.errors import CurationError

from .strategies import (
    ADDRESS,
    ANNOTATORS,
    MASK_DTYPES,
    MASK_NAMES,
    MASK_SHAPES,
    METADATA_TEXT,
    NAME_TOKENS,
    SLICE_TOKENS,
    metadata_documents,
    polyline_csv,
    polyline_json,
)

EXAMPLES = int(os.environ.get("CURATION_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CURATION_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def only_curation_errors(fn, *args, **kwargs):
    """Call ``fn``; a CurationError is a clean refusal, anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except CurationError as exc:
        text = str(exc)
        assert "\n" not in text, text  # one line
        return exc


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- metadata ------------------------------------------------------------------------------------------


@FUZZ
@given(doc=metadata_documents(), as_json=st.booleans())
def test_metadata_documents(scratch, doc, as_json):
    import yaml

    from curation.metadata import check_metadata, load_metadata

    path = scratch / ("m.json" if as_json else "m.yaml")
    try:
        text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc, allow_unicode=True)
    except (ValueError, yaml.YAMLError):
        return
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    only_curation_errors(load_metadata, path)
    records = only_curation_errors(check_metadata, path)
    if isinstance(records, list):
        assert all("\n" not in r.message for r in records)


@FUZZ
@given(text=METADATA_TEXT, suffix=st.sampled_from([".yaml", ".yml", ".json"]))
def test_metadata_raw_text(scratch, text, suffix):
    from curation.metadata import check_metadata, load_metadata

    path = scratch / f"raw{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    only_curation_errors(load_metadata, path)
    only_curation_errors(check_metadata, path)
    # and as a user runs it: no "unexpected", no traceback, exit 0 or 1
    from click.testing import CliRunner

    from curation.cli.main import cli

    res = CliRunner().invoke(cli, ["metadata", "check", str(path)])
    assert res.exit_code in (0, 1) and "error: unexpected" not in res.output and "Traceback" not in res.output, \
        res.output


# --- polylines -------------------------------------------------------------------------------------------


@FUZZ
@given(text=polyline_csv(), n_slices=st.sampled_from([None, 1, 5]), encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_polyline_csv(scratch, text, n_slices, encoding):
    from curation.labels.annotations import read_polylines

    path = scratch / "p.csv"
    path.write_bytes(text.encode(encoding, "replace"))
    aset = only_curation_errors(read_polylines, path, slice_shape=(32, 32), n_slices=n_slices)
    if not isinstance(aset, CurationError):
        for per in aset.polylines.values():
            for traces in per.values():
                for t in traces:  # clipped onto the slice, finite
                    assert np.isfinite(t.points).all() and t.points.min() >= 0 and t.points.max() <= 31


@FUZZ
@given(doc=polyline_json())
def test_polyline_json(scratch, doc):
    from curation.labels.annotations import read_polylines

    path = scratch / "p.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    only_curation_errors(read_polylines, path, n_slices=4)


# --- mask folders -----------------------------------------------------------------------------------------


@st.composite
def mask_folders(draw):
    files = []
    for annotator in draw(st.lists(ANNOTATORS, min_size=1, max_size=3, unique=True)):
        for name in draw(st.lists(MASK_NAMES, min_size=1, max_size=3, unique=True)):
            shape = draw(MASK_SHAPES)
            dtype = draw(MASK_DTYPES)
            fill = draw(st.sampled_from([0, 1, 255, 300, -1, 2.5, "random"]))
            files.append((annotator, name, shape, dtype, fill))
    return files


@FUZZ
@given(files=mask_folders(), slice_shape=st.sampled_from([None, (8, 8)]))
def test_mask_folders(scratch, files, slice_shape):
    import tifffile
    from PIL import Image

    from curation.labels.annotations import read_mask_folder

    root = scratch / "masks"
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for annotator, name, shape, dtype, fill in files:
        (root / annotator).mkdir(parents=True, exist_ok=True)
        if fill == "random":
            arr = (rng.random(shape) * 4).astype(dtype)
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                arr = np.full(shape, fill).astype(dtype)
        p = root / annotator / name
        if p.suffix == ".png":
            try:
                Image.fromarray(arr).save(p)
            except (TypeError, ValueError, KeyError, OSError):
                p.write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # an unwritable mode: a damaged PNG instead
        elif p.suffix in (".tif", ".tiff"):
            rgb = arr.ndim == 3 and arr.shape[-1] in (3, 4)
            tifffile.imwrite(p, arr, photometric="rgb" if rgb else "minisblack")
        else:
            p.write_text("not a mask")
    only_curation_errors(read_mask_folder, root, n_slices=4, slice_shape=slice_shape)


# --- label options ------------------------------------------------------------------------------------------


@FUZZ
@given(tokens=NAME_TOKENS)
def test_label_names(tokens):
    from curation.labels.store import parse_names

    only_curation_errors(parse_names, tokens)


@FUZZ
@given(text=ADDRESS)
def test_label_addresses(text):
    from curation.labels.layers import check_layer, parse_address

    only_curation_errors(parse_address, text)
    only_curation_errors(check_layer, text)


@FUZZ
@given(tokens=SLICE_TOKENS)
def test_slice_options(tokens):
    from curation.labels.importer import parse_slices

    only_curation_errors(parse_slices, tokens)


@FUZZ
@given(selectors=st.lists(ADDRESS, max_size=3), fmt=st.sampled_from(["empiar", "bagit", "zip", ""]))
def test_package_selectors_and_names(selectors, fmt):
    from curation.repository.names import check_name

    for s in selectors:
        only_curation_errors(check_name, s)


# --- what the fuzzing found (kept as plain regressions) --------------------------------------------------


def test_found_latin1_csv_is_refused_cleanly(tmp_path):
    from curation.errors import LabelError
    from curation.labels.annotations import read_polylines

    p = tmp_path / "p.csv"
    p.write_bytes("annotator,slice,trace,x,y\nJosé,0,t,1,1\n".encode("latin-1"))
    with pytest.raises(LabelError, match="not UTF-8 text"):
        read_polylines(p, slice_shape=(8, 8))


def test_found_huge_integer_in_yaml_is_refused_cleanly(tmp_path):
    from curation.errors import MetadataError
    from curation.metadata import load_metadata

    p = tmp_path / "m.yaml"
    p.write_text("x: 1" + "0" * 5000 + "\n")
    with pytest.raises(MetadataError, match="digits"):
        load_metadata(p)
    p.write_text("[" * 5000)
    with pytest.raises(MetadataError):
        load_metadata(p)


def test_found_huge_slice_range_is_refused_at_once():
    from curation.errors import LabelError
    from curation.labels.importer import parse_slices

    with pytest.raises(LabelError, match="beyond any volume"):
        parse_slices(["0-99999999999"])  # used to build a list of 10^11 ints
