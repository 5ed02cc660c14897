"""`curate experiment learning-curve` on a tiny archive: the table, plot, reports and typed run
record it stores, intervals recomputed from the stored draws, notneeded on a re-run, the CLI
and the web page."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from curation.analysis.curve import t_interval, welch_interval
from curation.analysis.experiment import learning_curve
from curation.cli.main import cli
from curation.provenance.experiment import LearningCurveDetails
from curation.records import Status
from curation.repository import datalad_ops as dlo
from curation.repository.archive import open_archive

from .conftest import ANNOTATED, TINY, tiny_args

REQUEST = dict(pipeline="nuclear-envelope-tap", slices=[1, 2], repeats=2, iterations=6, add=1, max_candidates=3,
               overrides=TINY, seed=3)


@pytest.fixture(scope="module")
def first(curve_archive):
    return learning_curve(curve_archive, "vol", "env@v1", **REQUEST)


def _record(arch):
    view = open_archive(arch).acquisition("vol")
    (r,) = [r for r in view.runs() if r.action == "learning-curve"]
    return view, r


def test_stores_table_plot_reports_and_a_typed_record(curve_archive, first):
    (res,) = first
    assert res.status == Status.ok and res.data["run"] == "runs/learning-curve-1"
    view, r = _record(curve_archive)
    d = r.details
    assert isinstance(d, LearningCurveDetails)
    s = d.settings
    assert s.labels == "env@v1" and s.slices == [1, 2] and s.repeats == 2 and s.iterations == 6
    assert s.held_out == [1] and s.pool == [z for z in ANNOTATED if z != 1]  # the farthest annotated slice
    assert s.overrides["architecture.width"] == 4 and len(s.pipeline_sha256) == 64
    random = [x for x in d.draws if not x.current]
    (current,) = [x for x in d.draws if x.current]
    assert [(x.k, x.repeat) for x in random] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert current.k == 6 and current.slices == s.pool and all(x.iterations == 6 for x in d.draws)
    assert all(not set(x.slices) & set(s.held_out) for x in d.draws)
    for x in d.draws:  # pooled over the held-out slice's annotated voxels
        assert x.tp + x.fn == current.tp + current.fn > 0
        assert x.dice == pytest.approx(2 * x.tp / (2 * x.tp + x.fp + x.fn))
    # the intervals, recomputed from the stored draws
    for p in d.points:
        iv = t_interval([x.dice for x in random if x.k == p.k], bounds=(0.0, 1.0))
        assert (p.draws, p.dice_mean, p.dice_low, p.dice_high) == (2, iv.mean, iv.low, iv.high)
    (g,) = d.gains
    w = welch_interval([x.dice for x in random if x.k == 1], [x.dice for x in random if x.k == 2])
    assert (g.k_from, g.k_to, g.per_slice) == (1, 2, pytest.approx(w.mean))
    pr = d.projection
    assert pr is not None and (pr.current, pr.add) == (6, 1) and pr.dice_measured_now == current.dice
    assert pr.gain_low <= pr.gain <= pr.gain_high or pr.resamples == 0
    # candidates: unannotated slices only, ranked by entropy, one suggested
    assert len(d.candidates) == 3 and not {c.slice for c in d.candidates} & set(ANNOTATED)
    assert [c.rank for c in d.candidates] == [1, 2, 3] and sum(c.suggested for c in d.candidates) == 1
    assert d.candidates[0].entropy_bits >= d.candidates[-1].entropy_bits
    folder = view.path / d.files.folder
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["candidates.csv", "curve.csv", "curve.parquet", "draws.csv", "draws.parquet", "gains.csv",
                     "learning_curve.png", "report.html", "report.md"]
    assert (folder / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (folder / "curve.csv").read_text().splitlines()
    assert rows[0].replace('"', "").split(",")[:5] == ["k", "draws", "dice_mean", "dice_low", "dice_high"]
    assert len(rows) == 3 and len((folder / "draws.csv").read_text().splitlines()) == 6
    import pyarrow.parquet as pq

    assert pq.read_table(folder / "draws.parquet").num_rows == 5
    assert "95% Student t" in (folder / "report.md").read_text()
    assert "data:image/png;base64," in (folder / "report.html").read_text()
    assert {o.path for o in r.outputs} == {f"{d.files.folder}/{n}" for n in names}
    assert dlo.git(view.path, "status", "--porcelain") == "" and dlo.git(curve_archive, "status", "--porcelain") == ""


def test_same_request_again_is_notneeded_and_the_cli_reports_it(curve_archive, first):
    head = dlo.head(curve_archive)
    (again,) = learning_curve(curve_archive, "vol", "env@v1", **REQUEST)
    assert again.status == Status.notneeded and again.data["run"] == "runs/learning-curve-1"
    assert dlo.head(curve_archive) == head
    args = ["experiment", "learning-curve", str(curve_archive), "vol", "--pipeline", "nuclear-envelope-tap",
            "--labels", "env@v1", "--slices", "2,1", "--repeats", "2", "--iterations", "6", "--add", "1",
            "--max-candidates", "3", "--seed", "3"]
    args += tiny_args()
    out = CliRunner().invoke(cli, args + ["--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["status"] == "notneeded" and [p["k"] for p in doc["points"]] == [1, 2]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "k=1" in text.output and "Dice per added slice" in text.output
    assert dlo.head(curve_archive) == head


def test_the_web_page_shows_it_with_the_other_analyses(curve_archive, first):
    from curation.web.catalog import Catalog

    (section,) = [s for s in Catalog(curve_archive).analyses("vol") if "learning curve" in s.title]
    facts = dict(section.facts)
    assert "k = 1" in facts and "k = 2" in facts and "1 more slice(s)" in facts
    assert section.images == ("/a/vol/analysis/learning-curve-1/learning_curve.png",)
    assert section.link.endswith("/learning-curve-1/report.html")


def test_refuses_what_cannot_be_measured(curve_archive):
    from curation.errors import AnalysisError

    with pytest.raises(AnalysisError, match="more training slices"):
        learning_curve(curve_archive, "vol", "env@v1", **{**REQUEST, "slices": [1, 7]})
    with pytest.raises(AnalysisError, match="some, not all"):
        learning_curve(curve_archive, "vol", "env@v1", **{**REQUEST, "held_out": 7})
