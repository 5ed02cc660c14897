from __future__ import annotations

from pathlib import Path

import numpy as np

from ..readers.base import HeaderMetadata, Source


class ArraySource(Source):
    """A Source over an in-memory array (picklable: the array travels with it)."""

    reader = "array"

    def __init__(self, array: np.ndarray, voxel_size_nm=(None, None, None)) -> None:
        if array.ndim == 2:
            array = array[None]
        self.array = array
        self._voxel = tuple(voxel_size_nm)

    @property
    def paths(self) -> list[Path]:
        return []

    @property
    def header(self) -> HeaderMetadata:
        return HeaderMetadata(tuple(self.array.shape), str(self.array.dtype), self._voxel)  # type: ignore[arg-type]

    def read(self, region):
        return np.ascontiguousarray(self.array[region])


class FlakySource(ArraySource):
    """Fails with OSError when a read reaches plane ``fail_z`` or beyond (simulates a
    crash part way through, for resume tests)."""

    def __init__(self, array: np.ndarray, fail_z: int) -> None:
        super().__init__(array)
        self.fail_z = fail_z

    def read(self, region):
        if region[0].stop > self.fail_z:
            raise OSError("simulated crash")
        return super().read(region)


def em_like_volume(shape, dtype="uint8", seed: int = 0, sigma: float = 3.0) -> np.ndarray:
    """Smooth texture plus shot-like noise, like an EM volume; fast for small shapes."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    base /= base.std() or 1
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (base + rng.normal(0, 0.3, shape)).astype(dt)
    hi = np.iinfo(dt).max if dt.kind in "ui" else 255
    mid = hi / 2
    vol = mid + base * hi / 8 + rng.normal(0, hi / 20, shape)
    return np.clip(vol, 0 if dt.kind == "u" else np.iinfo(dt).min, hi).astype(dt)
