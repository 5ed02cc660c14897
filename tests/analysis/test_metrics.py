"""Evaluation against hand-computed values on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curation.analysis.metrics import (
    confusion,
    hausdorff95,
    instance_scores,
    match_instances,
    score_value,
    semantic_scores,
    surface,
)
from curation.errors import AnalysisError
from curation.testing import ArraySource

U = 255  # unlabeled in uint8


def row(values) -> np.ndarray:
    return np.asarray(values, dtype=np.uint8).reshape(1, 1, -1)


TRUTH = row([0, 1, 1, 1, 2, 2, U, U])
PRED = row([0, 1, 1, 0, 2, 1, 1, 2])


def test_semantic_scores_by_hand():
    conf = confusion(TRUTH, PRED, truth_unlabeled=U, block_shape=(1, 1, 3))
    assert conf.compared_voxels == 6 and conf.unpredicted_voxels == 0  # the two unlabeled voxels never count
    s = {x.value: x for x in semantic_scores(conf)}
    assert sorted(s) == [0, 1, 2]
    # value 0: truth at 0; predicted at 0 and 3
    assert (s[0].tp, s[0].fp, s[0].fn) == (1, 1, 0)
    assert s[0].dice == pytest.approx(2 / 3) and s[0].iou == 0.5 and s[0].precision == 0.5 and s[0].recall == 1.0
    # value 1: truth at 1, 2, 3; predicted at 1, 2, 5
    assert (s[1].tp, s[1].fp, s[1].fn) == (2, 1, 1)
    assert s[1].dice == pytest.approx(4 / 6) and s[1].iou == 0.5
    assert s[1].precision == pytest.approx(2 / 3) and s[1].recall == pytest.approx(2 / 3)
    # value 2: truth at 4, 5; predicted at 4
    assert (s[2].tp, s[2].fp, s[2].fn) == (1, 0, 1)
    assert s[2].dice == pytest.approx(2 / 3) and s[2].precision == 1.0 and s[2].recall == 0.5
    assert s[2].to_json()["truth_voxels"] == 2 and s[2].to_json()["pred_voxels"] == 1


def test_unpredicted_voxels_are_left_out_and_counted():
    pred = PRED.copy()
    pred[0, 0, 2] = U  # the prediction leaves voxel 2 unlabeled
    conf = confusion(ArraySource(TRUTH), ArraySource(pred), truth_unlabeled=U, pred_unlabeled=U, executor="inline")
    assert conf.compared_voxels == 5 and conf.unpredicted_voxels == 1
    assert (score_value(conf.counts, 1).tp, score_value(conf.counts, 1).fn) == (1, 1)


def test_empty_cases():
    counts = {(0, 0): 10, (0, 3): 2}
    absent = score_value(counts, 7)  # in neither: perfect agreement on absence
    assert (absent.dice, absent.iou, absent.precision, absent.recall) == (1.0, 1.0, 1.0, 1.0)
    claimed = score_value(counts, 3)  # predicted, never true
    assert (claimed.dice, claimed.iou, claimed.precision, claimed.recall) == (0.0, 0.0, 0.0, 0.0)
    missed = score_value({(4, 0): 5}, 4)  # true, never predicted
    assert (missed.dice, missed.precision, missed.recall) == (0.0, 0.0, 0.0)


def test_instance_f1_by_hand():
    truth = np.zeros(40, dtype=np.uint8)
    truth[0:10], truth[20:30], truth[35:40] = 1, 2, U
    pred = np.zeros(40, dtype=np.uint8)
    pred[2:12] = 1  # IoU with truth 1: 8 / 12
    pred[20:25] = 2  # IoU with truth 2: 5 / 10, exactly the threshold
    pred[25:30] = 3  # the same: one of the two is matched
    pred[14:17] = 4  # nothing there: a false positive
    pred[36:39] = 5  # only on unlabeled voxels: not scored
    s = instance_scores(row(truth), row(pred), voxel_size_nm=(8, 8, 4), truth_unlabeled=U, block_shape=(1, 1, 7))
    assert (s.n_truth, s.n_pred, s.tp, s.fp, s.fn) == (2, 4, 2, 2, 0)
    assert s.f1 == pytest.approx(4 / 6) and s.precision == 0.5 and s.recall == 1.0
    assert [(m.truth, m.pred) for m in s.matches] == [(1, 1), (2, 2)]
    assert s.matches[0].iou == pytest.approx(8 / 12) and s.matches[1].iou == 0.5
    assert s.mean_matched_iou == pytest.approx((8 / 12 + 0.5) / 2)
    # HD95 of [0, 10) against [2, 12) at 4 nm: distances 8, 4 and eight 0: 95th percentile 6.2 nm
    assert s.matches[0].hd95_nm == pytest.approx(6.2)
    assert s.hd95_nm_max == max(m.hd95_nm for m in s.matches)
    assert s.to_json()["matches"] == 2 and len(s.to_json(with_matches=True)["matches"]) == 2
    # above the threshold nothing matches: all false
    strict = instance_scores(row(truth), row(pred), voxel_size_nm=(8, 8, 4), truth_unlabeled=U, iou_threshold=0.7)
    assert (strict.tp, strict.fp, strict.fn, strict.f1) == (0, 4, 2, 0.0)


def test_matching_is_one_to_one_and_maximises_iou():
    # truth 1 overlaps preds 1 and 2; truth 2 overlaps pred 2 only: a greedy pick of the
    # best pair for truth 1 (pred 2) would leave truth 2 unmatched
    sizes_t, sizes_p = {1: 10, 2: 10}, {1: 10, 2: 10}
    pairs = {(1, 1): 7, (1, 2): 8, (2, 2): 8}
    # IoUs: (1,1) 7/13, (1,2) 8/12, (2,2) 8/12
    m = match_instances(pairs, sizes_t, sizes_p, 0.5)
    assert [(t, p) for t, p, _ in m] == [(1, 1), (2, 2)]
    assert match_instances({}, {}, {}, 0.5) == []


def test_hausdorff_anisotropic_against_brute_force():
    a = np.zeros((6, 12, 12), dtype=bool)
    b = np.zeros_like(a)
    a[1:4, 2:9, 3:8] = True
    b[2:5, 3:10, 2:9] = True
    vs = (30.0, 4.0, 5.0)
    pa, pb = np.argwhere(surface(a)) * vs, np.argwhere(surface(b)) * vs
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    want = max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))
    assert hausdorff95(a, b, vs) == pytest.approx(want)
    assert hausdorff95(a, a, vs) == 0.0


def test_hausdorff_empty_sets():
    z = np.zeros((3, 3, 3), dtype=bool)
    one = z.copy()
    one[1, 1, 1] = True
    assert hausdorff95(z, z, (1, 1, 1)) == 0.0
    assert math.isinf(hausdorff95(z, one, (1, 1, 1))) and math.isinf(hausdorff95(one, z, (1, 1, 1)))
    with pytest.raises(AnalysisError, match="shape"):
        hausdorff95(z, np.zeros((3, 3, 4), bool), (1, 1, 1))


def test_blockwise_equals_whole_volume():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, (12, 20, 18)).astype(np.uint8)
    truth[:, :5] = U
    pred = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 4, truth.shape)).astype(np.uint8)
    pred[truth == U] = 3
    whole = confusion(truth, pred, truth_unlabeled=U, block_shape=truth.shape)
    for block in [(1, 20, 18), (5, 6, 7)]:
        assert confusion(truth, pred, truth_unlabeled=U, block_shape=block).counts == whole.counts
    scored = semantic_scores(whole, values=[1, 2])
    keep = truth != U
    tp = int(((truth == 1) & (pred == 1) & keep).sum())
    assert scored[0].tp == tp and scored[0].truth_voxels == int(((truth == 1) & keep).sum())


def test_shape_mismatch_is_refused():
    with pytest.raises(AnalysisError, match="shape differs"):
        confusion(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    with pytest.raises(AnalysisError, match="IoU threshold"):
        instance_scores(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), voxel_size_nm=(1, 1, 1), iou_threshold=0)
