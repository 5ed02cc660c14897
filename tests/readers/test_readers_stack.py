"""Folders of slices and lists of slice files."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from curation.errors import CorruptSourceError, SourceError, StackError
from curation.readers import StackSource, TiffSource, open_source
from curation.readers.stack import slice_index


def _full(source) -> np.ndarray:
    return source.read(tuple(slice(0, n) for n in source.shape))


def _pngs(folder: Path, n: int = 4, shape=(8, 9), start: int = 1, fmt: str = "s_{:03d}.png") -> np.ndarray:
    folder.mkdir(exist_ok=True)
    data = np.arange(n * shape[0] * shape[1], dtype=np.uint8).reshape(n, *shape)
    for i, plane in enumerate(data):
        iio.imwrite(folder / fmt.format(start + i), plane)
    return data


def _tifs(folder: Path, n: int = 4, shape=(8, 9), dtype="uint16", **kw) -> np.ndarray:
    folder.mkdir(exist_ok=True)
    data = np.arange(n * shape[0] * shape[1]).reshape(n, *shape).astype(dtype)
    for i, plane in enumerate(data):
        tifffile.imwrite(folder / f"s_{i:03d}.tif", plane, **kw)
    return data


# --- the real SBEM slices -----------------------------------------------------------------------


@pytest.mark.shared_data
def test_sbem_mito_images(shared_data):
    folder = shared_data / "sbem-mito" / "images"
    src = open_source([folder])
    assert isinstance(src, StackSource)
    h = src.header
    assert (h.shape, h.dtype) == ((20, 1024, 1024), "uint8")
    assert h.voxel_size_nm == (None, None, None)
    assert src.paths[0].name == "images.010.png" and src.paths[-1].name == "images.029.png"
    region = (slice(3, 6), slice(500, 600), slice(0, 1024))
    expected = np.stack([iio.imread(folder / f"images.{i:03d}.png") for i in (13, 14, 15)])
    np.testing.assert_array_equal(src.read(region), expected[:, 500:600])


@pytest.mark.shared_data
def test_sbem_mito_rgb_labels_become_grey(shared_data):
    src = open_source([shared_data / "sbem-mito" / "labels"])
    assert (src.header.shape, src.header.dtype) == ((20, 1024, 1024), "uint8")
    assert any("grey" in n for n in src.header.notes)
    assert set(np.unique(src.read((slice(0, 2), slice(0, 1024), slice(0, 1024))))) <= {0, 1}


# --- good folders -------------------------------------------------------------------------------


def test_slice_index_is_last_integer_of_the_stem():
    assert slice_index(Path("images.010.png")) == 10
    assert slice_index(Path("run2_z0007.tif")) == 7
    assert slice_index(Path("scan.tif")) is None


def test_natural_order_and_junk_ignored(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    planes = {i: np.full((4, 5), i, np.uint8) for i in (1, 2, 9, 10, 11)}
    for i in range(1, 12):
        iio.imwrite(folder / f"z{i}.png", np.full((4, 5), i, np.uint8))
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "._z1.png", ".hidden.png"):
        (folder / junk).write_bytes(b"junk")
    src = open_source([folder])
    data = _full(src)
    assert data.shape == (11, 4, 5)
    for i, plane in planes.items():
        np.testing.assert_array_equal(data[i - 1], plane)  # z10 after z9, not after z1


def test_tiff_slices_memory_mapped_region(tmp_path):
    data = _tifs(tmp_path / "t", n=5, shape=(30, 40))
    src = open_source([tmp_path / "t"])
    assert (src.header.shape, src.header.dtype) == ((5, 30, 40), "uint16")
    np.testing.assert_array_equal(src.read((slice(1, 4), slice(3, 20), slice(7, 39))), data[1:4, 3:20, 7:39])


@pytest.mark.shared_data
def test_dm_slices(shared_data, tmp_path):
    folder = tmp_path / "dm"
    folder.mkdir()
    shutil.copyfile(shared_data / "dm" / "dtypes-2d" / "test-1.dm3", folder / "slice_1.dm3")
    shutil.copyfile(shared_data / "dm" / "dtypes-2d" / "test-1.dm4", folder / "slice_2.dm4")
    src = open_source([folder])
    assert (src.header.shape, src.header.dtype, src.header.vendor) == ((2, 2, 2), "int16", "Gatan")
    np.testing.assert_array_equal(_full(src), [[[1, 2], [3, 4]]] * 2)


def test_several_files_given_in_any_order(tmp_path):
    data = _pngs(tmp_path / "p", n=3)
    files = sorted((tmp_path / "p").iterdir(), reverse=True)
    np.testing.assert_array_equal(_full(open_source(files)), data)


def test_folder_with_one_multipage_file_opens_that_file(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    tifffile.imwrite(folder / "volume.tif", np.zeros((6, 8, 8), np.uint8))
    src = open_source([folder])
    assert isinstance(src, TiffSource)
    assert src.shape == (6, 8, 8)


def test_xy_calibration_from_first_slice_and_differences_noted(tmp_path):
    folder = tmp_path / "cal"
    folder.mkdir()
    for i in range(5):
        res = 1e5 if i < 4 else 2e5  # 100 nm pixels, the last slice 50 nm
        tifffile.imwrite(folder / f"s{i}.tif", np.zeros((4, 4), np.uint8), resolution=(res, res), resolutionunit="CENTIMETER")
    h = open_source([folder]).header
    assert h.voxel_size_nm == pytest.approx((None, 100.0, 100.0))
    assert any("xy calibration differs" in n and "s4.tif" in n for n in h.notes)


def test_subfolders_are_ignored_with_a_note(tmp_path):
    _pngs(tmp_path / "p", n=2)
    (tmp_path / "p" / "thumbs").mkdir()
    assert any("thumbs" in n for n in open_source([tmp_path / "p"]).header.notes)


# --- refused folders ------------------------------------------------------------------------------


def test_gap_names_missing_index_and_neighbours(tmp_path):
    folder = tmp_path / "gap"
    _pngs(folder, n=6, fmt="images.{:03d}.png", start=10)
    (folder / "images.013.png").unlink()
    with pytest.raises(StackError) as e:
        open_source([folder])
    message = str(e.value)
    assert "slice 13" in message
    assert "images.012.png" in message and "images.014.png" in message


def test_duplicate_index_names_both_files(tmp_path):
    folder = tmp_path / "dup"
    _tifs(folder, n=3)
    tifffile.imwrite(folder / "s_1.tif", np.zeros((8, 9), np.uint16))
    with pytest.raises(StackError, match="duplicated") as e:
        open_source([folder])
    assert "s_001.tif" in str(e.value) and "s_1.tif" in str(e.value)


def test_duplicate_across_formats(tmp_path):
    folder = tmp_path / "dup2"
    _tifs(folder, n=3)
    iio.imwrite(folder / "s_002.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(StackError, match="duplicated"):
        open_source([folder])


def test_mixed_formats(tmp_path):
    folder = tmp_path / "mix"
    _tifs(folder, n=3)
    iio.imwrite(folder / "s_003.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(StackError, match="mixes file formats"):
        open_source([folder])


def test_different_shape_names_first_differing_file(tmp_path):
    folder = tmp_path / "shape"
    _pngs(folder, n=4)
    iio.imwrite(folder / "s_003.png", np.zeros((8, 10), np.uint8))
    iio.imwrite(folder / "s_004.png", np.zeros((7, 9), np.uint8))
    with pytest.raises(StackError) as e:
        open_source([folder])
    assert "s_003.png" in str(e.value)
    assert "(8, 9)" in str(e.value) and "(8, 10)" in str(e.value)


def test_different_dtype(tmp_path):
    folder = tmp_path / "dtype"
    _tifs(folder, n=3, dtype="uint16")
    tifffile.imwrite(folder / "s_001.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(StackError, match="pixel type") as e:
        open_source([folder])
    assert "s_001.tif" in str(e.value) and "uint8" in str(e.value)


def test_multipage_slice_among_others(tmp_path):
    folder = tmp_path / "3d"
    _tifs(folder, n=3)
    tifffile.imwrite(folder / "s_003.tif", np.zeros((2, 8, 9), np.uint16))
    with pytest.raises(StackError, match="3D stack") as e:
        open_source([folder])
    assert "s_003.tif" in str(e.value)


def test_empty_folder_and_junk_only(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StackError, match="no slice files"):
        open_source([tmp_path / "empty"])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / ".DS_Store").write_bytes(b"")
    with pytest.raises(StackError, match="no slice files"):
        open_source([tmp_path / "junk"])


def test_unknown_files_are_listed(tmp_path):
    folder = tmp_path / "other"
    _pngs(folder, n=2)
    (folder / "notes.txt").write_text("acquired on Monday")
    (folder / "settings.xml").write_text("<x/>")
    with pytest.raises(StackError) as e:
        open_source([folder])
    assert "notes.txt" in str(e.value) and "settings.xml" in str(e.value)


def test_unnumbered_slice(tmp_path):
    folder = tmp_path / "nonum"
    _pngs(folder, n=2)
    iio.imwrite(folder / "overview.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(StackError, match="overview.png"):
        open_source([folder])


def test_rgb_png_with_different_channels(tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0] = 200
    for i in range(3):
        iio.imwrite(folder / f"c{i}.png", rgb)
    with pytest.raises(SourceError, match="colour channels differ") as e:
        open_source([folder])
    assert "c0.png" in str(e.value)


def test_rgb_png_later_slice_differs_refused_on_read(tmp_path):
    folder = tmp_path / "late"
    folder.mkdir()
    grey = np.full((6, 6, 3), 5, np.uint8)
    bad = grey.copy()
    bad[0, 0, 1] = 6
    for i in range(5):  # opening checks the first, middle and last slices: c1 is not one
        iio.imwrite(folder / f"c{i}.png", bad if i == 1 else grey)
    src = open_source([folder])
    np.testing.assert_array_equal(src.read((slice(2, 5), slice(0, 6), slice(0, 6))), 5)
    with pytest.raises(SourceError, match="c1.png"):
        src.read((slice(0, 2), slice(0, 6), slice(0, 6)))


def test_corrupt_slice_is_named(tmp_path):
    folder = tmp_path / "bad"
    _pngs(folder, n=3)
    (folder / "s_002.png").write_bytes(b"not a png at all")
    with pytest.raises(CorruptSourceError, match="s_002.png"):
        open_source([folder])


def test_truncated_png_slice_fails_on_read(tmp_path):
    folder = tmp_path / "trunc"
    _pngs(folder, n=3, shape=(64, 64))
    data = (folder / "s_003.png").read_bytes()
    (folder / "s_003.png").write_bytes(data[: len(data) // 2])
    src = open_source([folder])  # the header is intact
    with pytest.raises(CorruptSourceError, match="s_003.png"):
        src.read((slice(2, 3), slice(0, 64), slice(0, 64)))


def test_several_inputs_must_be_files(tmp_path):
    _pngs(tmp_path / "p", n=2)
    with pytest.raises(SourceError, match="several inputs"):
        open_source([tmp_path / "p", tmp_path / "p" / "s_001.png"])


def test_region_read_touches_only_its_slices(tmp_path):
    data = _tifs(tmp_path / "t", n=6)
    src = open_source([tmp_path / "t"])
    (tmp_path / "t" / "s_000.tif").unlink()
    (tmp_path / "t" / "s_005.tif").unlink()
    np.testing.assert_array_equal(src.read((slice(1, 5), slice(2, 6), slice(0, 9))), data[1:5, 2:6])
