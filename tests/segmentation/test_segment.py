"""Segmenting with a stored model, recording the parameters, reproducing bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from curation.errors import ModelIntegrityError, SegmentationError
from curation.segmentation.card import DataSource, now_iso
from curation.segmentation.package import load_model, write_package
from curation.segmentation.segment import PredictionParameters, plan_for, reproduce, segment
from curation.segmentation.train import train

from .conftest import ANNOTATED, tiny

VS = (8.0, 8.0, 8.0)
SOURCE = DataSource(archive="a", acquisition="phantom", label_layer="envelope", label_version=1)


@pytest.fixture(scope="module")
def model(phantom, sparse_envelope, tmp_path_factory):
    pipeline = tiny("nuclear-envelope-tap", **{"training.iterations": 20, "architecture.width": 8})
    result = train(pipeline, phantom[0], sparse_envelope, ANNOTATED, VS)  # enough to vary across the volume
    path = tmp_path_factory.mktemp("m") / "envelope"
    write_package(path, result, name="envelope", source=SOURCE, annotated_slices=ANNOTATED, shape=phantom[0].shape,
                  started=now_iso(), version=3)
    return load_model(path)


def _arrays(root, shape, names):
    return {n: zarr.create_array(str(root / f"{n}.zarr"), shape=shape, chunks=(4, 32, 32), dtype="uint8")
            for n in names}


def test_segment_records_what_fixes_the_result_and_reproduces_it(model, phantom, tmp_path):
    image = phantom[0][:12, :56, :64]
    out = _arrays(tmp_path / "stored", image.shape, ["probability", "prediction", "z", "y", "x"])
    done = []
    params, summary = segment(model, image, VS, out["probability"], out["prediction"],
                              views={k: out[k] for k in "zyx"}, threads=1, block_shape=(6, 32, 32),
                              on_block=lambda n, total, block: done.append((n, total)))
    assert summary.blocks == 2 * 2 * 2 and done[-1] == (8, 8)
    assert params.model == "envelope@v3" and params.weights_sha256 == model.weights_sha256
    assert params.tri_axis and params.views == ["z", "y", "x"] and params.combine == "vote"
    assert params.threads == 1 and params.device == "cpu" and params.precision == "fp32"
    assert params.normalization is not None and params.block_shape == (6, 32, 32)
    assert PredictionParameters.model_validate_json(params.model_dump_json()) == params
    prob = out["probability"][:]
    assert prob.max() > prob.min()
    votes = sum((out[k][:] >= 128).astype(int) for k in "zyx")
    assert np.mean((votes >= 2) == (out["prediction"][:] == 1)) > 0.99  # vote on float views, not rounded ones
    scratch = _arrays(tmp_path / "scratch", image.shape, ["probability", "prediction", "z", "y", "x"])
    report = reproduce(model, image, params, out, scratch)
    assert all(c.identical and c.passed and c.mode == "exact" for c in report.values()), \
        {k: c.summary() for k, c in report.items()}


def test_reproduce_reports_where_a_stored_prediction_differs(model, phantom, tmp_path):
    image = phantom[0][:8, :48, :48]
    out = _arrays(tmp_path / "stored", image.shape, ["probability", "prediction"])
    params, _ = segment(model, image, VS, out["probability"], out["prediction"], tri_axis=False, threads=1)
    assert params.views == ["z"] and not params.tri_axis
    out["prediction"][3, 10:12, 5] = 1 - out["prediction"][3, 10:12, 5]
    scratch = _arrays(tmp_path / "scratch", image.shape, ["probability", "prediction"])
    report = reproduce(model, image, params, out, scratch)
    assert report["probability"].identical
    bad = report["prediction"]
    assert not bad.passed and bad.differing == 2 and bad.bounding_box == [(3, 4), (10, 12), (5, 6)]


def test_reproduce_refuses_another_model(model, phantom, tmp_path):
    image = phantom[0][:4, :40, :40]
    out = _arrays(tmp_path, image.shape, ["probability"])
    params, _ = segment(model, image, VS, out["probability"], tri_axis=False, threads=1)
    forged = params.model_copy(update={"weights_sha256": "f" * 64})
    with pytest.raises(ModelIntegrityError, match="not those the prediction was made with"):
        reproduce(model, image, forged, out, out)


def test_views_need_tri_axis(model, phantom, tmp_path):
    image = phantom[0][:4, :40, :40]
    out = _arrays(tmp_path, image.shape, ["probability", "z"])
    with pytest.raises(SegmentationError, match="tri-axis"):
        segment(model, image, VS, out["probability"], views={"z": out["z"]}, tri_axis=False)


def test_normalisation_from_the_input_or_from_training(model, phantom):
    image = phantom[0][:6, :40, :40]
    measured = plan_for(model, image, VS).normalization
    darker = (image // 2).astype(np.uint8)
    assert plan_for(model, darker, VS).normalization[1] < measured[1]  # each volume its own percentiles
    training = model.pipeline.model_copy(update={"normalization": model.pipeline.normalization.model_copy(
        update={"reference": "training"})})
    pinned = type(model)(model.path, model.card.model_copy(update={"pipeline": training}), model.network,
                         model.state_dict, model.weights_sha256)
    assert plan_for(pinned, darker, VS).normalization == model.card.training_data.normalization_values
