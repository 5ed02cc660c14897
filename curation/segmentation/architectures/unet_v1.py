"""U-Net for 2D, 2.5D and 3D segmentation; the architecture file of curation's model packages.

This file is copied verbatim into every bioimage.io model package curation writes (the
``pytorch_state_dict`` weights name it, with its sha256), so it imports nothing but torch
and must stay loadable on its own: anyone can rebuild the network from the package alone.

* ``dims=2``: a 2D U-Net; a 2.5D network is the same with ``in_channels`` = the number of
  neighbouring slices fed as channels (the centre slice is predicted).
* ``dims=3``: a 3D U-Net.

Every convolution is 3 wide with zero padding ("same"), so the output has the input's size;
the spatial size must be a multiple of ``2 ** (depth - 1)``. Normalisation is BatchNorm,
which in evaluation mode is a fixed per-channel affine map: the output at a voxel depends
only on its receptive field, never on the rest of the tile, so blockwise prediction with a
halo of :func:`receptive_radius` reproduces a prediction of the whole volume. (GroupNorm or
InstanceNorm would make a voxel depend on whichever tile it was cut into.)

The forward pass returns logits; a sigmoid makes them probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "receptive_radius", "size_multiple"]


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm(dims: int, channels: int, norm: str) -> nn.Module:
    if norm == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch' or 'none', not {norm!r}")


class _Block(nn.Sequential):
    """Two 3-wide convolutions, each followed by normalisation and ReLU."""

    def __init__(self, dims: int, cin: int, cout: int, norm: str) -> None:
        conv = _conv(dims)
        bias = norm == "none"
        super().__init__(
            conv(cin, cout, 3, padding=1, bias=bias), _norm(dims, cout, norm), nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1, bias=bias), _norm(dims, cout, norm), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """A U-Net: ``depth`` levels, ``width`` channels at the top, times ``growth`` per level."""

    def __init__(self, dims: int = 2, in_channels: int = 1, out_channels: int = 1, width: int = 16,
                 depth: int = 4, growth: int = 2, norm: str = "batch") -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {dims!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth!r}")
        self.dims, self.depth = dims, depth
        chans = [int(width * growth**level) for level in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.down.append(_Block(dims, cin, c, norm))
            cin = c
        self.pool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(2)
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        self.up = nn.ModuleList(up(chans[level + 1], chans[level], 2, stride=2) for level in range(depth - 1))
        self.merge = nn.ModuleList(_Block(dims, 2 * chans[level], chans[level], norm) for level in range(depth - 1))
        self.head = _conv(dims)(chans[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for level in range(self.depth - 2, -1, -1):
            x = self.up[level](x)
            x = self.merge[level](torch.cat([skips[level], x], dim=1))
        return self.head(x)


def size_multiple(depth: int) -> int:
    """Spatial sizes (and tile origins) must be multiples of this."""
    return 2 ** (depth - 1)


def receptive_radius(depth: int) -> int:
    """How far (in input voxels, each side) the output at a voxel can see: an upper bound.

    Going back from the output: each 3-wide convolution at scale ``s`` adds ``s``, each
    2x pooling or 2x transposed convolution between scales ``s`` and ``2s`` adds ``s``.
    """
    radius = 0
    for level in range(depth):
        scale = 2**level
        radius += 2 * scale  # the down block
        if level < depth - 1:
            radius += scale  # pooling into the next level
            radius += scale  # the transposed convolution back
            radius += 2 * scale  # the merge block
    return radius
