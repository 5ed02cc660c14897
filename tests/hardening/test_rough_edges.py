"""Rough edges a new user hit (issue 12): each a case that failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CURATE = str(Path(sys.executable).parent / "curate")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    return env


def test_closed_pipe_exits_quietly():
    """`curate ... | head -3`: the reader goes away; no "unexpected BrokenPipeError", no traceback."""
    proc = subprocess.Popen([CURATE, "metadata", "template", "--technique", "SBF-SEM"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "", err
    assert proc.returncode in (0, 1)


# --- polylines a pixel or two past the edge ---------------------------------------------------------


def _polyline_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("annotator,slice,trace,x,y\n" + "\n".join(rows) + "\n")
    return path


def test_polyline_vertex_just_outside_is_clipped_with_a_warning(tmp_path):
    from curation.labels.annotations import read_polylines

    p = _polyline_csv(tmp_path / "t.csv", ["u1,0,t1,-1.5,10", "u1,0,t1,30,10", "u1,0,t1,30,64.7", "u2,0,t1,5,5",
                                            "u2,0,t1,9,9"])
    aset = read_polylines(p, slice_shape=(64, 64), n_slices=1)
    pts = aset.polylines["u1"][0][0].points
    assert pts[:, 0].min() == 0.0 and pts[:, 1].max() == 63.0  # onto the edge pixels' centres
    assert len(aset.warnings) == 1
    assert "2 vertices up to 1.7 px outside the 64x64 slice clipped" in aset.warnings[0]
    assert "row 2" in aset.warnings[0]
    clean = read_polylines(_polyline_csv(tmp_path / "c.csv", ["u1,0,t1,-0.4,10", "u1,0,t1,30,10"]),
                           slice_shape=(64, 64))
    assert clean.warnings == []  # inside the edge pixel: no warning


def test_polyline_vertex_far_outside_is_refused(tmp_path):
    from curation.errors import LabelError
    from curation.labels.annotations import read_polylines

    p = _polyline_csv(tmp_path / "t.csv", ["u1,0,t1,-2.5,10", "u1,0,t1,30,10"])
    with pytest.raises(LabelError, match=r"row 2, x: x coordinate outside the slice \(by more than 2 px"):
        read_polylines(p, slice_shape=(64, 64))


def test_polyline_json_vertices_clipped(tmp_path):
    import json

    from curation.labels.annotations import JSON_FORMAT, read_polylines

    p = tmp_path / "t.json"
    p.write_text(json.dumps({"format": JSON_FORMAT, "slice_shape": [32, 32], "annotations": [
        {"annotator": "u1", "slice": 0, "traces": [{"points": [[1, 1], [32.5, 4]]}]}]}))
    aset = read_polylines(p)
    assert aset.polylines["u1"][0][0].points[1].tolist() == [31.0, 4.0]
    assert "annotations[0].traces[0].points[1]" in aset.warnings[0]


def test_project_license_is_an_spdx_string():
    """A TOML table for project.license is deprecated (three build warnings)."""
    import tomllib

    doc = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    assert any(r.startswith("setuptools>=77") for r in doc["build-system"]["requires"])  # PEP 639 support
    assert "atheris" in " ".join(doc["project"]["optional-dependencies"]["fuzz"])


# --- message wording -------------------------------------------------------------------------------


def test_errors_without_an_expectation_do_not_say_expected_nothing():
    from curation.errors import InvalidNameError
    from curation.repository.names import check_name

    with pytest.raises(InvalidNameError) as err:
        check_name("../x")
    assert "expected nothing" not in str(err.value) and "(found '../x')" in str(err.value)


def test_metadata_check_names_each_field_once(tmp_path):
    from curation.testing import write_metadata

    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    md.write_text(md.read_text().replace("title: Test acquisition", "title: ''"))
    r = subprocess.run([CURATE, "metadata", "check", str(md)], capture_output=True, text=True, env=_env())
    line = next(x for x in r.stdout.splitlines() if "study.title" in x)
    assert line.count("study.title") == 1 and line.startswith("error: study.title (line "), line


# --- implausible metadata --------------------------------------------------------------------------


def _md(path: Path, voxel: dict, **acq) -> Path:
    import yaml

    from curation.testing import write_metadata

    p = write_metadata(path, voxel)
    doc = yaml.safe_load(p.read_text())
    doc["acquisition"].update(acq)
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_implausible_metadata_is_warned(tmp_path):
    from curation.metadata import load_metadata
    from curation.metadata.lint import lint

    md = load_metadata(_md(tmp_path / "m.yaml", {"z": 4000, "y": 0.002, "x": 0.002}, slice_thickness_nm=40))
    found = {(w.field, w.message.split(" (")[0]) for w in lint(md)}
    assert ("image_data.voxel_size.x", "pixel size outside the usual range for FIB-SEM") in found
    assert ("image_data.voxel_size.z", "z voxel size outside the usual range for FIB-SEM") in found
    assert ("image_data.voxel_size.z", "z voxel size differs from acquisition.slice_thickness_nm") in found
    ok = load_metadata(_md(tmp_path / "ok.yaml", {"z": 8, "y": 8, "x": 8}, slice_thickness_nm=8))
    assert not [w for w in lint(ok) if w.field.startswith("image_data")]


def test_implausible_metadata_warning_is_recorded_at_ingest(tmp_path):
    import numpy as np
    import tifffile

    from curation.provenance import IngestRecord, read_record
    from curation.repository.archive import init_archive
    from curation.repository.ingest import ingest

    tifffile.imwrite(tmp_path / "v.tif", np.zeros((6, 16, 16), np.uint8), photometric="minisblack")
    init_archive(tmp_path / "a", title="t")
    md = _md(tmp_path / "m.yaml", {"z": 4000, "y": 8, "x": 8})
    (r,) = ingest(tmp_path / "a", [tmp_path / "v.tif"], md, name="v")
    assert any("usual range for FIB-SEM" in w for w in r.data["warnings"])
    rec = read_record(tmp_path / "a" / "acquisitions" / "v" / "provenance" / "ingest.json", IngestRecord)
    assert any("image_data.voxel_size.z" in w and "4000 nm" in w for w in rec.metadata.warnings)


# --- help texts --------------------------------------------------------------------------------------


def test_labels_aggregate_help_explains_its_input_and_options():
    from click.testing import CliRunner

    from curation.cli.main import cli

    out = " ".join(CliRunner().invoke(cli, ["labels", "aggregate", "--help"]).output.split())
    assert "one folder holding one subfolder per annotator" in out
    method = out.split("--method", 1)[1].split("--band-width-nm", 1)[0]
    assert "STAPLE" in method and "majority" in method  # --method has a help text
    band = out.split("--band-width-nm", 1)[1].split("--polyline-mode", 1)[0]
    assert "Default: no band" in band


def test_package_help_says_where_the_empiar_schema_comes_from():
    from click.testing import CliRunner

    from curation.cli.main import cli

    out = " ".join(CliRunner().invoke(cli, ["package", "--help"]).output.split())
    assert "emdb-empiar/empiar-depositor" in out
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "emdb-empiar/empiar-depositor" in readme and "demo-output/README.md" in readme


def test_demo_readme_explains_its_folders(tmp_path):
    from curation.web.preview import _readme

    (tmp_path / "acquisition").mkdir()
    (tmp_path / "deposit-empiar").mkdir()
    text = _readme("Demo", "archive", [], [tmp_path / "deposit-empiar"], tmp_path)
    for needle in ("`acquisition/`", "`images/`", "`metadata.yaml`", "`ground_truth/`", "`archive/`",
                   "deposit-empiar", "`previews/`", "`index.html`"):
        assert needle in text, needle


# --- found by the crash matrix ------------------------------------------------------------------------


def test_a_journal_half_written_when_killed_is_removed_by_the_next_write(tmp_path):
    """kill -9 while the journal's temporary file was written left `.ID.json.PID.partial` behind."""
    from curation.repository.archive import init_archive, open_archive
    from curation.repository.transaction import job_fingerprint, transaction

    init_archive(tmp_path / "a", title="t")
    archive = open_archive(tmp_path / "a")
    journal = archive.staging_root / "journal"
    journal.mkdir(parents=True)
    (journal / ".20261202T000000-abc.json.4242.partial").write_text('{"schema_key": "Jour')
    with transaction(archive, "test", job=job_fingerprint("test")) as tx:
        assert tx.recovered == []
    assert not journal.exists() and not archive.staging_root.exists()


# --- found by the atheris run on the TIFF reader ------------------------------------------------------


def test_tiff_whose_ifd_chain_loops_is_refused_at_once(tmp_path):
    """A page whose next-IFD offset points at itself made tifffile's series scan loop forever."""
    import struct

    import numpy as np
    import tifffile

    p = tmp_path / "loop.tif"  # two pages of different shapes: tifffile's generic series scan
    tifffile.imwrite(p, np.zeros((4, 3), np.uint8), photometric="minisblack", metadata=None)
    tifffile.imwrite(p, np.zeros((5, 6), np.uint8), photometric="minisblack", metadata=None, append=True)
    with tifffile.TiffFile(p) as tif:
        len(tif.pages)
        second = tif.pages._offsets[1]
    data = bytearray(p.read_bytes())
    n_tags = struct.unpack_from("<H", data, second)[0]
    struct.pack_into("<I", data, second + 2 + 12 * n_tags, second)  # its next IFD: itself
    p.write_bytes(bytes(data))
    code = ("import sys\nfrom curation.errors import CurationError\nfrom curation.readers.tiff import inspect_tiff\n"
            "try:\n    inspect_tiff(sys.argv[1])\nexcept CurationError:\n    pass\nprint('DONE')")
    try:  # in a child, so a regression fails the test instead of hanging the suite
        out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("inspect_tiff loops on a TIFF whose IFD chain points back at itself")
    assert "DONE" in out.stdout, out.stderr[-2000:]


def test_ingest_killed_inside_dataset_creation_recreates_it(tmp_path):
    """kill -9 inside `datalad create` (its .datalad/ made, curation's .gitattributes not yet) used
    to leave a dataset the re-run took as made: history and attributes differed (crash matrix)."""
    import numpy as np
    import tifffile

    from curation.repository import datalad_ops as dlo
    from curation.repository.archive import init_archive
    from curation.repository.ingest import ingest
    from curation.testing import write_metadata

    tifffile.imwrite(tmp_path / "v.tif", np.zeros((6, 16, 16), np.uint8), photometric="minisblack")
    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    init_archive(tmp_path / "a", title="t")
    code = ("import os, signal, sys\n"
            "from curation.repository import datalad_ops as dlo\n"
            "def create(path, *, description=None):\n"
            "    dlo._call('datalad create', path, dlo._dl().create, path=str(path), description=description,"
            " annex=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "dlo.create_dataset = create\n"
            "from curation.repository.ingest import ingest\n"
            "ingest(sys.argv[1], [sys.argv[2]], sys.argv[3], name='v')\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a"), str(tmp_path / "v.tif"), str(md)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (r,) = [x for x in ingest(tmp_path / "a", [tmp_path / "v.tif"], md, name="v") if x.action == "ingest"]
    assert r.status.value == "ok"
    acq = tmp_path / "a" / "acquisitions" / "v"
    assert "[DATALAD] new dataset" in dlo.git(acq, "log", "--format=%s")
    assert dlo.GITATTRIBUTES.strip() in (acq / ".gitattributes").read_text()
