"""Batches of augmented training patches, drawn from prepared slabs.

Crops are cut with numpy from slabs already in memory (padded once, so any centre works),
flipped and rotated as numpy views and copied once into the batch;
every random choice comes from one ``numpy.random.Generator`` seeded by the pipeline, so a
run is repeatable. Geometry (flips, 90-degree rotations, affine and elastic warps) applies
to image, target and weight alike; warps use ``torch.nn.functional.grid_sample`` on the
whole batch, which runs on every core. Intensity changes apply to the image only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .data import Slab
from .pipeline import Augmentation, SegmentationPipeline


class PatchSampler:
    """Draws ``(image, target, weight)`` batches: tensors (B, C, [Z], Y, X) float32."""

    def __init__(self, slabs: list[Slab], pipeline: SegmentationPipeline, rng: np.random.Generator) -> None:
        self.pipeline = pipeline
        self.aug = pipeline.augmentation
        self.rng = rng
        self.three_d = pipeline.architecture.dims == "3d"
        self.patch = tuple(pipeline.training.patch)
        warp = self.aug.affine is not None or self.aug.elastic is not None
        grow = 1.0
        if warp:
            scale = self.aug.affine.scale if self.aug.affine is not None else 0.0
            rot = math.sqrt(2) if self.aug.affine is not None and self.aug.affine.rotate_deg > 0 else 1.0
            grow = rot * (1 + scale)
        self.crop = tuple(int(math.ceil(p * grow)) + (4 if warp else 0) for p in self.patch)
        if self.three_d:
            self.crop = (self.crop[0] if warp and self.aug.elastic is not None else self.patch[0],) + self.crop[1:]
        self.slabs = [self._pad(s) for s in slabs if s.annotated.size]
        counts = np.array([float(s.weight.sum()) for s in self.slabs], dtype=np.float64)  # annotated voxels
        self.p_slab = counts / counts.sum()

    def _pad(self, s: Slab) -> Slab:
        half = [c // 2 + 1 for c in self.crop]
        if self.three_d:
            pads = [(h, h) for h in half]
        else:
            pads = [(0, 0), (half[0], half[0]), (half[1], half[1])]
        image = np.pad(s.image, pads, mode="reflect" if min(s.image.shape[1:]) > max(half) else "symmetric")
        target = np.pad(s.target, pads)
        weight = np.pad(s.weight, pads)
        offset = np.array([p[0] for p in pads], dtype=np.int64)
        return Slab(image, target, weight, s.slices, fg=s.fg + offset, annotated=s.annotated + offset)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` patches, each centred (with jitter) on a foreground voxel (with probability
        ``foreground_crops``) or on any annotated voxel, flipped and rotated, then warped and
        changed in intensity. Crops, flips and rotations are numpy views copied once."""
        rng, aug = self.rng, self.aug
        fg_frac = self.pipeline.training.foreground_crops
        nd = len(self.patch)
        chans = 1 if self.three_d else self.slabs[0].image.shape[0]
        x = np.empty((size, chans) + self.crop, np.float32)
        t = np.empty((size, 1) + self.crop, np.float32)
        w = np.empty((size, 1) + self.crop, np.float32)
        square = self.crop[-1] == self.crop[-2]
        for i in range(size):
            s = self.slabs[int(rng.choice(len(self.slabs), p=self.p_slab))]
            pool = s.fg if (s.fg.size and rng.random() < fg_frac) else s.annotated
            centre = pool[int(rng.integers(pool.shape[0]))].astype(np.int64)
            jitter = np.array([int(rng.integers(-(p // 4), p // 4 + 1)) for p in self.patch])
            if self.three_d:
                c = centre + jitter
                lo = [min(max(int(c[a]) - self.crop[a] // 2, 0), n - k)
                      for a, (n, k) in enumerate(zip(s.weight.shape, self.crop))]
                sl = tuple(slice(a, a + k) for a, k in zip(lo, self.crop))
                parts = [s.image[sl][None], s.target[sl][None], s.weight[sl][None]]
            else:
                c = centre[1:] + jitter
                lo = [min(max(int(c[a]) - self.crop[a] // 2, 0), n - k)
                      for a, (n, k) in enumerate(zip(s.weight.shape[1:], self.crop))]
                sl = (slice(None), slice(lo[0], lo[0] + self.crop[0]), slice(lo[1], lo[1] + self.crop[1]))
                parts = [s.image[sl], s.target[sl], s.weight[sl]]
            flips = tuple(a + 1 for a in range(nd) if aug.flips and rng.random() < 0.5)
            k = 0
            if aug.rotate90:
                k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
            if flips:
                parts = [np.flip(a, flips) for a in parts]
            if k:
                parts = [np.rot90(a, k, axes=(-2, -1)) for a in parts]
            x[i], t[i], w[i] = parts
        if self.crop != self.patch:
            xt, tt, wt = _warp_or_crop(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(w), aug,
                                       self.patch, rng)
            x, t, w = xt.numpy(), tt.numpy(), wt.numpy()
        if aug.intensity is not None:
            x = _intensity(x, aug, rng)
        if aug.noise > 0:
            x = x + rng.normal(0, aug.noise, x.shape).astype(np.float32)
        return (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(t)),
                torch.from_numpy(np.ascontiguousarray(w)))


def _intensity(x: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """Per patch: gamma on values in [0, 1] (others kept), contrast and brightness."""
    it = aug.intensity
    assert it is not None
    b = x.shape[0]
    shape = (b,) + (1,) * (x.ndim - 1)
    if it.gamma > 0:
        gamma = rng.uniform(1 - it.gamma, 1 + it.gamma, b).astype(np.float32).reshape(shape)
        clipped = np.clip(x, 0, 1)
        x = x + (np.power(clipped, gamma) - clipped)
    scale = rng.uniform(1 - it.scale, 1 + it.scale, b).astype(np.float32).reshape(shape)
    shift = rng.uniform(-it.shift, it.shift, b).astype(np.float32).reshape(shape)
    return ((x - np.float32(0.5)) * scale + (np.float32(0.5) + shift)).astype(np.float32, copy=False)


def _warp_or_crop(x, t, w, aug: Augmentation, patch: tuple[int, ...], rng: np.random.Generator):
    nd = len(patch)
    crop = tuple(x.shape[2:])
    if crop == tuple(patch):
        return x, t, w
    b = x.shape[0]
    use_affine = [aug.affine is not None and rng.random() < aug.affine.probability for _ in range(b)]
    use_elastic = [aug.elastic is not None and rng.random() < aug.elastic.probability for _ in range(b)]
    if not any(use_affine) and not any(use_elastic):
        sl = (slice(None), slice(None)) + tuple(slice((c - p) // 2, (c - p) // 2 + p) for c, p in zip(crop, patch))
        return x[sl], t[sl], w[sl]
    # output voxel centres in the crop's normalised coordinates (align_corners=False)
    axes = [torch.linspace(-1 + 1 / p, 1 - 1 / p, p) * (p / c) for p, c in zip(patch, crop)]
    mesh = torch.meshgrid(*axes, indexing="ij")  # z?, y, x
    base = torch.stack(mesh[::-1], dim=-1)  # (..., nd) in x, y, (z) order
    grids = []
    for i in range(b):
        g = base.clone()
        if use_affine[i]:
            a = aug.affine
            theta = math.radians(rng.uniform(-a.rotate_deg, a.rotate_deg))
            s = rng.uniform(1 - a.scale, 1 + a.scale)
            cos, sin = math.cos(theta) / s, math.sin(theta) / s
            gx, gy = g[..., 0].clone(), g[..., 1].clone()
            # rotate in the y-x plane, in voxel units (the crop may not be square)
            vx, vy = gx * crop[-1], gy * crop[-2]
            g[..., 0] = (cos * vx - sin * vy) / crop[-1]
            g[..., 1] = (sin * vx + cos * vy) / crop[-2]
        if use_elastic[i]:
            e = aug.elastic
            coarse = [max(2, int(math.ceil(p / e.spacing)) + 1) for p in patch]
            disp = torch.from_numpy(rng.normal(0, e.magnitude, (1, nd, *coarse)).astype(np.float32))
            mode = "bicubic" if nd == 2 else "trilinear"
            disp = F.interpolate(disp, size=patch, mode=mode, align_corners=True)[0]
            for d in range(nd):  # disp channel d moves along spatial axis d (z?, y, x)
                g[..., nd - 1 - d] += disp[d] * 2 / crop[d]
        grids.append(g)
    grid = torch.stack(grids)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    t = F.grid_sample(t, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    w = F.grid_sample(w, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return x, t, w
