"""Quality on real serial block-face SEM (../shared/data/sbem-mito): a short, fixed training of
the shipped mitochondria-2d pipeline must reach a Dice far above chance on slices that no
training slice touches. (The Dice-against-budget curve is benchmarks/train_sbem.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from curation.segmentation.inference import Predictor, plan_inference, predict_array
from curation.segmentation.metrics import dice_score
from curation.segmentation.pipeline import load_pipeline, with_overrides
from curation.segmentation.train import train

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

VOXEL_SIZE_NM = (40.0, 5.9, 5.9)
TRAIN = list(range(12))  # slices 10-21 of the stack
HELD_OUT = list(range(15, 20))  # slices 25-29: three slices away from any training slice


def _load(folder):
    import imageio.v3 as iio

    image = np.stack([iio.imread(folder / "images" / f"images.{i:03d}.png") for i in range(10, 30)])
    labels = np.stack([iio.imread(folder / "labels" / f"mitos_3D.{i:03d}.png")[..., 0] for i in range(10, 30)])
    return image, labels.astype(np.uint8)


def test_short_training_segments_held_out_slices(shared_data):
    image, labels = _load(shared_data / "sbem-mito")
    assert set(np.unique(labels)) == {0, 1}
    pipeline = with_overrides(load_pipeline("mitochondria-2d"), {
        "training.iterations": 80, "training.batch": 4, "training.max_minutes": None, "training.threads": 1,
        "training.validation": {"slices": "farthest", "count": 1, "every": 80}})
    result = train(pipeline, image, labels, TRAIN, VOXEL_SIZE_NM)
    assert result.factors == (1.0, 2.0, 2.0)  # 5.9 nm binned 2x to the pipeline's 12 nm
    held = image[HELD_OUT[0]:HELD_OUT[-1] + 1]
    plan = plan_inference(pipeline, held.shape, VOXEL_SIZE_NM, normalization=result.normalization)
    _, prediction = predict_array(plan, Predictor(result.model, threads=1), held)
    truth = labels[HELD_OUT[0]:HELD_OUT[-1] + 1] == 1
    chance = 2 * truth.mean() / (1 + truth.mean())  # Dice of a random mask of the right size
    dice = dice_score(prediction, truth)
    assert chance < 0.2
    assert dice >= 0.6, f"held-out Dice {dice:.3f} after 80 iterations"  # 0.735 on the reference machine
