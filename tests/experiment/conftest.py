"""A tiny archive with ground truth on seven slices, and a toy network that trains in a second."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curation.demo.phantom import PhantomSpec, generate_volume
from curation.labels.importer import import_labels
from curation.repository.archive import init_archive
from curation.repository.ingest import ingest
from curation.testing import write_metadata

ANNOTATED = [1, 3, 5, 7, 9, 11, 13]
#: a toy network: the tests check the mechanics, not the model
TINY = {"architecture.width": 4, "architecture.depth": 3, "training.patch": [48, 48], "training.batch": 2,
        "training.threads": 1, "inference.tile": [96, 96], "inference.overlap": 4, "inference.tri_axis": False,
        "inference.combine": "mean"}


def tiny_args() -> list[str]:
    import json

    return [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def build_curve_archive(base: Path) -> Path:
    """Phantom 16 x 64 x 64 at 8 nm as ``vol``; ``env@v1``: the nuclear envelope on ANNOTATED."""
    image, envelope, _pores, _ = generate_volume(PhantomSpec(shape=(16, 64, 64), seed=5))
    tifffile.imwrite(base / "img.tif", image)
    md = write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    root = base / "archive"
    init_archive(root)
    ingest(root, [base / "img.tif"], md, name="vol")
    truth = base / "truth"
    truth.mkdir()
    for z in ANNOTATED:
        tifffile.imwrite(truth / f"mask_{z:03d}.tif", envelope[z].astype(np.uint8))
    import_labels(root, "vol", "env", truth, numbering="z", names={1: "envelope"})
    return root


@pytest.fixture(scope="session")
def curve_template(tmp_path_factory) -> Path:
    """The tiny archive, built once; never written to (copy it)."""
    return build_curve_archive(tmp_path_factory.mktemp("curve-small"))


@pytest.fixture(scope="module")
def curve_archive(curve_template, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("curve-copy") / "archive"
    shutil.copytree(curve_template, dest, symlinks=True)
    return dest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread: the machine is shared, and results depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
