"""Consensus methods against a known truth: nucleus-like ellipses traced by volunteers.

Nine annotators draw six 128 x 128 slices: six honest ones (two noisy, two shifted by
1-3 px, one dilated, one eroded), two graffiti annotators (scribbles in a corner, an
unrelated blob) and one who leaves every slice empty. Each writes PNG masks, and the
same drawings as polylines (CSV and JSON), the honest outlines cut into 2-3 open pieces
in shuffled order and direction, so that closing them matters.
"""

from __future__ import annotations

import csv
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest

from curation.errors import LabelError
from curation.labels.annotations import read_mask_folder, read_polylines
from curation.labels.consensus import aggregate, cria, dice, majority, staple
from curation.labels.polylines import Trace, close_traces, envelope_band, fill_traces, polygon_fill, rasterize

SHAPE = (128, 128)
SLICES = list(range(6))
N_SLICES = 8
GOOD = ["noisy1", "noisy2", "shift_a", "shift_b", "dilated", "eroded"]
BAD = {"graffiti_scribble", "graffiti_blob", "empty"}


def ellipse(z: int) -> tuple[float, float, float, float, float]:
    """cx, cy, semi-axis a, semi-axis b, angle: a nucleus that drifts through the stack."""
    return 64 + 0.6 * z, 63 - 0.4 * z, 30 + z, 20 + 0.5 * z, 0.3 + 0.05 * z


def truth_region(z: int) -> np.ndarray:
    cx, cy, a, b, th = ellipse(z)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    u = (cols - cx) * math.cos(th) + (rows - cy) * math.sin(th)
    v = -(cols - cx) * math.sin(th) + (rows - cy) * math.cos(th)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def outline(z: int, n: int, rng: np.random.Generator, *, grow=0.0, shift=(0.0, 0.0), jitter=0.0) -> np.ndarray:
    """``n`` boundary points (x, y) of slice ``z``'s ellipse, grown, shifted, jittered."""
    cx, cy, a, b, th = ellipse(z)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.zeros(n)
    if jitter:  # smooth radial jitter: a few random harmonics, plus a little white noise
        for k in range(2, 7):
            r += rng.normal(0, jitter / 2.5) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
        r += rng.normal(0, jitter / 3, n)
    x = (a + grow + r) * np.cos(t)
    y = (b + grow + r) * np.sin(t)
    px = cx + shift[0] + x * math.cos(th) - y * math.sin(th)
    py = cy + shift[1] + x * math.sin(th) + y * math.cos(th)
    return np.c_[px, py]


def split(points: np.ndarray, rng: np.random.Generator) -> list[Trace]:
    """Cut a closed outline into 2-3 open pieces (a vertex dropped at each cut),
    reversed at random and shuffled."""
    n = len(points)
    start = int(rng.integers(n))
    pts = np.roll(points, -start, axis=0)
    k = int(rng.integers(2, 4))
    cuts = np.sort(rng.choice(np.arange(10, n - 10), size=k - 1, replace=False))
    while np.any(np.diff(cuts) < 10):  # pieces of 10 vertices at least
        cuts = np.sort(rng.choice(np.arange(10, n - 10), size=k - 1, replace=False))
    pieces = np.split(pts, cuts)
    pieces = [p[:-1] for p in pieces]  # a small gap after every piece
    pieces = [p[::-1] if rng.random() < 0.5 else p for p in pieces]
    order = rng.permutation(len(pieces))
    return [Trace(pieces[i]) for i in order]


def draw_annotator(name: str, z: int, rng: np.random.Generator) -> tuple[np.ndarray, list[Trace]]:
    """One annotator's mask and polylines for slice ``z``."""
    if name == "empty":
        return np.zeros(SHAPE, np.uint8), []
    if name == "graffiti_scribble":
        traces = []
        for _ in range(3):  # random walks in the top-left corner, far from the nucleus
            walk = np.cumsum(rng.normal(0, 4, (8, 2)), axis=0) + rng.uniform(8, 20, 2)
            traces.append(Trace(np.clip(walk, 2, 24)))
        return rasterize(traces, SHAPE, 3).astype(np.uint8), traces
    if name == "graffiti_blob":
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        blob = np.c_[108 + 10 * np.cos(t), 110 + 9 * np.sin(t)]
        return polygon_fill(blob, SHAPE).astype(np.uint8), [Trace(blob, closed=True)]
    kw = {
        "noisy1": {"jitter": 1.2},
        "noisy2": {"jitter": 1.5},
        "shift_a": {"shift": (2.0, -1.0), "jitter": 0.3},
        "shift_b": {"shift": (-1.5, 2.5), "jitter": 0.3},
        "dilated": {"grow": 1.5, "jitter": 0.3},
        "eroded": {"grow": -1.5, "jitter": 0.3},
    }[name]
    mask = polygon_fill(outline(z, 720, rng, **kw), SHAPE)
    if name == "noisy2":  # and some pixel flips
        flips = rng.random(SHAPE) < 0.01
        mask = mask ^ flips
    traces = split(outline(z, 72, rng, **kw), rng)
    return mask.astype(np.uint8), traces


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """Write every annotator's drawings as PNG masks, a CSV and a JSON export."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(20240917)
    masks_dir = root / "masks"
    rows: list[list] = []
    records: list[dict] = []
    for name in GOOD + sorted(BAD):
        (masks_dir / name).mkdir(parents=True)
        for z in SLICES:
            mask, traces = draw_annotator(name, z, rng)
            iio.imwrite(masks_dir / name / f"{name}_slice_{z:04d}.png", mask * 255)
            records.append({"annotator": name, "slice": z, "traces": [{"points": np.round(t.points, 2).tolist(), "closed": t.closed} for t in traces]})
            if not traces:
                rows.append([name, z, "", "", "", ""])
            for k, t in enumerate(traces):
                for x, y in t.points:
                    rows.append([name, z, f"t{k}", f"{x:.2f}", f"{y:.2f}", str(t.closed).lower()])
    csv_path = root / "traces.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["annotator", "slice", "trace", "x", "y", "closed"])
        w.writerows(rows)
    json_path = root / "traces.json"
    json_path.write_text(json.dumps({"format": "curation-polylines/1", "slice_shape": list(SHAPE), "annotations": records}))
    truth = np.stack([truth_region(z) for z in SLICES]).astype(np.uint8)
    return {
        "masks": read_mask_folder(masks_dir, n_slices=N_SLICES),
        "csv": read_polylines(csv_path, slice_shape=SHAPE, n_slices=N_SLICES),
        "json": read_polylines(json_path, n_slices=N_SLICES),
        "truth": truth,
    }


def annotator_regions(aset, method: str) -> dict[str, np.ndarray]:
    """Each annotator's own region per slice, as the method sees it."""
    if aset.kind == "polylines":
        return {a: np.stack([fill_traces(aset.polylines[a][z], SHAPE) for z in SLICES]) for a in aset.annotators}
    return {a: np.stack([aset.masks[a][z] for z in SLICES]) for a in aset.annotators}


@pytest.mark.parametrize("source", ["masks", "csv", "json"])
@pytest.mark.parametrize("method", ["majority", "staple", "cria"])
def test_consensus_beats_the_median_annotator_and_flags_the_bad(study, source, method):
    aset = study[source]
    truth = study["truth"]
    res = aggregate(aset, method)
    assert res.slices == SLICES
    assert res.labels.shape == (len(SLICES), *SHAPE) and res.labels.dtype == np.uint8
    scores = {a: dice(m, truth) for a, m in annotator_regions(aset, method).items()}
    consensus = dice(res.labels, truth)
    assert consensus > np.median(list(scores.values())), (consensus, scores)
    assert set(res.flagged) == BAD, [s.to_dict() for s in res.annotators]
    empty = res.stats("empty")
    assert any(r.startswith("empty annotation on slices 0, 1, 2, 3, 4, 5") for r in empty.reasons)
    for name in ("graffiti_scribble", "graffiti_blob"):
        assert any("far below the others" in r for r in res.stats(name).reasons)
    for name in GOOD:
        s = res.stats(name)
        assert s.n_slices == len(SLICES) and s.dice > 0.85 and not s.reasons
        assert 0.8 < s.sensitivity <= 1 and 0.95 < s.specificity <= 1
    json.dumps(res.to_dict())  # JSON-ready


def test_staple_reports_the_filters_rates(study):
    res = aggregate(study["masks"], "staple")
    assert res.method == "staple" and res.parameters["input"] == "masks"
    good = [res.stats(a).sensitivity for a in GOOD]
    assert min(good) > 0.85
    assert res.stats("graffiti_blob").sensitivity < 0.1
    assert res.stats("empty").sensitivity == pytest.approx(0.0, abs=1e-6)


def test_cria_band_beats_the_median_annotator_band(study):
    aset, truth = study["json"], study["truth"]
    res = aggregate(aset, "cria", band_width_nm=30, pixel_size_nm=10)
    assert res.parameters["band_width_px"] == pytest.approx(3.0)
    truth_band = np.stack([envelope_band(t, 3) for t in truth])
    consensus = dice(res.labels, truth_band)
    own = annotator_regions(aset, "cria")
    scores = [dice(np.stack([envelope_band(m, 3) for m in own[a]]), truth_band) for a in aset.annotators]
    assert consensus > np.median(scores)
    assert set(res.flagged) == BAD
    # the single-slice function agrees with aggregate
    plane = cria({a: aset.polylines[a][2] for a in aset.annotators}, SHAPE, band_width_nm=30, pixel_size_nm=10)
    assert np.array_equal(plane, res.labels[2])


def test_polylines_drawn_as_traces_work_with_mask_methods(study):
    truth_band = np.stack([envelope_band(t, 3) for t in study["truth"]])
    res = aggregate(study["csv"], "staple", polyline_mode="trace", width_px=3)
    assert dice(res.labels, truth_band) > 0.6
    assert res.parameters["polyline_mode"] == "trace" and res.parameters["width_px"] == 3
    # thin traces rarely overlap in 5 of 9 votes, but what majority keeps is on the envelope
    res = aggregate(study["csv"], "majority", polyline_mode="trace", width_px=5)
    near = np.stack([envelope_band(t, 9) for t in study["truth"]])
    assert res.labels.sum() > 1000 and not (res.labels.astype(bool) & ~near).any()


def test_open_pieces_close_and_fill_to_the_ellipse():
    rng = np.random.default_rng(3)
    cx, cy, a, b, th = ellipse(2)
    for seed in range(5):
        pieces = split(outline(2, 120, np.random.default_rng(seed)), rng)
        assert 2 <= len(pieces) <= 3 and not any(p.closed for p in pieces)
        polygons = close_traces(pieces)
        assert len(polygons) == 1
        area = fill_traces(pieces, SHAPE).sum()
        assert area == pytest.approx(math.pi * a * b, rel=0.03)


def test_closing_rules():
    t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    c1 = np.c_[30 + 10 * np.cos(t), 30 + 10 * np.sin(t)]
    c2 = np.c_[80 + 12 * np.cos(t), 80 + 12 * np.sin(t)]
    # one open trace closes to itself
    assert fill_traces([c1[:95]], SHAPE).sum() == pytest.approx(math.pi * 100, rel=0.05)
    # two objects each in two pieces stay two objects
    pieces = [c1[:48], c2[:60][::-1], c1[50:98], c2[62:97]]
    assert len(close_traces(pieces)) == 2
    assert fill_traces(pieces, SHAPE).sum() == pytest.approx(math.pi * (100 + 144), rel=0.05)
    # two halves of a square, both straight-ish, are joined rather than closed flat
    halves = [np.array([[10, 10], [20, 10], [20, 20]]), np.array([[10, 20], [10, 11]])]
    assert fill_traces(halves, SHAPE).sum() == pytest.approx(100, abs=12)
    # closed traces pass through
    assert len(close_traces([Trace(c1, closed=True)])) == 1


def test_rasterize_width():
    line = [Trace(np.array([[10.0, 20.0], [90.0, 20.0]]))]
    one = rasterize(line, SHAPE, 1)
    assert one.sum() == 81 and one[20, 10:91].all()
    three = rasterize(line, SHAPE, 3)
    assert three[19:22, 10:91].all() and not three[17].any() and not three[23].any()
    # a closed square draws its fourth side
    square = Trace(np.array([[5, 5], [15, 5], [15, 15], [5, 15]]), closed=True)
    assert rasterize([square], SHAPE)[5:16, 5].all()


def test_majority_ties_go_to_background():
    a = np.array([[1, 1, 0, 2]])
    b = np.array([[1, 0, 0, 3]])
    assert majority([a, b]).tolist() == [[1, 0, 0, 0]]  # 1-1 and 2-3 ties → background
    c = np.array([[1, 2, 2, 3]])
    assert majority([a, b, c]).tolist() == [[1, 0, 0, 3]]
    assert majority([a > 0, b > 0, c > 0]).tolist() == [[1, 1, 0, 1]]


def test_multilabel_staple_and_majority():
    rng = np.random.default_rng(1)
    truth = np.zeros((40, 40), np.uint8)
    truth[5:20, 5:20] = 1
    truth[22:35, 10:30] = 2
    raters = []
    for p in (0.02, 0.04, 0.06, 0.3):
        r = truth.copy()
        flip = rng.random(truth.shape) < p
        r[flip] = rng.integers(0, 3, flip.sum())
        raters.append(r)
    res = staple(raters)
    assert res.probability is None and res.labels.dtype == np.uint8
    assert dice(res.labels, truth, 1) > 0.95 and dice(res.labels, truth, 2) > 0.95
    assert res.sensitivity[0] > res.sensitivity[3]
    assert dice(majority(raters), truth, 2) > 0.95


def test_dice():
    z = np.zeros((4, 4))
    assert dice(z, z) == 1.0
    a = z.copy()
    a[0] = 1
    assert dice(a, z) == 0.0 and dice(a, a) == 1.0
    with pytest.raises(LabelError, match="different shapes"):
        dice(a, np.zeros((3, 3)))


def test_bad_options(study):
    with pytest.raises(LabelError, match="unknown consensus method"):
        aggregate(study["masks"], "mean")
    with pytest.raises(LabelError, match="pixel_size_nm"):
        aggregate(study["csv"], "cria", band_width_nm=30)
    with pytest.raises(LabelError, match="unknown option"):
        aggregate(study["csv"], "cria", band_width=3)

