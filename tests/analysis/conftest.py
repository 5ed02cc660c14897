"""A small archive for evaluation and transaction tests (see ``build_small_archive``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curation.labels.importer import import_labels
from curation.repository.archive import init_archive
from curation.repository.ingest import ingest
from curation.testing import em_like_volume, write_metadata

SHAPE = (8, 64, 64)


def build_small_archive(base: Path) -> Path:
    """Image 8 x 64 x 64 at (24, 8, 8) nm as ``vol``; ``cell@v1``: truth on slices 2 and 5
    (squares A and B); ``cell-pred@v1``: a prediction on every slice (P1, P2, P3). The
    hand-computed scores are in test_archive.py."""
    tifffile.imwrite(base / "img.tif", em_like_volume(SHAPE, seed=5))
    md = write_metadata(base / "m.yaml", {"z": 24, "y": 8, "x": 8})
    root = base / "archive"
    init_archive(root)
    ingest(root, [base / "img.tif"], md, name="vol")
    truth = base / "truth"
    truth.mkdir()
    for z in (2, 5):
        m = np.zeros(SHAPE[1:], np.uint8)
        if z == 2:
            m[10:20, 10:20] = 1
        else:
            m[30:40, 30:40] = 1
        tifffile.imwrite(truth / f"mask_{z:03d}.tif", m)
    import_labels(root, "vol", "cell", truth, numbering="z", names={1: "cell"})
    pred = np.zeros(SHAPE, np.uint8)
    pred[1:4, 10:20, 12:22] = 1
    pred[4:7, 50:55, 50:55] = 1
    pred[7, 0:30, 0:30] = 1
    tifffile.imwrite(base / "pred.tif", pred)
    import_labels(root, "vol", "cell-pred", base / "pred.tif", kind="prediction", names={1: "cell"})
    return root


@pytest.fixture(scope="session")
def small_template(tmp_path_factory) -> Path:
    """The small archive, built once; never written to (copy it)."""
    return build_small_archive(tmp_path_factory.mktemp("analysis-small"))


@pytest.fixture(scope="module")
def small_archive(small_template, tmp_path_factory) -> Path:
    """A copy of the small archive for one test module."""
    dest = tmp_path_factory.mktemp("analysis-copy") / "archive"
    shutil.copytree(small_template, dest, symlinks=True)
    return dest
