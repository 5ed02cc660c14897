"""Pictures without a server: `curate preview`, the EMPIAR entry image (inside a real
EMPIAR package of the demo), and the demo folder's README.md and index.html."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curation.web.preview import demo_report, entry_image

CURATE = str(Path(sys.executable).parent / "curate")


def test_cli_preview_writes_planes_and_overlays(web_template, tmp_path, artifacts):
    out = tmp_path / "pics"
    res = subprocess.run([CURATE, "preview", str(web_template), "cells", "cell@v2", "--out", str(out), "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    records = json.loads(res.stdout)
    names = sorted(Path(r["path"]).name for r in records)
    assert names == sorted(["cells_xy.png", "cells_xz.png", "cells_yz.png", "cells_cell_v2_xy.png",
                            "cells_cell_v2_xz.png", "cells_cell_v2_yz.png"])
    xy = np.asarray(Image.open(out / "cells_xy.png"))
    xz = np.asarray(Image.open(out / "cells_xz.png"))
    yz = np.asarray(Image.open(out / "cells_yz.png"))
    assert xy.shape == (410, 512)  # 160 x 200 voxels of 8 nm
    assert xz.shape == (154, 512) and yz.shape == (192, 512)  # 480 nm deep against 1600 and 1280 nm
    assert 40 < xy.mean() < 215 and xy.std() > 20  # a readable window, neither blank nor saturated
    over = np.asarray(Image.open(out / "cells_cell_v2_xy.png"))
    assert over.ndim == 3 and over.shape[2] == 3
    xy_rec = next(r for r in records if r["data"]["kind"] == "overlay" and r["data"]["plane"] == "xy")
    assert xy_rec["data"]["index"] == 10  # the annotated slice nearest the middle
    cy, cx = 205, 256  # the disc's centre: it shows in the label colour
    r, g, b = over[cy, cx].astype(int)
    assert b > r + 30 or r > b + 30 or g > r + 30  # coloured, not grey
    Image.open(out / "cells_cell_v2_xy.png").save(artifacts / "preview_cells_cell_v2_xy.png")
    bad = subprocess.run([CURATE, "preview", str(web_template), "cells", "cell@v9"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no version 9" in bad.stderr


def test_entry_image_is_square_and_large_enough(web_template, tmp_path):
    p = entry_image(web_template, "cells", tmp_path / "entry.png", size=300)
    img = Image.open(p)
    assert img.format == "PNG" and img.size == (400, 400)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from curation.demo.loop import run_demo

    root = tmp_path_factory.mktemp("demo") / "out"
    run_demo(root)
    return root


def test_empiar_package_has_the_entry_thumbnail(demo):
    pkg = demo / "deposit-empiar"
    img = Image.open(pkg / "entry_thumbnail.png")
    assert img.size == (512, 512)
    assert "entry_thumbnail.png" in (pkg / "manifest-sha256.txt").read_text()
    assert "-e entry_thumbnail.png" in (pkg / "README.md").read_text()
    a = np.asarray(img.convert("RGB")).astype(int)
    assert ((a[..., 2] - a[..., 0]) > 60).sum() > 200  # the envelope drawn in its label colour


def test_demo_report(demo, artifacts):
    res = demo_report(demo)
    assert res[0].status.value == "ok"
    readme = (demo / "README.md").read_text()
    index = (demo / "index.html").read_text()
    assert "curate serve archive" in readme and "deposit-empiar/" in readme and "envelope@v2" in readme
    for line in readme.splitlines():
        for part in line.split("](")[1:]:
            assert (demo / part.split(")")[0]).is_file()
    assert '<img src="previews/phantom_xy.png"' in index and "<svg" in index and "envelope@v2" in index
    # the layer curated most (envelope, three versions) is the one drawn over the image
    assert (demo / "previews" / "phantom_envelope_v3_xy.png").is_file()
    (artifacts / "demo_index.html").write_text(index)
