"""What a prediction depends on, and whether a recomputation gives the same bytes.

:class:`PredictionParameters` is the record a prediction's lineage stores: everything its
bytes depend on besides the image and the model files.

:func:`compare_arrays` reads two arrays of the same shape slab by slab (never a whole volume
in memory) and returns a :class:`Comparison`: bit-identical or not; on a mismatch, how many
voxels differ, their bounding box and the slices they lie on. In ``tolerance`` mode (for
GPUs, whose kernels need not be deterministic) it applies bioimage.io's reproducibility
rule: an element mismatches when ``|actual - expected| > atol + rtol * |expected|`` (on the
probability scale, so uint8 0-255 is compared as 0-1), and the arrays agree when at most
``ppm`` elements per million mismatch.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import SegmentationError
from .card import Sha256

#: bioimage.io's default reproducibility tolerance
RTOL = 1e-3
ATOL = 1e-3
PPM = 100.0
#: slices listed in a comparison at most (the count of all is always given)
MAX_SLICES = 64


PARAMETERS_SCHEMA_VERSION = "1.0.0"


class PredictionParameters(BaseModel):
    """Everything a prediction's bytes depend on besides the image and the model files."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    schema_version: Literal["1.0.0"] = PARAMETERS_SCHEMA_VERSION
    model: str
    """``MODEL@vN`` (or the model's name when it has no version yet)."""
    weights_sha256: Sha256
    architecture_sha256: Sha256
    pipeline: str
    shape: tuple[int, int, int]
    voxel_size_nm: tuple[float, float, float]
    factors: tuple[float, float, float]
    model_voxel_size_nm: tuple[float, float, float]
    normalization: tuple[float, float] | None
    normalization_reference: Literal["input", "training"]
    tri_axis: bool
    views: list[Literal["z", "y", "x"]]
    combine: Literal["mean", "vote"]
    threshold: float
    tile: list[int]
    halo: int
    overlap: int
    batch: int
    block_shape: tuple[int, int, int]
    device: str
    precision: Literal["fp32", "bf16", "fp16"]
    threads: int
    torch: str
    curation_commit: str | None

    @property
    def deterministic(self) -> bool:
        """CPU results repeat bit for bit for the same thread count; GPU results need not."""
        return self.device == "cpu"


class SliceDifference(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    z: int
    voxels: int


class Comparison(BaseModel):
    """The outcome of comparing a recomputed array with the stored one."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    schema_version: Literal["1.0.0"] = "1.0.0"
    mode: Literal["exact", "tolerance"]
    shape: tuple[int, ...]
    dtype: str
    voxels: int
    identical: bool
    """Every element equal, bit for bit."""
    differing: int
    """Elements not bit-identical."""
    mismatched: int
    """Elements outside the tolerance (equals ``differing`` in exact mode)."""
    mismatched_ppm: float
    max_abs_difference: float
    """On the compared scale (probability 0-1 for uint8 probabilities)."""
    bounding_box: list[tuple[int, int]] | None
    """(start, stop) per axis of the differing elements; None when identical."""
    slices: list[SliceDifference]
    """Slices (first axis) holding differences, with counts (at most MAX_SLICES listed)."""
    slices_with_differences: int
    rtol: float | None = None
    atol: float | None = None
    ppm: float | None = None
    passed: bool
    """exact: identical; tolerance: mismatched_ppm <= ppm."""

    def summary(self) -> str:
        if self.identical:
            return f"bit-identical ({self.voxels} voxels)"
        where = ", ".join(f"{a}..{b - 1}" for a, b in self.bounding_box or [])
        text = (f"{self.differing} of {self.voxels} voxels differ ({self.differing / self.voxels * 1e6:.1f} ppm) "
                f"on {self.slices_with_differences} slices, within [{where}], max difference "
                f"{self.max_abs_difference:.4g}")
        if self.mode == "tolerance":
            verdict = "within" if self.passed else "outside"
            text += (f"; {self.mismatched} outside rtol {self.rtol:g} / atol {self.atol:g} ({self.mismatched_ppm:.1f} "
                     f"ppm): {verdict} bioimage.io's tolerance of {self.ppm:g} ppm")
        return text


def compare_arrays(expected: Any, actual: Any, *, mode: Literal["exact", "tolerance"] = "exact",
                   scale: float | None = None, rtol: float = RTOL, atol: float = ATOL, ppm: float = PPM,
                   slab: int | None = None) -> Comparison:
    """Compare ``actual`` with ``expected`` (arrays or zarr arrays of one shape and dtype).

    ``scale`` multiplies values before the tolerance test (default: 1/255 for uint8, so a
    uint8 probability is compared as a probability; 1 otherwise).
    """
    if tuple(expected.shape) != tuple(actual.shape):
        raise SegmentationError("the arrays to compare differ in shape", field="shape",
                                expected=list(expected.shape), found=list(actual.shape))
    if np.dtype(expected.dtype) != np.dtype(actual.dtype):
        raise SegmentationError("the arrays to compare differ in data type", field="dtype",
                                expected=str(expected.dtype), found=str(actual.dtype))
    shape = tuple(int(n) for n in expected.shape)
    dtype = np.dtype(expected.dtype)
    if scale is None:
        scale = 1.0 / 255.0 if dtype == np.uint8 else 1.0
    if slab is None:
        chunks = getattr(expected, "chunks", None)
        slab = int(chunks[0]) if chunks else 16
    slab = max(1, slab)
    differing = mismatched = 0
    max_diff = 0.0
    lo = [None] * len(shape)
    hi = [None] * len(shape)
    per_slice: list[SliceDifference] = []
    n_slices = 0
    for z0 in range(0, shape[0] if shape else 1, slab):
        sl = (slice(z0, min(z0 + slab, shape[0])),) if shape else ()
        a = np.asarray(expected[sl])
        b = np.asarray(actual[sl])
        if dtype.kind == "f":
            neq = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        else:
            neq = a != b
        n = int(np.count_nonzero(neq))
        if not n:
            continue
        differing += n
        af = a.astype(np.float64) * scale
        bf = b.astype(np.float64) * scale
        diff = np.abs(bf - af)
        max_diff = max(max_diff, float(np.nanmax(np.where(neq, diff, 0))))
        if mode == "tolerance":
            mismatched += int(np.count_nonzero(neq & ~(diff <= atol + rtol * np.abs(af))))
        idx = np.nonzero(neq)
        for axis, ix in enumerate(idx):
            first, last = int(ix.min()) + (z0 if axis == 0 else 0), int(ix.max()) + 1 + (z0 if axis == 0 else 0)
            lo[axis] = first if lo[axis] is None else min(lo[axis], first)
            hi[axis] = last if hi[axis] is None else max(hi[axis], last)
        if shape:
            counts = np.count_nonzero(neq.reshape(neq.shape[0], -1), axis=1)
            for k in np.flatnonzero(counts):
                n_slices += 1
                if len(per_slice) < MAX_SLICES:
                    per_slice.append(SliceDifference(z=z0 + int(k), voxels=int(counts[k])))
    total = int(np.prod(shape)) if shape else 1
    if mode == "exact":
        mismatched = differing
    mppm = mismatched / total * 1e6 if total else 0.0
    passed = differing == 0 if mode == "exact" else mppm <= ppm
    box = None if differing == 0 else [(int(a), int(b)) for a, b in zip(lo, hi)]
    tol = mode == "tolerance"
    return Comparison(mode=mode, shape=shape, dtype=str(dtype), voxels=total, identical=differing == 0,
                      differing=differing, mismatched=mismatched, mismatched_ppm=mppm, max_abs_difference=max_diff,
                      bounding_box=box, slices=per_slice, slices_with_differences=n_slices,
                      rtol=rtol if tol else None, atol=atol if tol else None, ppm=ppm if tol else None,
                      passed=passed)
