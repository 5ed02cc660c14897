"""A real archive for the web tests: two acquisitions ingested as OME-Zarr, label versions
imported through `labels import`, built once per session and copied for tests that write.

* ``cells``: an anisotropic SBF-SEM-like volume (20 x 160 x 200 voxels, z 24 nm, y/x 8 nm),
  *Mus musculus*; ``cell@v1`` annotates slices 4 and 10 (a disc, value 1), ``cell@v2``
  (parent v1) slices 4, 10 and 15, with the disc grown on slice 10 and a second label
  (value 2) on slice 15.
* ``liver``: a small isotropic FIB-SEM volume of *Homo sapiens*, no labels.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import yaml

from curation.testing import em_like_volume, minimal_metadata

SHAPE = (20, 160, 200)
VOXEL = {"z": 24.0, "y": 8.0, "x": 8.0}
ARTIFACTS = Path(os.environ.get("CURATION_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def disc(shape2d: tuple[int, int], centre: tuple[float, float], radius: float, value: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape2d[0], : shape2d[1]]
    return np.where((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2, value, 0).astype(np.uint8)


def v1_mask(z: int) -> np.ndarray:
    return disc(SHAPE[1:], (80, 100), 30, 1)


def v2_mask(z: int) -> np.ndarray:
    m = disc(SHAPE[1:], (80, 100), 36 if z == 10 else 30, 1)
    if z == 15:
        m = np.maximum(m, disc(SHAPE[1:], (40, 40), 12, 2))
    return m


def _masks(folder: Path, zs: list[int], make) -> Path:
    folder.mkdir(parents=True)
    for z in zs:
        iio.imwrite(folder / f"mask_{z:04d}.png", make(z))
    return folder


def _metadata(path: Path, voxel: dict, *, technique: str, title: str, organism: str, taxon: int,
              keywords: list[str]) -> Path:
    doc = minimal_metadata(voxel, technique=technique)
    doc["study"]["title"] = title
    doc["study"]["keywords"] = keywords
    doc["biosample"]["organism"] = {"scientific_name": organism, "ncbi_taxon": taxon}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def build_archive(tmp: Path) -> Path:
    from curation.labels.importer import import_labels
    from curation.repository.archive import init_archive
    from curation.repository.ingest import ingest

    root = tmp / "archive"
    init_archive(root, title="Web test archive")
    vol = em_like_volume(SHAPE, seed=1)
    vol[:, 60:100, 80:120] //= 3  # a dark block: something to see
    tifffile.imwrite(tmp / "cells.tif", vol)
    md = _metadata(tmp / "cells.yaml", VOXEL, technique="SBF-SEM", title="Mouse cortex cells",
                   organism="Mus musculus", taxon=10090, keywords=["cortex", "membranes"])
    ingest(root, [tmp / "cells.tif"], md, name="cells")
    import_labels(root, "cells", "cell", _masks(tmp / "v1", [4, 10], v1_mask), names={1: "cell"},
                  note="two slices", creator="A. Tracer", numbering="z")
    import_labels(root, "cells", "cell", _masks(tmp / "v2", [4, 10, 15], v2_mask),
                  names={1: "cell", 2: "nucleolus"}, note="grown on 10, slice 15 added", creator="B. Checker",
                  numbering="z")
    tifffile.imwrite(tmp / "liver.tif", em_like_volume((16, 64, 64), seed=2))
    md2 = _metadata(tmp / "liver.yaml", {"z": 10.0, "y": 10.0, "x": 10.0}, technique="FIB-SEM",
                    title="Human liver hepatocyte", organism="Homo sapiens", taxon=9606, keywords=["liver"])
    ingest(root, [tmp / "liver.tif"], md2, name="liver")
    return root


@pytest.fixture(scope="session")
def web_template(tmp_path_factory) -> Path:
    """The archive, built once; never written to (copy it with ``fresh_archive``)."""
    return build_archive(tmp_path_factory.mktemp("web"))


def copy_archive(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.fixture
def fresh_archive(web_template, tmp_path) -> Path:
    return copy_archive(web_template, tmp_path / "archive")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
