"""Blockwise prediction equals the same network applied to the whole volume in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curation.segmentation.architectures import build_network
from curation.segmentation.data import normalize, percentiles
from curation.segmentation.inference import (
    Predictor,
    plan_inference,
    predict_array,
    predict_block,
    predict_blockwise,
    probability_uint8,
    threshold,
    tile_origins,
)
from curation.segmentation.resample import axis_operator

from .conftest import tiny


def _network(pipeline, seed=0):
    """A random network whose BatchNorm statistics were gathered on data, as in training, so
    its output varies across the volume."""
    torch.manual_seed(seed)
    net = build_network(pipeline.architecture)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.momentum = None  # cumulative average
    net.train()
    g = torch.Generator().manual_seed(seed)
    three_d = pipeline.architecture.dims == "3d"
    shape = (2, 1, 16, 32, 32) if three_d else (4, pipeline.architecture.in_channels, 32, 32)
    with torch.no_grad():
        for _ in range(4):
            net(torch.rand(shape, generator=g))
    return net.eval()


def _whole(pipeline, net, image, factors, norm, view=0):
    """Reference: resample the whole volume, mirror it by the halo, one forward pass along
    ``view`` (slices as a batch, or the volume at once), crop, resample back."""
    arch = pipeline.architecture
    vol = normalize(image, norm)
    for axis, f in enumerate(factors):
        op = axis_operator(image.shape[axis], f, 0, int(np.ceil(image.shape[axis] / f - 1e-9)))
        vol = op.apply(vol, axis)
    order = (view,) + tuple(a for a in range(3) if a != view)
    v = np.transpose(vol, order)
    h, m, k = pipeline.halo, arch.multiple, arch.context_slices
    three_d = arch.dims == "3d"
    pads = [(h, h + (-(n + 2 * h)) % m) for n in v.shape]
    if not three_d:
        pads[0] = (k, k)
    padded = np.pad(v, pads, mode="reflect")
    with torch.inference_mode():
        if three_d:
            out = torch.sigmoid(net(torch.from_numpy(padded)[None, None]))[0, 0].numpy()
            out = out[h:h + v.shape[0], h:h + v.shape[1], h:h + v.shape[2]]
        else:
            planes = np.stack([padded[z:z + 2 * k + 1] for z in range(v.shape[0])])
            out = torch.sigmoid(net(torch.from_numpy(planes)))[:, 0].numpy()
            out = out[:, h:h + v.shape[1], h:h + v.shape[2]]
    out = np.transpose(out, np.argsort(order))
    for axis, f in enumerate(factors):
        op = axis_operator(out.shape[axis], 1.0 / f if f != 1 else 1.0, 0, image.shape[axis])
        out = op.apply(out, axis)
    return np.clip(out, 0, 1)


def _blocks(plan, predictor, image):
    out = np.full(plan.shape, np.nan, np.float32)
    for block in plan.blocks():
        out[block] = predict_block(plan, predictor, image, block).probability
    return out


CASES = {
    "2d": ("mitochondria-2d", {}, (8.0, 8.0, 8.0)),
    "2d-resampled-x2": ("mitochondria-2d", {"resampling.voxel_size_nm": {"y": 16.0, "x": 16.0}}, (40.0, 8.0, 8.0)),
    "2.5d": ("mitochondria-2d", {"architecture.dims": "2.5d", "architecture.context_slices": 2}, (8.0, 8.0, 8.0)),
    "3d": ("nuclear-pores-3d", {}, (8.0, 8.0, 8.0)),
    "3d-resampled-1.5": ("nuclear-pores-3d", {}, (8.0, 12.0, 12.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_blockwise_equals_whole_volume(case, phantom):
    name, change, vs = CASES[case]
    pipeline = tiny(name, **change)
    image = phantom[0][:13, :70, :77]
    net = _network(pipeline)
    norm = percentiles(image, 1, 99.5)
    plan = plan_inference(pipeline, image.shape, vs, normalization=norm, block_shape=(5, 29, 33))
    assert len(plan.blocks()) == 3 * 3 * 3
    blockwise = _blocks(plan, Predictor(net, batch=3), image)
    whole = _whole(pipeline, net, image, plan.factors, norm)
    assert not np.isnan(blockwise).any()
    np.testing.assert_allclose(blockwise, whole, atol=2e-5, rtol=0)
    assert np.std(whole) > 1e-3  # the comparison is not between constants


def test_tri_axis_is_the_mean_of_the_three_views(phantom):
    pipeline = tiny("nuclear-envelope-tap", **{"inference.combine": "mean"})
    image = phantom[0][:12, :40, :48]
    net = _network(pipeline, seed=1)
    norm = percentiles(image, 1, 99.5)
    plan = plan_inference(pipeline, image.shape, (8.0, 8.0, 8.0), normalization=norm, block_shape=(7, 25, 30))
    assert plan.views == (0, 1, 2)
    views = [_whole(pipeline, net, image, plan.factors, norm, view=v) for v in range(3)]
    blockwise = _blocks(plan, Predictor(net), image)
    np.testing.assert_allclose(blockwise, np.mean(views, axis=0), atol=2e-5, rtol=0)
    # the views differ, so the combination matters
    assert np.abs(views[0] - views[1]).max() > 1e-3


def test_vote_needs_two_of_three_views(phantom):
    pipeline = tiny("nuclear-envelope-tap")
    image = phantom[0][:10, :40, :40]
    net = _network(pipeline, seed=2)
    plan = plan_inference(pipeline, image.shape, (8.0, 8.0, 8.0), normalization=percentiles(image, 1, 99.5))
    block = plan.blocks()[0]
    bp = predict_block(plan, Predictor(net), image, block, keep_views=True)
    assert set(bp.views) == {"z", "y", "x"}
    votes = sum((v >= 0.5).astype(int) for v in bp.views.values())
    np.testing.assert_array_equal(threshold(bp, plan), (votes >= 2).astype(np.uint8))
    prob = np.zeros(plan.shape, np.uint8)
    pred = np.zeros(plan.shape, np.uint8)
    views = {k: np.zeros(plan.shape, np.uint8) for k in "zyx"}
    predict_blockwise(plan, Predictor(net), image, prob, pred, views=views)
    np.testing.assert_array_equal(pred, (votes >= 2).astype(np.uint8))
    np.testing.assert_array_equal(views["y"], probability_uint8(bp.views["y"]))


def test_tap_refuses_anisotropic_targets():
    from curation.errors import PipelineError

    with pytest.raises(PipelineError, match="isotropic"):
        plan_inference(tiny("mitochondria-2d"), (10, 40, 40), (40.0, 5.9, 5.9), normalization=None, tri_axis=True)


def test_prediction_does_not_depend_on_the_block_partition_and_is_deterministic(phantom):
    pipeline = tiny("mitochondria-2d", **{"inference.halo": 8})  # halo below the receptive radius
    image = phantom[0][:6, :70, :77]
    net = _network(pipeline, seed=3)
    norm = percentiles(image, 1, 99.5)
    outs = []
    for block_shape in ((6, 70, 77), (6, 70, 77), (2, 35, 40)):
        plan = plan_inference(pipeline, image.shape, (8.0, 8.0, 8.0), normalization=norm, block_shape=block_shape)
        outs.append(predict_array(plan, Predictor(net), image))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])  # bit-identical on a rerun
    # with a halo below the receptive radius, blocks cut tiles differently: close, not equal
    diff = np.abs(outs[0][0].astype(int) - outs[2][0].astype(int))
    assert 0 < diff.mean() < 1.0


def test_tile_origins_cover_the_region_and_align():
    for r0, r1, tile, halo, overlap, m in [(0, 100, 64, 8, 8, 8), (13, 250, 96, 16, 16, 8), (5, 6, 64, 16, 4, 8),
                                            (0, 512, 640, 64, 32, 8), (-3, 40, 1, 0, 0, 1), (7, 8, 5, 2, 0, 1)]:
        origins = tile_origins(r0, r1, tile, halo, overlap, m)
        core = tile - 2 * halo
        assert all(o % m == 0 for o in origins)
        covered = set()
        for o in origins:
            covered.update(range(o + halo, o + halo + core))
        assert set(range(r0, r1)) <= covered
        assert origins == sorted(set(origins))


def test_probability_uint8_rounds():
    p = np.array([0.0, 0.001, 0.5, 0.998, 1.0, 1.2, -0.1], np.float32)
    assert probability_uint8(p).tolist() == [0, 0, 128, 254, 255, 255, 0]


def test_predictor_batches_tiles():
    pipeline = tiny("mitochondria-2d")
    pred = Predictor(_network(pipeline), batch=3)
    out = pred(np.zeros((7, 1, 64, 64), np.float32))
    assert out.shape == (7, 64, 64)
    assert pred.stats.tiles == 7 and pred.stats.batches == 3
