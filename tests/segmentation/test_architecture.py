"""The frozen architecture files: registry, imports, receptive radius."""

from __future__ import annotations

import ast

import pytest
import torch

from curation.segmentation import pipeline as pl
from curation.segmentation.architectures import HERE, KNOWN, current, file_sha256, network_for
from curation.segmentation.architectures import unet_v1


def test_every_registered_file_is_unchanged():
    for sha, (name, module, call) in KNOWN.items():
        assert file_sha256(HERE / name) == sha, (
            f"{name} changed: architecture files are frozen (packages record their sha256); "
            "restore it and add a new file (unet_v2.py) with its own registry entry")
    assert current()[0].name in {v[0] for v in KNOWN.values()}


@pytest.mark.parametrize("name", sorted(v[0] for v in KNOWN.values()))
def test_architecture_files_import_only_torch(name):
    tree = ast.parse((HERE / name).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules <= {"__future__", "torch"}


@pytest.mark.parametrize("dims, depth", [(2, 1), (2, 2), (2, 3), (2, 4), (3, 2), (3, 3)])
def test_receptive_radius_bounds_what_an_output_sees(dims, depth):
    assert unet_v1.receptive_radius(depth) == pl.receptive_radius(depth)
    assert unet_v1.size_multiple(depth) == pl.size_multiple(depth)
    torch.manual_seed(0)
    net = unet_v1.UNet(dims=dims, width=8, depth=depth).eval()
    n = 2 * unet_v1.receptive_radius(depth) + 2 * unet_v1.size_multiple(depth) + 8
    n = -(-n // unet_v1.size_multiple(depth)) * unet_v1.size_multiple(depth)
    x = torch.randn((1, 1) + (n,) * dims, requires_grad=True)
    centre = (0, 0) + (n // 2,) * dims
    net(x)[centre].backward()
    seen = x.grad[0, 0].abs() > 0
    reach = max(int((idx - n // 2).abs().max()) for idx in torch.nonzero(seen).unbind(1))
    assert 0 < reach <= unet_v1.receptive_radius(depth)


def test_network_for_builds_from_curation_own_file():
    sha = next(iter(KNOWN))
    net = network_for(sha, {"dims": 2, "width": 4, "depth": 2})
    assert isinstance(net, unet_v1.UNet)
    assert net(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 16, 16)
