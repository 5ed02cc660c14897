"""The learning curve's arithmetic on hand-made numbers: t and Welch intervals, gains per
slice, the projection, the draws, the held-out choice and the candidate ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curation.analysis.curve import (
    DrawScore,
    entropy_bits,
    fit_curve,
    hold_out,
    plan_draws,
    project,
    rank_candidates,
    summarize,
    t_interval,
    welch_interval,
)
from curation.errors import AnalysisError


def test_t_interval_by_hand():
    iv = t_interval([0.6, 0.7, 0.8])
    # mean 0.7, s = 0.1, t(0.975, df 2) = 4.302653: half width 4.302653 * 0.1 / sqrt(3) = 0.248414
    assert iv.mean == pytest.approx(0.7) and iv.sd == pytest.approx(0.1) and iv.n == 3
    assert iv.low == pytest.approx(0.7 - 0.248414, abs=1e-6) and iv.high == pytest.approx(0.7 + 0.248414, abs=1e-6)
    wide = t_interval([0.0, 0.1], bounds=(0.0, 1.0))  # 0.05 ± 12.7 · 0.0707 / √2: clipped to the range
    assert (wide.low, wide.high) == (0.0, pytest.approx(0.05 + 12.706205 * 0.05))
    one = t_interval([0.5])
    assert (one.mean, one.low, one.high, one.n) == (0.5, None, None, 1)
    with pytest.raises(AnalysisError):
        t_interval([])


def test_welch_interval_by_hand_and_against_scipy():
    from scipy import stats

    a, b = [0.5, 0.6, 0.7], [0.7, 0.8, 0.9, 1.0]
    iv = welch_interval(a, b)
    va, vb = 0.01 / 3, (0.0225 + 0.0025 + 0.0025 + 0.0225) / 3 / 4
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert df == pytest.approx(4.9592, abs=1e-3)
    half = stats.t.ppf(0.975, df) * se
    assert iv.mean == pytest.approx(0.25)
    assert iv.low == pytest.approx(0.25 - half) and iv.high == pytest.approx(0.25 + half)
    ref = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (iv.low, iv.high) == (pytest.approx(ref.low), pytest.approx(ref.high))


def _score(k, r, dice):
    return DrawScore(k, r, tuple(range(k)), r, 10, "iterations", 1.0, 0, 0, 0, dice, dice / (2 - dice))


def test_gain_per_added_slice_divides_by_the_slices_added():
    scores = [_score(1, 0, 0.5), _score(1, 1, 0.6), _score(1, 2, 0.7),
              _score(4, 0, 0.8), _score(4, 1, 0.8), _score(4, 2, 0.8)]
    points, gains = summarize(scores)
    assert [p.k for p in points] == [1, 4]
    assert points[1].dice.low == pytest.approx(0.8) and points[1].dice.high == pytest.approx(0.8)
    (g,) = gains
    assert (g.k_from, g.k_to) == (1, 4)
    assert g.per_slice.mean == pytest.approx(0.2 / 3)
    full = welch_interval([0.5, 0.6, 0.7], [0.8, 0.8, 0.8])
    assert g.per_slice.low == pytest.approx(full.low / 3) and g.per_slice.high == pytest.approx(full.high / 3)
    assert points[0].iou.mean == pytest.approx(np.mean([d / (2 - d) for d in (0.5, 0.6, 0.7)]))


def test_projection_recovers_a_known_curve():
    truth = lambda k: 0.9 - 0.5 * k ** -0.7  # noqa: E731
    rng = np.random.default_rng(1)
    ks = [k for k in (1, 2, 4, 8) for _ in range(3)]
    ys = [truth(k) + rng.normal(0, 0.005) for k in ks]
    model, params = fit_curve(ks, ys)
    assert model == "power" and params[0] == pytest.approx(0.9, abs=0.03)
    pr = project(ks, ys, current=8, add=2, resamples=200)
    assert pr.gain == pytest.approx(truth(10) - truth(8), abs=0.01)
    assert pr.gain_low <= truth(10) - truth(8) <= pr.gain_high and pr.resamples == 200
    assert pr.then_low <= pr.then <= pr.then_high
    # two distinct k: a log-linear curve
    assert fit_curve([1, 1, 2, 2], [0.5, 0.5, 0.6, 0.6])[0] == "log"
    with pytest.raises(AnalysisError, match="two numbers of slices"):
        fit_curve([2, 2], [0.5, 0.6])


def test_draws_are_reproducible_and_held_out_slices_far():
    held, pool = hold_out([0, 2, 4, 6, 8, 10, 20], 1, gap=0)
    assert held == [20] and pool == [0, 2, 4, 6, 8, 10]
    held, pool = hold_out(range(10), 2, gap=1)
    assert held == [0, 9] and pool == [2, 3, 4, 5, 6, 7]  # the ends; 1 and 8 are next to a held-out slice
    with pytest.raises(AnalysisError, match="some, not all"):
        hold_out([1, 2], 2)
    draws = plan_draws(pool, [1, 2, 4], 3, seed=7)
    assert draws == plan_draws(pool, [4, 2, 1], 3, seed=7)
    assert [(d.k, d.repeat) for d in draws] == [(k, r) for k in (1, 2, 4) for r in range(3)]
    assert all(len(set(d.slices)) == d.k and set(d.slices) <= set(pool) for d in draws)
    assert len({d.seed for d in draws}) == len(draws)
    with pytest.raises(AnalysisError, match="more training slices"):
        plan_draws(pool, [8], 1, seed=0)


def test_candidates_most_uncertain_first_kept_apart():
    assert entropy_bits(np.full((4, 4), 0.5)) == pytest.approx(1.0)
    assert entropy_bits(np.array([0.0, 1.0])) < 1e-4
    ranked = rank_candidates({3: 0.9, 4: 0.95, 10: 0.5, 12: 0.6, 20: 0.1}, annotated=[0, 11], count=2)
    assert [z for z, _h, _s in ranked] == [4, 3, 12, 10, 20]
    # 4 first; 3 is next to it; 12 and 10 are next to annotated 11: 20 is the second suggestion
    assert [z for z, _h, s in ranked if s] == [4, 20]
