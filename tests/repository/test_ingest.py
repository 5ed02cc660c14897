"""Ingest into a real DataLad archive: real instrument files, round trips, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
import zarr

from curation.errors import (
    AlreadyExistsError,
    CorruptSourceError,
    CurationError,
    InvalidNameError,
    MetadataError,
    MismatchError,
    NotAnImageError,
    SourceError,
    StackError,
)
from curation.omezarr.ngff import validate_image
from curation.provenance import IngestRecord, read_record
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive, open_archive, show_acquisition
from curation.repository.ingest import ingest
from curation.repository.verify import verify
from curation.testing import em_like_volume, write_metadata

@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive") / "arch"
    init_archive(root, title="Ingest tests")
    return root


def assert_untouched(root: Path, head_before: str) -> None:
    """The archive is exactly as it was: same commit, clean tree, no staging left."""
    assert dlo.head(root) == head_before
    assert dlo.status(root, recursive=True) == []
    staging = root / ".curation" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def level0(root: Path, name: str) -> zarr.Array:
    return zarr.open_group(str(root / "acquisitions" / name / f"{name}.ome.zarr"), mode="r")["0"]


# --- generated volumes ---------------------------------------------------------------


def test_tiff_stack_round_trip(archive, tmp_path):
    vol = em_like_volume((24, 150, 170), "uint16", seed=2)
    folder = tmp_path / "stack"
    folder.mkdir()
    for z in range(vol.shape[0]):
        tifffile.imwrite(folder / f"slice_{z}.tif", vol[z])
    md = write_metadata(tmp_path / "m.yaml", {"z": 10, "y": 8, "x": 8}, dimensions={"z": 24, "y": 150, "x": 170},
                        dtype="uint16")
    [rec] = ingest(archive, [folder], md, name="gen-u16")
    assert rec.status.value == "ok"
    np.testing.assert_array_equal(level0(archive, "gen-u16")[:], vol)
    g = zarr.open_group(str(archive / rec.data["image"]), mode="r")
    scale = g.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [10.0, 8.0, 8.0]
    validate_image(archive / rec.data["image"])
    prov = read_record(archive / "acquisitions/gen-u16/provenance/ingest.json", IngestRecord)
    assert len(prov.sources) == 24 and all(len(s.sha256) == 64 for s in prov.sources)
    assert [s.name for s in prov.sources] == [f"slice_{z}.tif" for z in range(24)]  # z order
    assert prov.reader and prov.tool.name == "curation" and prov.image.tree_sha256
    assert prov.agent and prov.agent.name == "Curation Tests <tests@curation.invalid>"
    assert dlo.status(archive, recursive=True) == []
    [v] = verify(archive, "gen-u16")
    assert v.status.value == "ok", v.message


def test_show_json_has_the_promised_keys(archive, tmp_path):
    if "gen-u16" not in open_archive(archive).acquisition_names():
        pytest.skip("needs test_tiff_stack_round_trip")
    [rec] = show_acquisition(archive, "gen-u16")
    d = rec.data
    for key in ("name", "path", "image", "shape", "dtype", "voxel_size_nm", "labels", "dataset_commit",
                "archive_commit"):
        assert key in d
    assert d["path"] == "acquisitions/gen-u16" and d["image"] == "acquisitions/gen-u16/gen-u16.ome.zarr"
    assert d["shape"] == [24, 150, 170] and d["dtype"] == "uint16" and d["voxel_size_nm"] == [10, 8, 8]
    assert d["labels"] == [] and len(d["dataset_commit"]) == 40 and len(d["archive_commit"]) == 40


def test_multipage_tiff_and_git_layout(archive, tmp_path):
    vol = em_like_volume((9, 64, 80), "uint8", seed=4)
    path = tmp_path / "vol.tif"
    tifffile.imwrite(path, vol)
    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    [rec] = ingest(archive, [path], md, name="multipage")
    np.testing.assert_array_equal(level0(archive, "multipage")[:], vol)
    acq = archive / "acquisitions" / "multipage"
    # metadata in git, array bytes in the annex
    assert not (acq / "multipage.ome.zarr" / "zarr.json").is_symlink()
    assert not (acq / "metadata.json").is_symlink()
    shard = next(p for p in (acq / "multipage.ome.zarr" / "0" / "c").rglob("*") if p.is_file() or p.is_symlink())
    assert shard.is_symlink() and "SHA256E" in str(shard.readlink())
    # shards were annexed under keys curation computed: a full fsck rehashes and agrees
    dlo.annex(acq, "fsck", "--quiet")
    assert "SHA256E-s" in dlo.annex(acq, "find", "--format=${key}\n", "multipage.ome.zarr")
    msg = dlo.log(acq, limit=1)[0]["subject"]
    assert msg.startswith("Ingest multipage: 9 x 64 x 80 uint8")


# --- bad input leaves the archive untouched -------------------------------------------


def _stack(folder: Path, n: int, shape=(32, 40), start=0, dtype="uint8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(start, start + n):
        tifffile.imwrite(folder / f"s_{z:03d}.tif", np.full(shape, z, dtype=dtype))
    return folder


@pytest.mark.parametrize("case", [
    "missing-slice", "duplicate-slice", "mixed-shapes", "bad-metadata", "missing-field",
    "shape-mismatch", "dtype-mismatch", "voxel-mismatch", "rgb", "complex", "name-slash", "name-dotdot",
    "existing-name", "no-voxel-size",
])
def test_bad_input_is_refused_cleanly(archive, tmp_path, case):
    head = dlo.head(archive)
    good_md = write_metadata(tmp_path / "good.yaml", {"z": 8, "y": 8, "x": 8})
    src = _stack(tmp_path / "src", 4)
    name = f"bad-{case}"
    expect: type[CurationError] = SourceError
    if case == "missing-slice":
        (src / "s_002.tif").unlink()
        expect = StackError
    elif case == "duplicate-slice":
        tifffile.imwrite(src / "s_2.tif", np.zeros((32, 40), np.uint8))
        expect = StackError
    elif case == "mixed-shapes":
        tifffile.imwrite(src / "s_003.tif", np.zeros((32, 41), np.uint8))
        expect = StackError
    elif case == "bad-metadata":
        doc = yaml.safe_load(good_md.read_text())
        doc["study"]["authors"][0]["orcid"] = "0000-0002-1825-0098"
        good_md.write_text(yaml.safe_dump(doc))
        expect = MetadataError
    elif case == "missing-field":
        doc = yaml.safe_load(good_md.read_text())
        del doc["study"]["license"]
        good_md.write_text(yaml.safe_dump(doc))
        expect = MetadataError
    elif case == "shape-mismatch":
        good_md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8}, dimensions={"z": 5, "y": 32, "x": 40})
        expect = MismatchError
    elif case == "dtype-mismatch":
        good_md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8}, dtype="uint16")
        expect = MismatchError
    elif case == "voxel-mismatch":
        path = tmp_path / "cal.tif"
        tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint8), imagej=True, resolution=(1 / 0.005, 1 / 0.005),
                         metadata={"spacing": 0.01, "unit": "um", "axes": "ZYX"})
        src = path  # ImageJ calibration: 5 nm pixels, 10 nm spacing; the metadata says 8 nm
        expect = MismatchError
    elif case == "rgb":
        path = tmp_path / "rgb.tif"
        rgb = np.zeros((16, 16, 3), np.uint8)
        rgb[..., 0] = 200
        tifffile.imwrite(path, rgb, photometric="rgb")
        src = path
    elif case == "complex":
        path = tmp_path / "complex.tif"
        tifffile.imwrite(path, np.zeros((16, 16), np.complex64))
        src = path
    elif case == "name-slash":
        name, expect = "a/b", InvalidNameError
    elif case == "name-dotdot":
        name, expect = "..", InvalidNameError
    elif case == "existing-name":
        _ok_src = _stack(tmp_path / "ok", 2)
        ingest(archive, [_ok_src], good_md, name="taken")
        head = dlo.head(archive)
        name, expect = "taken", AlreadyExistsError
    elif case == "no-voxel-size":
        good_md = write_metadata(tmp_path / "m.yaml", {"y": 8, "x": 8})
        expect = MetadataError
    with pytest.raises(expect) as info:
        ingest(archive, [src], good_md, name=name)
    text = str(info.value)
    assert "\n" not in text and len(text) < 600
    assert_untouched(archive, head)
    if case not in ("existing-name",):
        assert not (archive / "acquisitions" / name).exists() or "/" in name or name == ".."


# --- real instrument files -------------------------------------------------------------

DM_EXPECT = {
    # name: (shape zyx, dtype, voxel nm zyx where the file calibrates it)
    "dmTest_3D_int16_64-65-66.dm4": ((66, 65, 64), "int16", (4000.0, 3.0, 0.002)),
    "dmTest_3D_int16_64-65-66.dm3": ((66, 65, 64), "int16", (4000.0, 3.0, 0.002)),
    "dmTest_float32_nonSquare_diffPixelSize.dm4": ((1, 64, 128), "float32", (None, 0.2, 1.0)),
    "dmTest_float32_nonSquare_diffPixelSize.dm3": ((1, 64, 128), "float32", (None, 0.2, 1.0)),
}
DM_TYPES_OK = {1: "int16", 2: "float32", 6: "uint8", 7: "int32", 9: "int8", 10: "uint16", 11: "uint32",
               12: "float64", 14: "uint8"}
DM_TYPES_REFUSED = {3: "complex", 5: "complex", 13: "complex", 27: "complex", 28: "complex", 8: "RGB", 23: "RGB"}


def _dm_files(shared):
    files = sorted((shared / "dm").glob("*.dm?")) + sorted((shared / "dm" / "dtypes-2d").glob("*.dm?"))
    return files


def _ingest_with_fill(archive, tmp_path, path, name):
    from curation.readers import open_source

    header = open_source([path]).header
    voxel = {ax: 1.0 for ax, v in zip("zyx", header.voxel_size_nm) if v is None}
    md = write_metadata(tmp_path / f"{name}.yaml", voxel or None)
    return ingest(archive, [path], md, name=name)


def test_every_dm_fixture_is_ingested_or_refused(archive, tmp_path, shared_data):
    from rsciio.digitalmicrograph import file_reader

    outcomes = {}
    for path in _dm_files(shared_data):
        head = dlo.head(archive)
        name = "dm-" + path.name.replace(".", "-")
        stem = path.name
        try:
            [rec] = _ingest_with_fill(archive, tmp_path, path, name)
        except CurationError as exc:
            assert "\n" not in str(exc) and path.name in str(exc) or str(path) in str(exc), str(exc)
            assert_untouched(archive, head)
            outcomes[stem] = type(exc).__name__
            continue
        outcomes[stem] = "ok"
        data = level0(archive, name)[:]
        ref = [s for s in file_reader(str(path)) if np.asarray(s["data"]).ndim >= 2][0]["data"]
        ref = np.asarray(ref)
        if ref.dtype == bool:
            ref = ref.astype(np.uint8)
        np.testing.assert_array_equal(data.reshape(ref.shape), ref)
        if stem in DM_EXPECT:
            shape, dtype, voxel = DM_EXPECT[stem]
            assert tuple(rec.data["shape"]) == shape and rec.data["dtype"] == dtype
            for got, want in zip(rec.data["voxel_size_nm"], voxel):
                if want is not None:
                    assert got == pytest.approx(want, rel=1e-4)
        if path.parent.name == "dtypes-2d":
            n = int(path.stem.split("-")[1])
            assert n in DM_TYPES_OK, f"{stem} should have been refused"
            assert rec.data["dtype"] == DM_TYPES_OK[n]
            assert sorted(np.unique(data).tolist())[-1] >= 1
    for path in (shared_data / "dm" / "dtypes-2d").glob("*.dm?"):
        n = int(path.stem.split("-")[1])
        if n in DM_TYPES_REFUSED:
            assert outcomes[path.name] != "ok", f"{path.name} ({DM_TYPES_REFUSED[n]}) must be refused"
    assert outcomes["EELS_SI.dm4"] == NotAnImageError.__name__
    for stem in DM_EXPECT:
        assert outcomes[stem] == "ok"


def test_corrupt_dm4_is_refused_cleanly(archive, tmp_path, shared_data):
    good = shared_data / "dm" / "dmTest_3D_int16_64-65-66.dm4"
    truncated = tmp_path / "truncated.dm4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    head = dlo.head(archive)
    md = write_metadata(tmp_path / "m.yaml")
    with pytest.raises((CorruptSourceError, SourceError)) as info:
        ingest(archive, [truncated], md, name="truncated")
    assert "truncated.dm4" in str(info.value)
    assert_untouched(archive, head)


def test_fei_and_zeiss_tiffs_with_vendor_metadata(archive, tmp_path, shared_data):
    zeiss = shared_data / "tiff" / "test_tiff_Zeiss_SEM_512pix.tif"
    md = write_metadata(tmp_path / "z.yaml", {"z": 20})
    [rec] = ingest(archive, [zeiss], md, name="zeiss")
    assert rec.data["voxel_size_nm"][1:] == pytest.approx([11.65, 11.65], rel=1e-3)
    assert "image_data.voxel_size.x" in rec.data["filled"]
    stored = json.loads((archive / "acquisitions/zeiss/metadata.json").read_text())
    assert stored["image_data"]["voxel_size"]["x"]["value"] == pytest.approx(11.65, rel=1e-3)
    prov = read_record(archive / "acquisitions/zeiss/provenance/ingest.json", IngestRecord)
    assert prov.header.vendor and prov.header.fields

    from curation.readers import open_source

    for fei in sorted((shared_data / "tiff").glob("FEI-Helios*.tif")):
        name = "fei-" + fei.stem.lower().replace("_", "-")[:60]
        md = write_metadata(tmp_path / f"{name}.yaml", {"z": 10})
        if open_source([fei]).header.voxel_size_nm[1] is None:
            # the pixel size tag is corrupt: refused until the metadata gives it
            head = dlo.head(archive)
            with pytest.raises(MetadataError, match="voxel_size.y"):
                ingest(archive, [fei], md, name=name)
            assert_untouched(archive, head)
            md = write_metadata(tmp_path / f"{name}.yaml", {"z": 10, "y": 10, "x": 10})
        [rec] = ingest(archive, [fei], md, name=name)
        prov = read_record(archive / f"acquisitions/{name}/provenance/ingest.json", IngestRecord)
        assert prov.header.vendor, fei.name
        fields = prov.header.fields
        assert fields, fei.name
        np.testing.assert_array_equal(level0(archive, name)[0], tifffile.imread(fei))


def test_sbem_folder(archive, tmp_path, shared_data):
    folder = shared_data / "sbem-mito" / "images"
    md = write_metadata(tmp_path / "s.yaml", {"z": 40, "y": 5.9, "x": 5.9}, dimensions={"z": 20, "y": 1024, "x": 1024},
                        dtype="uint8")
    [rec] = ingest(archive, [folder], md, name="sbem")
    import imageio.v3 as iio

    arr = level0(archive, "sbem")
    files = sorted(folder.glob("*.png"))
    assert arr.shape == (20, 1024, 1024)
    for z in (0, 7, 19):
        np.testing.assert_array_equal(arr[z], iio.imread(files[z]))
    factors = [tuple(lv["factor"]) for lv in json.loads(
        (archive / "acquisitions/sbem/provenance/ingest.json").read_text())["image"]["plan"]["levels"]]
    assert factors[1] == (1, 2, 2)  # 40 nm slices: z is not halved at first
    [v] = verify(archive, "sbem")
    assert v.status.value == "ok", v.message


def test_concurrent_writer_is_refused_clearly(archive, tmp_path):
    from curation.errors import LockedError

    arch = open_archive(archive)
    src = _stack(tmp_path / "src", 2)
    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    head = dlo.head(archive)
    with arch.lock(purpose="test holder"):
        # filelock is re-entrant within a process; a second process is the real contender
        import subprocess
        import sys

        code = ("import sys; from curation.repository.ingest import ingest\n"
                "from curation.errors import LockedError\n"
                f"try:\n    ingest({str(archive)!r}, [{str(src)!r}], {str(md)!r}, name='locked')\n"
                "except LockedError as e:\n    print('LOCKED', e); sys.exit(7)\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 7, proc.stderr[-2000:]
    assert "another curate process" in proc.stdout and "test holder" in proc.stdout
    assert_untouched(archive, head)
    assert LockedError
