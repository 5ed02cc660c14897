"""Tables, plots and the self-contained HTML page of an object analysis."""

from __future__ import annotations

import json
import re

import imageio.v3 as iio
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from curation.analysis.objects import Plausibility, analyze_objects
from curation.analysis.report import summary, write_report


@pytest.fixture(scope="module")
def analysis():
    rng = np.random.default_rng(0)
    shape = (16, 96, 96)
    vol = np.zeros(shape, dtype=np.uint8)
    z, y, x = np.indices(shape)
    for k in range(12):  # small discs in two parents
        cz, cy, cx = rng.integers(3, 13), rng.integers(8, 88), rng.integers(8, 88)
        vol[((y - cy) ** 2 + (x - cx) ** 2 <= 16) & (np.abs(z - cz) <= 1)] = 1
    parents = np.zeros(shape, dtype=np.uint8)
    parents[1:15, 2:48, 2:94] = 1
    parents[1:15, 48:94, 2:94] = 2
    image = (rng.normal(120, 20, shape) - 60 * vol).clip(0, 255).astype(np.uint8)
    rule = Plausibility("nuclear-pore", "disc_diameter_nm", (100.0, 140.0), (5.0, 60.0))
    a = analyze_objects(vol, voxel_size_nm=(10.0, 8.0, 8.0), per=parents, plausibility=rule, block_shape=(8, 48, 48))
    a.extra["plausibility_rule"] = rule
    yield a, image, parents
    a.close()


def test_report_files(analysis, tmp_path):
    a, image, parents = analysis
    r = write_report(a, tmp_path / "out", image=image, parents=parents, title="Pores <b>& co</b>",
                     subtitle="a test")
    assert sorted(p.name for p in r.all()) == sorted([
        "objects.parquet", "objects.csv", "parents.parquet", "parents.csv", "sizes.png", "parents.png",
        "montage.png", "report.html"])
    # the tables hold the analysis, with its settings in the Parquet metadata
    t = pq.read_table(r.tables["objects.parquet"])
    assert t.column_names == a.objects.names and t.num_rows == len(a.objects)
    np.testing.assert_array_equal(t["disc_diameter_nm"].to_numpy(), a.objects["disc_diameter_nm"])
    assert json.loads(t.schema.metadata[b"curation.settings"])["surface_method"] == "mesh"
    csv = pacsv.read_csv(r.tables["parents.csv"])
    assert csv["count"].to_pylist() == a.parents["count"].tolist()
    assert csv["surface_method"].to_pylist() == ["mesh"] * len(a.parents)
    # the plots are images of a sensible size
    for name in ("sizes.png", "parents.png", "montage.png"):
        img = iio.imread(r.plots[name])
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    # the page: self-contained, escaped, with the findings and the numbers
    page = r.html.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//|/)""", page)
    assert "Pores &lt;b&gt;&amp; co&lt;/b&gt;" in page and "<b>& co</b>" not in page
    for f in a.findings:
        assert f.message.replace("&", "&amp;") in page
    assert "marching-cubes mesh" in page and f"{len(a.objects)} object(s)" in page


def test_summary_is_json(analysis):
    a, _, _ = analysis
    s = summary(a)
    json.dumps(s)
    assert s["objects"] == len(a.objects) and len(s["parents"]) == 2
    assert s["findings"] and s["findings"][0]["expected"] in ([100.0, 140.0], [5.0, 60.0])
