"""The Source contract, run against every reader implementation.

Each case builds a real input (generated TIFF / PNG files in tmp_path, or a real DM
fixture) plus the volume it must read as; every test then checks the same promises:
header shape and dtype match the data, region reads equal the full read sliced, sources
survive pickling (also into another process), and closing is harmless.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from curation.readers import BioioReader, Source, open_source

Case = Callable[[Path, pytest.FixtureRequest], tuple[Source, np.ndarray]]
RNG = np.random.default_rng(1234)


def _volume(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is None:
        return RNG.normal(size=shape).astype(dtype)
    return RNG.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


def tiff_2d(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((37, 53), "uint16")
    tifffile.imwrite(tmp / "plane.tif", data)
    return open_source([tmp / "plane.tif"]), data[np.newaxis]


def tiff_multipage(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((9, 31, 45), "uint8")
    tifffile.imwrite(tmp / "stack.tif", data)
    return open_source([tmp / "stack.tif"]), data


def tiff_compressed_tiled(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((5, 70, 90), "int16")
    tifffile.imwrite(tmp / "tiled.tif", data, compression="zlib", tile=(32, 32))
    return open_source([tmp / "tiled.tif"]), data


def tiff_imagej_bigendian(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((4, 20, 30), "float32")
    tifffile.imwrite(tmp / "ij.tif", data, imagej=True, byteorder=">", metadata={"axes": "ZYX"})
    return open_source([tmp / "ij.tif"]), data


def tiff_rgb_grey(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    grey = _volume((3, 16, 24), "uint8")
    tifffile.imwrite(tmp / "rgb.tif", np.repeat(grey[..., np.newaxis], 3, axis=-1), photometric="rgb")
    return open_source([tmp / "rgb.tif"]), grey


def tiff_slices(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((6, 25, 33), "uint16")
    folder = tmp / "slices"
    folder.mkdir()
    for i, plane in enumerate(data):
        tifffile.imwrite(folder / f"slice_{i + 1:03d}.tif", plane, compression="zlib" if i % 2 else None)
    return open_source([folder]), data


def png_slices(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((5, 27, 19), "uint8")
    folder = tmp / "png"
    folder.mkdir()
    for i, plane in enumerate(data):
        iio.imwrite(folder / f"img.{i + 10:03d}.png", plane)
    return open_source([folder]), data


def png_single_16bit(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((21, 17), "uint16")
    iio.imwrite(tmp / "one.png", data)
    return open_source([tmp / "one.png"]), data[np.newaxis]


def file_list(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((4, 12, 14), "float32")
    files = []
    for i, plane in enumerate(data):
        tifffile.imwrite(tmp / f"f{i}.tif", plane)
        files.append(tmp / f"f{i}.tif")
    return open_source(list(reversed(files))), data  # order comes from the numbers


def _dm(name: str) -> Case:
    def case(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
        from rsciio.digitalmicrograph import file_reader

        path = request.getfixturevalue("shared_data") / "dm" / name
        expected = np.asarray(file_reader(str(path), lazy=False)[0]["data"])
        if expected.ndim == 2:
            expected = expected[np.newaxis]
        return open_source([path]), expected

    return case


def bioio_tiff(tmp: Path, request: pytest.FixtureRequest) -> tuple[Source, np.ndarray]:
    data = _volume((3, 22, 26), "uint16")
    tifffile.imwrite(
        tmp / "bio.tif", data, imagej=True, resolution=(2.0, 2.0),
        metadata={"axes": "ZYX", "unit": "um", "spacing": 3.0},
    )
    return BioioReader.open(tmp / "bio.tif"), data


CASES: dict[str, Case] = {
    "tiff-2d": tiff_2d,
    "tiff-multipage": tiff_multipage,
    "tiff-compressed-tiled": tiff_compressed_tiled,
    "tiff-imagej-bigendian": tiff_imagej_bigendian,
    "tiff-rgb-grey": tiff_rgb_grey,
    "stack-tiff-folder": tiff_slices,
    "stack-png-folder": png_slices,
    "png-single-16bit": png_single_16bit,
    "stack-file-list": file_list,
    "dm4-3d": _dm("dmTest_3D_int16_64-65-66.dm4"),
    "dm3-3d": _dm("dmTest_3D_int16_64-65-66.dm3"),
    "dm4-2d": _dm("dmTest_float32_nonSquare_diffPixelSize.dm4"),
    "bioio-fallback": bioio_tiff,
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Source, np.ndarray]:
    source, expected = CASES[request.param](tmp_path, request)
    yield source, expected
    source.close()


def _regions(shape: tuple[int, int, int], n: int = 8) -> list[tuple[slice, slice, slice]]:
    rng = np.random.default_rng(sum(shape))
    out = [
        (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2])),
        (slice(shape[0] - 1, shape[0]), slice(shape[1] - 1, shape[1]), slice(0, shape[2])),
        (slice(0, 1), slice(0, 0), slice(0, shape[2])),  # empty
    ]
    for _ in range(n):
        starts = [int(rng.integers(0, s)) for s in shape]
        stops = [int(rng.integers(a + 1, s + 1)) for a, s in zip(starts, shape)]
        out.append(tuple(slice(a, b) for a, b in zip(starts, stops)))  # type: ignore[arg-type]
    return out


def test_header_matches_data(case):
    source, expected = case
    h = source.header
    assert h.shape == expected.shape
    assert len(h.shape) == 3
    assert np.dtype(h.dtype) == expected.dtype.newbyteorder("=")
    assert source.dtype == np.dtype(h.dtype)
    assert len(h.voxel_size_nm) == 3
    assert all(v is None or (isinstance(v, float) and v > 0) for v in h.voxel_size_nm)
    assert all(isinstance(n, str) for n in h.notes)
    json.dumps(h.raw)
    json.dumps(h.fields)
    assert all(p.exists() for p in source.paths)


def test_full_read_equals_expected(case):
    source, expected = case
    full = source.read(tuple(slice(0, n) for n in source.shape))
    assert full.dtype == source.dtype
    assert full.flags.c_contiguous
    np.testing.assert_array_equal(full, expected)


def test_region_reads_equal_full_read_sliced(case):
    source, expected = case
    for region in _regions(source.shape):
        part = source.read(region)
        assert part.shape == tuple(s.stop - s.start for s in region)
        assert part.dtype == source.dtype
        np.testing.assert_array_equal(part, expected[region])


def test_pickle_round_trip_reads_the_same(case):
    source, expected = case
    region = _regions(source.shape, 1)[-1]
    before = source.read(region)  # opens handles; pickling must drop them
    clone = pickle.loads(pickle.dumps(source))
    assert clone.header == source.header
    assert clone.paths == source.paths
    np.testing.assert_array_equal(clone.read(region), before)
    clone.close()


def test_close_then_read_reopens(case):
    source, expected = case
    region = (slice(0, 1), slice(0, 2), slice(0, 2))
    source.read(region)
    source.close()
    source.close()
    np.testing.assert_array_equal(source.read(region), expected[region])


def test_bad_regions_are_refused(case):
    source, _ = case
    z, y, x = source.shape
    for region in (
        (slice(0, z + 1), slice(0, y), slice(0, x)),
        (slice(0, z), slice(-1, y), slice(0, x)),
        (slice(0, z), slice(0, y), slice(0, x, 2)),
        (slice(0, z), slice(0, y)),
    ):
        with pytest.raises(ValueError):
            source.read(region)  # type: ignore[arg-type]


def _read_in_worker(source: Source, region: tuple[slice, slice, slice]) -> np.ndarray:
    return source.read(region)


@pytest.mark.parametrize("name", ["tiff-multipage", "stack-png-folder", "tiff-compressed-tiled"])
def test_sources_read_in_another_process(name, tmp_path, request):
    source, expected = CASES[name](tmp_path, request)
    source.read((slice(0, 1), slice(0, 1), slice(0, 1)))  # a handle is open in this process
    region = (slice(1, 3), slice(2, 9), slice(3, 11))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        result = pool.submit(_read_in_worker, source, region).result(timeout=60)
    np.testing.assert_array_equal(result, expected[region])
