"""Overlap measures between a prediction and ground truth."""

from __future__ import annotations

import numpy as np


def dice(intersection: float, predicted: float, truth: float) -> float:
    """2|P∩T| / (|P| + |T|); 1.0 when both are empty."""
    denom = predicted + truth
    return 1.0 if denom == 0 else 2.0 * intersection / denom


def dice_score(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Dice of two boolean arrays, counting only voxels where ``mask`` is true (all if None)."""
    p = np.asarray(prediction, bool)
    t = np.asarray(truth, bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        p, t = p & m, t & m
    return dice(float(np.count_nonzero(p & t)), float(np.count_nonzero(p)), float(np.count_nonzero(t)))
