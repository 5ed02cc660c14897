"""Training from sparse ground truth: masked loss, held-out slices, determinism, budgets, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curation.errors import TrainingDataError
from curation.segmentation.data import annotated_slices, choose_validation, prepare
from curation.segmentation.train import Progress, lr_at, masked_loss, train

from .conftest import ANNOTATED, tiny

VS = (8.0, 8.0, 8.0)


def test_unlabeled_voxels_never_count_in_the_loss():
    p = tiny("mitochondria-2d")
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    weight = torch.zeros(2, 1, 8, 8)
    weight[:, :, :4] = 1.0
    loss = masked_loss(logits, target, weight, p)
    loss.backward()
    assert torch.all(logits.grad[:, :, 4:] == 0)  # no gradient from unannotated voxels
    other = target.clone()
    other[:, :, 4:] = 1 - other[:, :, 4:]  # whatever the unlabeled voxels hold
    assert torch.equal(masked_loss(logits, other, weight, p), loss)


def test_unlabeled_is_not_background(phantom, sparse_envelope):
    image, _, _ = phantom
    m = prepare(tiny("nuclear-envelope-tap"), image, sparse_envelope, ANNOTATED, VS)
    assert m.validation_slices == [21] and m.training_slices == [3, 9, 15]
    for slab in m.train:
        assert slab.weight.min() == 1.0  # whole slices annotated
        assert 0 < slab.target.mean() < 0.5
    labels = sparse_envelope.copy()
    labels[9, :40] = 255  # half of slice 9 not annotated
    m = prepare(tiny("nuclear-envelope-tap"), image, labels, ANNOTATED, VS)
    slab = next(s for s in m.train if s.slices == [9])
    assert slab.weight[0, :40].max() == 0 and slab.weight[0, 40:].min() == 1
    assert (slab.annotated[:, 1] >= 40).all()  # patches centre on annotated voxels only


def test_farthest_slices_are_held_out():
    p = tiny("mitochondria-2d", **{"training.validation": {"slices": "farthest", "count": 2, "every": 3}})
    assert choose_validation([0, 1, 2, 3, 4, 20], p) == [4, 20]
    assert choose_validation(list(range(12)), tiny("mitochondria-2d")) == [11]  # an end: one neighbour, not two
    given = tiny("mitochondria-2d", **{"training.validation": {"slices": [2], "count": 1, "every": 3}})
    assert choose_validation([0, 2, 5], given) == [2]
    with pytest.raises(TrainingDataError, match="not annotated"):
        choose_validation([0, 5], given)


def test_annotated_slices_from_a_label_version_record():
    record = {"slices": [2, 4], "regions": [{"z": [7, 9], "y": [0, 5], "x": [0, 5]}]}
    assert annotated_slices(record, 10) == [2, 4, 7, 8]
    with pytest.raises(TrainingDataError, match="outside the volume"):
        annotated_slices([3, 12], 10)
    with pytest.raises(TrainingDataError, match="nothing to learn"):
        annotated_slices([], 10)


def test_labels_must_mark_unlabeled_by_the_dtype_maximum(phantom):
    image, envelope, _ = phantom
    with pytest.raises(TrainingDataError, match="unsigned integer"):
        train(tiny("mitochondria-2d"), image, envelope.astype(np.int16), ANNOTATED, VS)
    with pytest.raises(TrainingDataError, match="same shape"):
        train(tiny("mitochondria-2d"), image, envelope[:5], ANNOTATED, VS)
    empty = np.full(envelope.shape, 255, np.uint8)
    with pytest.raises(TrainingDataError, match="no annotated voxels"):
        train(tiny("mitochondria-2d"), image, empty, ANNOTATED, VS)


@pytest.fixture(scope="module")
def trained(phantom, sparse_envelope):
    image, _, _ = phantom
    reports: list[Progress] = []
    result = train(tiny("nuclear-envelope-tap"), image, sparse_envelope, ANNOTATED, VS, on_progress=reports.append)
    return result, reports


def test_training_reports_and_keeps_the_best_epoch(trained):
    result, reports = trained
    assert result.iterations == 6 and result.stopped_by == "iterations"
    assert [e.iteration for e in result.history] == [3, 6]
    assert all(e.dice is not None and 0 <= e.dice <= 1 for e in result.history)
    assert result.best == max(result.history, key=lambda e: e.dice)
    assert [r.phase for r in reports].count("validated") == 2 and reports[-1].phase == "done"
    assert sum(r.phase == "training" for r in reports) == 6
    assert result.threads == 1 and result.validation_slices == [21]
    assert not result.model.training
    assert set(result.state_dict) == set(result.model.state_dict())


def test_training_is_deterministic_for_a_seed_and_thread_count(trained, phantom, sparse_envelope):
    again = train(tiny("nuclear-envelope-tap"), phantom[0], sparse_envelope, ANNOTATED, VS)
    first = trained[0]
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)
    assert [e.loss for e in first.history] == [e.loss for e in again.history]
    other = train(tiny("nuclear-envelope-tap", **{"training.seed": 1}), phantom[0], sparse_envelope, ANNOTATED, VS)
    assert not all(torch.equal(first.state_dict[k], other.state_dict[k]) for k in first.state_dict)


def test_time_budget_fits_the_plan_and_a_replay_repeats_it(phantom, sparse_envelope):
    p = tiny("nuclear-envelope-tap", **{"training.iterations": 400, "training.max_minutes": 0.1})
    result = train(p, phantom[0], sparse_envelope, ANNOTATED, VS)
    assert result.calibration_s_per_iteration and result.calibration_s_per_iteration > 0
    assert 1 <= result.iterations < 400
    assert result.plan[0][0] == 0 and result.plan[-1][1] >= result.iterations
    if result.stopped_by == "time":
        assert result.plan[-1] == (result.iterations, result.iterations)
    assert result.seconds < 0.1 * 60 * 3  # the budget holds (with room for a loaded machine)
    replay = train(p, phantom[0], sparse_envelope, ANNOTATED, VS, plan=result.plan, threads=result.threads)
    assert replay.iterations == result.iterations
    assert all(torch.equal(result.state_dict[k], replay.state_dict[k]) for k in result.state_dict)


def test_learning_rate_schedule_fits_the_iterations():
    p = tiny("mitochondria-2d")
    lrs = [lr_at(p, i, 100) for i in range(101)]
    peak = p.optimizer.lr
    assert lrs[0] == pytest.approx(0.1 * peak)
    assert max(lrs) == pytest.approx(peak, rel=1e-3) and lrs.index(max(lrs)) == 5  # after 5 % warm-up
    assert lrs[-1] == pytest.approx(peak * p.optimizer.final_lr)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))


def test_fine_tuning_starts_from_the_given_weights(trained, phantom, sparse_envelope):
    parent = trained[0]
    init = {"state_dict": parent.state_dict, "parent": {"name": "envelope", "version": 1, "weights_sha256": "0" * 64}}
    p = tiny("nuclear-envelope-tap", **{"training.iterations": 1, "optimizer.lr": 1e-9,
                                         "training.validation": {"slices": "farthest", "count": 1, "every": 1}})
    child = train(p, phantom[0], sparse_envelope, ANNOTATED, VS, init=init)
    assert child.parent["name"] == "envelope"
    moved = max(float((child.state_dict[k].float() - parent.state_dict[k].float()).abs().max())
                for k in parent.state_dict if child.state_dict[k].is_floating_point() and "running" not in k)
    assert moved < 1e-3  # one step at a tiny learning rate from the parent
    wide = tiny("nuclear-envelope-tap", **{"architecture.width": 6})
    with pytest.raises(TrainingDataError, match="do not fit"):
        train(wide, phantom[0], sparse_envelope, ANNOTATED, VS, init=init)


def test_three_d_training_from_sparse_slices(phantom):
    image, _, pores = phantom
    labels = np.full(pores.shape, 65535, np.uint16)
    labels[[6, 12, 18]] = pores[[6, 12, 18]]
    result = train(tiny("nuclear-pores-3d"), image, labels, [6, 12, 18], VS)
    assert result.iterations == 6 and result.history[-1].dice is not None
    assert result.sample.ndim == 3


def test_a_slower_machine_shortens_the_plan_and_the_replay_follows(phantom, sparse_envelope):
    import time

    p = tiny("nuclear-envelope-tap", **{"training.iterations": 400, "training.max_minutes": 0.1,
                                         "training.validation": {"slices": "farthest", "count": 1, "every": 2}})

    def slow(progress):  # the machine gets busy after the calibration
        if progress.phase == "training":
            time.sleep(0.3)

    result = train(p, phantom[0], sparse_envelope, ANNOTATED, VS, on_progress=slow)
    assert len(result.plan) > 1  # revised (or stopped) on the clock
    assert result.iterations <= result.plan[0][1]
    replay = train(p, phantom[0], sparse_envelope, ANNOTATED, VS, plan=result.plan, threads=result.threads)
    assert replay.iterations == result.iterations
    assert all(torch.equal(result.state_dict[k], replay.state_dict[k]) for k in result.state_dict)


def test_two_and_a_half_d_training_on_resampled_data(phantom, sparse_envelope):
    image, _, _ = phantom
    p = tiny("mitochondria-2d", **{"architecture.dims": "2.5d", "architecture.context_slices": 1,
                                    "target.foreground": "nonzero",
                                    "resampling.voxel_size_nm": {"z": 8.0, "y": 8.0, "x": 8.0}})
    result = train(p, image, sparse_envelope, ANNOTATED, (8.0, 4.0, 4.0))  # in-plane 4 nm: binned 2x
    assert result.factors == (1.0, 2.0, 2.0) and result.model_voxel_size_nm == (8.0, 8.0, 8.0)
    assert result.sample.shape[0] == 3  # the slice and one neighbour on each side
    assert result.history[-1].dice is not None
