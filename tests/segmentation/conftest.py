"""Fixtures of the segmentation tests: tiny pipelines and a small phantom with sparse labels."""

from __future__ import annotations

import numpy as np
import pytest

from curation.demo.phantom import PhantomSpec, generate_volume
from curation.segmentation.pipeline import SegmentationPipeline, load_pipeline, with_overrides

#: slices of the phantom that carry ground truth in these tests
ANNOTATED = [3, 9, 15, 21]


def tiny(name: str, **overrides) -> SegmentationPipeline:
    """A shipped pipeline made small enough to train in seconds on one core."""
    base = load_pipeline(name)
    three_d = base.architecture.dims == "3d"
    small = {
        "architecture.width": 4,
        "architecture.depth": 2 if three_d else 3,
        "training.patch": [8, 32, 32] if three_d else [48, 48],
        "training.batch": 2,
        "training.iterations": 6,
        "training.max_minutes": None,
        "training.threads": 1,
        "training.validation": {"slices": "farthest", "count": 1, "every": 3},
        "inference.tile": [32, 48, 48] if three_d else [96, 96],
        "inference.halo": "auto",
        "inference.overlap": 4,
        "inference.batch": 3,
    }
    small.update(overrides)
    return with_overrides(base, small)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: the machine is shared, and results depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def phantom():
    """(image, envelope, pores) of a 24 x 80 x 88 phantom at 8 nm."""
    image, envelope, pores, _ = generate_volume(PhantomSpec(shape=(24, 80, 88), seed=5))
    return image, envelope, pores


@pytest.fixture(scope="session")
def sparse_envelope(phantom):
    """Envelope ground truth on ANNOTATED slices only; 255 (uint8 max) elsewhere = unlabeled."""
    _, envelope, _ = phantom
    labels = np.full(envelope.shape, 255, np.uint8)
    labels[ANNOTATED] = envelope[ANNOTATED]
    return labels
