"""Dispatch: get_reader, open_source, registered and entry-point readers, bioio fallback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from curation.errors import SourceError, UnsupportedSourceError
from curation.readers import (
    BioioReader,
    DMReader,
    HeaderMetadata,
    PngReader,
    Reader,
    Source,
    StackReader,
    TiffReader,
    get_reader,
    normalize_region,
    open_source,
    plugin_errors,
    readers,
    register_reader,
    reload_plugins,
    unregister_reader,
)

# A tiny real format for plugin tests: 'RAW8' magic, z, y, x as uint32, then uint8 voxels.
RAW_FORMAT = '''
from pathlib import Path
import numpy as np
from curation.readers.base import HeaderMetadata, Reader, Source, normalize_region


class RawSource(Source):
    reader = "{name}"

    def __init__(self, path):
        self._path = Path(path)
        shape = tuple(int(v) for v in np.fromfile(self._path, "<u4", 3, offset=4))
        self._header = HeaderMetadata(shape=shape, dtype="uint8")

    @property
    def paths(self):
        return [self._path]

    @property
    def header(self):
        return self._header

    def read(self, region):
        region = normalize_region(region, self.shape)
        mm = np.memmap(self._path, np.uint8, "r", offset=16, shape=self.shape)
        return np.array(mm[region])


class RawReader(Reader):
    name = "{name}"
    suffixes = ("{suffix}",)

    @classmethod
    def is_supported(cls, path):
        return Path(path).suffix == "{suffix}"

    @classmethod
    def open(cls, path):
        return RawSource(path)
'''


def _write_raw(path: Path, data: np.ndarray) -> None:
    path.write_bytes(b"RAW8" + np.array(data.shape, "<u4").tobytes() + data.astype(np.uint8).tobytes())


namespace: dict = {}
exec(textwrap.dedent(RAW_FORMAT.format(name="raw-registered", suffix=".rawr")), namespace)  # noqa: S102
RegisteredReader = namespace["RawReader"]


def test_builtin_dispatch_by_suffix(tmp_path):
    for name, reader in (("a.dm3", DMReader), ("a.DM4", DMReader), ("a.tif", TiffReader),
                         ("a.TIFF", TiffReader), ("a.png", PngReader)):
        (tmp_path / name).write_bytes(b"x")
        assert get_reader(tmp_path / name) is reader
    assert get_reader(tmp_path) is StackReader


def test_unknown_format_is_unsupported_with_a_hint(tmp_path):
    (tmp_path / "scan.xyz").write_bytes(b"nothing known")
    with pytest.raises(UnsupportedSourceError) as e:
        open_source([tmp_path / "scan.xyz"])
    assert "scan.xyz" in str(e.value) and "bioio" in str(e.value)


def test_missing_path_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        get_reader(tmp_path / "absent.xyz")
    with pytest.raises(SourceError, match="file not found"):
        open_source([tmp_path / "a.tif", tmp_path / "b.tif"])
    with pytest.raises(SourceError):
        open_source([])


def test_open_source_accepts_str_and_path(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((3, 4), np.uint8))
    assert open_source(str(tmp_path / "a.tif")).shape == (1, 3, 4)
    assert open_source([str(tmp_path / "a.tif")]).shape == (1, 3, 4)
    iio.imwrite(tmp_path / "b.png", np.zeros((5, 6), np.uint8))
    assert open_source(tmp_path / "b.png").shape == (1, 5, 6)


def test_registered_reader_is_used(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_raw(tmp_path / "v.rawr", data)
    with pytest.raises(UnsupportedSourceError):
        open_source([tmp_path / "v.rawr"])
    register_reader(RegisteredReader)
    try:
        assert readers().index(RegisteredReader) > readers().index(PngReader)
        assert readers()[-1] is BioioReader
        src = open_source([tmp_path / "v.rawr"])
        np.testing.assert_array_equal(src.read((slice(0, 2), slice(0, 3), slice(1, 3))), data[:, :, 1:3])
    finally:
        unregister_reader(RegisteredReader)
    assert RegisteredReader not in readers()
    with pytest.raises(TypeError):
        register_reader(int)  # type: ignore[arg-type]


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """An installed distribution (a real .dist-info on sys.path) declaring reader entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "curation_raw_plugin.py").write_text(textwrap.dedent(RAW_FORMAT.format(name="raw8", suffix=".raw8")))
    info = site / "curation_raw_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: curation-raw-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[curation.readers]\n"
        "raw8 = curation_raw_plugin:RawReader\n"
        "broken = curation_no_such_module:Reader\n"
        "notareader = curation_raw_plugin:np\n"
    )
    monkeypatch.syspath_prepend(str(site))
    reload_plugins()
    yield site
    monkeypatch.undo()
    reload_plugins()


def test_entry_point_reader_plugs_in(plugin_dist, tmp_path):
    data = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    _write_raw(tmp_path / "v.raw8", data)
    assert any(r.name == "raw8" for r in readers())
    src = open_source([tmp_path / "v.raw8"])
    assert src.reader == "raw8"
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 2), slice(0, 2))), data)
    errors = plugin_errors()
    assert any(e.startswith("broken") for e in errors)
    assert any(e.startswith("notareader") for e in errors)
    # broken plugins do not stop the built-ins
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((2, 2), np.uint8))
    assert open_source([tmp_path / "a.tif"]).shape == (1, 2, 2)
    (tmp_path / "x.unknown").write_bytes(b"?")
    with pytest.raises(UnsupportedSourceError, match="broken"):
        open_source([tmp_path / "x.unknown"])


def test_bioio_fallback_claims_only_plugin_formats(tmp_path):
    (tmp_path / "a.tif").write_bytes(b"x")
    (tmp_path / "a.xyz").write_bytes(b"x")
    assert BioioReader.is_supported(tmp_path / "a.tif")  # bioio-tifffile is installed
    assert not BioioReader.is_supported(tmp_path / "a.xyz")


def test_bioio_reduces_to_zyx_and_does_not_invent_units(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "v.tif", data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 3.0})
    src = BioioReader.open(tmp_path / "v.tif")
    assert src.shape == (3, 4, 5)
    assert src.reader == "bioio"
    if src.header.voxel_size_nm == (None, None, None):  # bioio gave no units: nothing invented
        assert any("without units" in n for n in src.header.notes)
    else:  # a plugin that reports units
        assert src.header.voxel_size_nm == pytest.approx((3000.0, 500.0, 500.0))
    np.testing.assert_array_equal(src.read((slice(1, 3), slice(0, 4), slice(2, 5))), data[1:3, :, 2:5])


def test_bioio_refuses_multichannel(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 2, 4, 5), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(SourceError, match="multi-channel"):
        BioioReader.open(tmp_path / "c.tif")


def test_public_names():
    assert issubclass(DMReader, Reader)
    assert HeaderMetadata((1, 1, 1), "uint8").voxel_size_nm == (None, None, None)
    assert normalize_region((slice(None), slice(1, None), slice(0, 2)), (2, 3, 4)) == (
        slice(0, 2), slice(1, 3), slice(0, 2))
    assert Source.__abstractmethods__


def test_png_without_suffix_is_found_by_signature(tmp_path):
    iio.imwrite(tmp_path / "a.png", np.full((3, 4), 9, np.uint8))
    (tmp_path / "a.png").rename(tmp_path / "scan_0001")
    assert get_reader(tmp_path / "scan_0001") is PngReader
    assert open_source([tmp_path / "scan_0001"]).read((slice(0, 1), slice(0, 3), slice(0, 4))).max() == 9


def test_file_list_with_a_non_slice_file_is_refused(tmp_path):
    iio.imwrite(tmp_path / "s1.png", np.zeros((3, 4), np.uint8))
    (tmp_path / "s2.txt").write_text("hello")
    with pytest.raises(SourceError, match="s2.txt"):
        open_source([tmp_path / "s1.png", tmp_path / "s2.txt"])
