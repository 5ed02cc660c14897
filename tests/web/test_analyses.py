"""Analyses on the acquisition page, and their files served by path from the run record only."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from curation.analysis.evaluate import evaluate
from curation.analysis.run import analyze
from curation.provenance.analysis import Expectation
from curation.web.app import create_app

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def analysed(web_template, tmp_path_factory):
    from .conftest import copy_archive

    root = copy_archive(web_template, tmp_path_factory.mktemp("web-analyses") / "archive")
    analyze(root, "cells", "cell@v2", per="cell@v1", expected=Expectation(source="a test", count=3))
    evaluate(root, "cells", "cell@v2", "cell@v1")
    with TestClient(create_app(root), base_url=BASE) as c:
        c.root = root
        yield c


def test_the_page_lists_analyses_with_plots_and_reports(analysed):
    t = analysed.get("/a/cells").text
    sec = t[t.index('id="analyses"'):t.index('id="runs"')]
    for part in ("analysis-1: objects of cell@v2 per cell@v1", "evaluation-1: cell@v2 against cell@v1",
                 'href="/a/cells/analysis/analysis-1/report.html"', 'src="/a/cells/analysis/analysis-1/sizes.png"',
                 'src="/a/cells/analysis/analysis-1/parents.png"', 'src="/a/cells/analysis/evaluation-1/scores.png"',
                 "Known values", "DISAGREES", "Instances", "cell-instances@v1", "Dice", "F1"):
        assert part in sec, part
    assert "No analyses yet" not in sec
    assert analysed.get("/a/liver").text.count("No analyses yet") == 1


def test_analysis_files_are_served_from_the_record(analysed):
    r = analysed.get("/a/cells/analysis/analysis-1/sizes.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(r.content))).shape[0] > 200
    page = analysed.get("/a/cells/analysis/analysis-1/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"] and "Objects of cell@v2" in page.text
    csv = analysed.get("/a/cells/analysis/evaluation-1/semantic.csv")
    assert csv.status_code == 200 and csv.text.startswith('"value","name"')
    assert csv.headers["content-disposition"] == 'attachment; filename="semantic.csv"'
    parquet = analysed.get("/a/cells/analysis/analysis-1/objects.parquet")
    assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"


@pytest.mark.parametrize("path", [
    "/a/cells/analysis/analysis-9/sizes.png",          # no such run
    "/a/cells/analysis/analysis-1/montage.jpg",        # not an output of the run
    "/a/cells/analysis/analysis-1/..%2F..%2Fmetadata.json",
    "/a/cells/analysis/..%2Fprovenance/ingest.json",
    "/a/cells/analysis/.git/config",
    "/a/cells/analysis/labels_v1/zarr.json",          # a name, not an analysis run
    "/a/liver/analysis/analysis-1/sizes.png",          # another acquisition's run
    "/a/nope/analysis/analysis-1/sizes.png",
])
def test_nothing_else_is_served(analysed, path):
    r = analysed.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert r.headers["content-type"].startswith("application/json")


def test_a_run_without_its_content_says_so(analysed, tmp_path):
    from .conftest import copy_archive

    root = copy_archive(analysed.root, tmp_path / "archive")
    png = root / "acquisitions" / "cells" / "analysis" / "analysis-1" / "sizes.png"
    png.resolve().chmod(0o644)
    png.resolve().unlink()  # as after `git annex drop`: the link dangles
    with TestClient(create_app(root), base_url=BASE) as c:
        r = c.get("/a/cells/analysis/analysis-1/sizes.png")
        assert r.status_code == 404 and "datalad get" in r.json()["message"]
