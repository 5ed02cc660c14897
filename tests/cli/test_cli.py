"""The curate command as a librarian runs it: a subprocess, the virtualenv not activated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from curation.testing import minimal_metadata, write_metadata

CURATE = str(Path(sys.executable).parent / "curate")


def curate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # a bare PATH: git-annex lives only in the virtualenv's bin/, which is not on it
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    return subprocess.run([CURATE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    vol = (np.arange(6 * 40 * 50) % 251).astype(np.uint8).reshape(6, 40, 50)
    tifffile.imwrite(base / "vol.tif", vol)
    write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    r = curate("init", str(base / "arch"), "--title", "CLI archive")
    assert r.returncode == 0, r.stderr
    r = curate("ingest", str(base / "arch"), str(base / "vol.tif"), "--metadata", str(base / "m.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    return base


def test_help_is_light():
    code = ("import sys; from curation.cli.main import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'dask', 'datalad', 'zarr', 'distributed') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    for cmd in ("init", "ingest", "list", "show", "log", "verify", "metadata", "demo", "labels", "package"):
        assert cmd in out.stdout


def test_ingest_show_list_log_verify_without_activated_venv(archive):
    arch = str(archive / "arch")
    show = curate("show", arch, "vol", "--json")
    assert show.returncode == 0, show.stderr
    d = json.loads(show.stdout)
    assert d["name"] == "vol" and d["shape"] == [6, 40, 50] and d["voxel_size_nm"] == [8, 8, 8]
    assert d["image"] == "acquisitions/vol/vol.ome.zarr" and d["labels"] == []
    assert "vol" in curate("list", arch).stdout
    log = curate("log", arch, "vol")
    assert log.returncode == 0 and "Ingest vol" in log.stdout
    ver = curate("verify", arch, "vol")
    assert ver.returncode == 0 and "intact" in ver.stdout, ver.stdout + ver.stderr


def test_errors_are_one_line_and_exit_nonzero(archive):
    arch = str(archive / "arch")
    r = curate("show", arch, "nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no acquisition named 'nope'" in r.stderr
    r = curate("ingest", arch, str(archive / "vol.tif"), "--metadata", str(archive / "m.yaml"), "--name", "../x")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    r = curate("show", str(archive), "vol")
    assert r.returncode == 1 and "not a curation archive" in r.stderr
    r = curate("ingest", arch)
    assert r.returncode == 2  # usage error


def test_metadata_template_and_check(tmp_path):
    r = curate("metadata", "template", "--technique", "SBF-SEM")
    assert r.returncode == 0 and "voxel_size" in r.stdout and "#" in r.stdout
    doc = minimal_metadata({"z": 8, "y": 8, "x": 8})
    doc["study"]["license"] = "nope"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    r = curate("metadata", "check", str(tmp_path / "bad.yaml"), "--json")
    assert r.returncode == 1
    rows = json.loads(r.stdout)
    assert any(row["data"].get("field") == "study.license" for row in rows)


def test_output_reads_cleanly_in_ome_zarr_py(archive):
    """napari-ome-zarr reads through ome-zarr-py: it must see the pyramid without warnings."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    image = archive / "arch" / "acquisitions" / "vol" / "vol.ome.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nodes = list(Reader(parse_url(str(image)))())
        data = nodes[0].data
        assert data[0].shape == (6, 40, 50)
        assert np.asarray(data[0][2, :3, :3]).tolist() == \
            ((np.arange(6 * 40 * 50) % 251).reshape(6, 40, 50)[2, :3, :3]).tolist()
        meta = nodes[0].metadata
        assert meta["coordinateTransformations"][0][0]["scale"] == [8.0, 8.0, 8.0]
