"""TIFF files: real FEI / Zeiss / ImageJ / DM-saved fixtures, and generated edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from curation.errors import CorruptSourceError, SourceError
from curation.readers import TiffReader, TiffSource, get_reader, open_source


def _full(source) -> np.ndarray:
    return source.read(tuple(slice(0, n) for n in source.shape))


# --- real instrument files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiffs(shared_data: Path) -> Path:
    return shared_data / "tiff"


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name, shape, dtype",
    [
        ("FEI-Helios-Ebeam-16bits.tif", (1, 471, 512), "uint16"),
        ("FEI-Helios-Ebeam-8bits.tif", (1, 471, 512), "uint8"),
    ],
)
def test_fei_helios_ebeam(tiffs, name, shape, dtype):
    src = open_source([tiffs / name])
    h = src.header
    assert isinstance(src, TiffSource)
    assert src.layout.memmappable
    assert (h.shape, h.dtype) == (shape, dtype)
    assert h.vendor == "FEI"
    assert h.voxel_size_nm[0] is None
    assert h.voxel_size_nm[1:] == pytest.approx((3372.4, 3372.4))  # Scan.PixelWidth 3.3724e-06 m
    f = h.fields
    assert f["acquisition.beam_energy_kv"] == pytest.approx(5.0)  # Beam.HV 5000 V
    assert f["acquisition.beam_current_na"] == pytest.approx(0.00625)  # EBeam.BeamCurrent 6.25e-12 A
    assert f["acquisition.dwell_time_us"] == pytest.approx(10.0)  # Scan.Dwelltime 1e-05 s
    assert f["acquisition.instrument.manufacturer"] == "FEI"
    assert f["acquisition.instrument.model"] == "Helios NanoLab 660"
    assert f["acquisition.detector"] == "ETD"
    assert f["acquisition.date"] == "2016-06-13"
    assert "acquisition.technique" not in f
    assert h.raw["fei_metadata"]["System"]["Dnumber"] == 9922607
    assert any("data bar" in n for n in h.notes)
    np.testing.assert_array_equal(_full(src)[0], tifffile.imread(tiffs / name))


@pytest.mark.shared_data
def test_fei_bad_floats_are_skipped_with_notes(tiffs):
    h = open_source([tiffs / "FEI-Helios-navcam-with-no-IRBeam-bad-floats.tif"]).header
    assert h.shape == (1, 551, 768)
    assert "acquisition.beam_energy_kv" not in h.fields
    assert any("Beam.HV" in n and "corrupt" in n and "notafloat" in n for n in h.notes)
    assert any("Stage.WorkingDistance" in n for n in h.notes)
    assert h.voxel_size_nm == (None, None, None)  # no Scan section, no IRBeam: uncalibrated
    assert h.fields["acquisition.detector"] == "Nav-Cam"


@pytest.mark.shared_data
def test_fei_navcam_images_read(tiffs):
    plain = open_source([tiffs / "FEI-Helios-navcam-with-no-IRBeam.tif"])
    assert plain.header.voxel_size_nm == (None, None, None)
    assert not any("corrupt" in n for n in plain.header.notes)
    with_ir = open_source([tiffs / "FEI-Helios-navcam.tif"])
    # IRBeam.HFW 0.202732 m over 768 pixels
    assert with_ir.header.voxel_size_nm[2] == pytest.approx(0.202732 / 768 * 1e9)
    np.testing.assert_array_equal(_full(with_ir)[0], tifffile.imread(tiffs / "FEI-Helios-navcam.tif"))


@pytest.mark.shared_data
def test_zeiss_sem(tiffs):
    src = open_source([tiffs / "test_tiff_Zeiss_SEM_512pix.tif"])
    h = src.header
    assert (h.shape, h.dtype, h.vendor) == ((1, 384, 512), "uint8", "Zeiss")
    assert h.voxel_size_nm[1:] == pytest.approx((11.65, 11.65), rel=1e-3)
    f = h.fields
    assert f["acquisition.beam_energy_kv"] == pytest.approx(5.0)  # ap_actualkv
    assert f["acquisition.instrument.manufacturer"] == "Zeiss"
    assert f["acquisition.instrument.model"] == "ULTRA 55"  # from sv_serial_number
    assert f["acquisition.detector"] == "InLens"
    assert f["acquisition.date"] == "2018-09-25"
    assert "acquisition.beam_current_na" not in f  # ap_actualcurrent is the filament current
    assert any("palette" in n for n in h.notes)
    np.testing.assert_array_equal(_full(src)[0], tifffile.imread(tiffs / "test_tiff_Zeiss_SEM_512pix.tif"))


@pytest.mark.shared_data
def test_imagej_stack(tiffs):
    src = open_source([tiffs / "test_loading_image_saved_with_imageJ_stack.tif"])
    h = src.header
    assert (h.shape, h.dtype) == ((2, 68, 68), "float32")
    # spacing 2.5 micron; XResolution 5.928571 pixels per micron
    assert h.voxel_size_nm == pytest.approx((2500.0, 168.6747, 168.6747), rel=1e-5)
    assert h.raw["imagej_metadata"]["unit"] == "micron"


@pytest.mark.shared_data
def test_dm_saved_stack(tiffs):
    src = open_source([tiffs / "test_loading_image_saved_with_DM_stack.tif"])
    h = src.header
    assert (h.shape, h.dtype, h.vendor) == ((2, 68, 68), "float32", "Gatan")
    assert not src.layout.memmappable  # pages with tags between them: read via zarr
    assert h.voxel_size_nm[0] is None  # z is calibrated in seconds
    assert h.voxel_size_nm[1:] == pytest.approx((1686.74, 168.674), rel=1e-5)
    assert any("'s'" in n for n in h.notes)
    ij = open_source([tiffs / "test_loading_image_saved_with_imageJ_stack.tif"])
    np.testing.assert_array_equal(_full(src), _full(ij))


# --- generated edge cases ----------------------------------------------------------------------


def test_rgb_with_equal_channels_reads_one_channel(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    tifffile.imwrite(tmp_path / "rgb.tif", np.dstack([grey] * 3), photometric="rgb")
    src = open_source([tmp_path / "rgb.tif"])
    assert src.header.shape == (1, 12, 10)
    assert any("RGB" in n for n in src.header.notes)
    np.testing.assert_array_equal(_full(src)[0], grey)


def test_rgb_with_different_channels_is_refused(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 7
    tifffile.imwrite(tmp_path / "colour.tif", rgb, photometric="rgb")
    with pytest.raises(SourceError, match="colour") as e:
        open_source([tmp_path / "colour.tif"])
    assert "colour.tif" in str(e.value)


def test_rgb_stack_differing_later_is_refused_when_read(tmp_path):
    rgb = np.zeros((3, 8, 8, 3), np.uint8)
    rgb[2, 0, 0, 2] = 9  # only the last page differs
    tifffile.imwrite(tmp_path / "late.tif", rgb, photometric="rgb")
    src = open_source([tmp_path / "late.tif"])
    np.testing.assert_array_equal(src.read((slice(0, 2), slice(0, 8), slice(0, 8))), 0)
    with pytest.raises(SourceError, match="colour channels differ"):
        src.read((slice(2, 3), slice(0, 8), slice(0, 8)))


def test_rgba_opaque_accepted_transparent_refused(tmp_path):
    rgba = np.full((6, 6, 4), 255, np.uint8)
    rgba[..., :3] = 40
    tifffile.imwrite(tmp_path / "opaque.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert _full(open_source([tmp_path / "opaque.tif"])).max() == 40
    rgba[0, 0, 3] = 0
    tifffile.imwrite(tmp_path / "clear.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    with pytest.raises(SourceError, match="alpha"):
        open_source([tmp_path / "clear.tif"])


def test_planar_rgb_equal_channels(tmp_path):
    grey = np.arange(30, dtype=np.uint16).reshape(5, 6)
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([grey] * 3), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(_full(open_source([tmp_path / "planar.tif"]))[0], grey)


def test_complex_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "fft.tif", np.zeros((4, 4), np.complex64))
    with pytest.raises(SourceError, match="complex data cannot be ingested as an EM image"):
        open_source([tmp_path / "fft.tif"])


def test_multichannel_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "ch.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(SourceError, match="multi-channel") as e:
        open_source([tmp_path / "ch.tif"])
    assert "2 channels" in str(e.value)


def test_two_stack_axes_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "tz.tif", np.zeros((2, 3, 8, 8), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(SourceError, match="more than one stack axis"):
        open_source([tmp_path / "tz.tif"])


def test_time_axis_alone_becomes_z_with_a_note(tmp_path):
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((4, 8, 8), np.uint8), imagej=True, metadata={"axes": "TYX"})
    src = open_source([tmp_path / "t.tif"])
    assert src.shape == (4, 8, 8)
    assert any("'T'" in n for n in src.header.notes)


def test_pyramid_reads_level_0(tmp_path):
    base = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    with tifffile.TiffWriter(tmp_path / "pyr.tif") as w:
        w.write(base, subifds=1, tile=(16, 16))
        w.write(base[::2, ::2], subfiletype=1, tile=(16, 16))
    src = open_source([tmp_path / "pyr.tif"])
    assert src.shape == (1, 64, 64)
    assert any("level 0" in n for n in src.header.notes)
    np.testing.assert_array_equal(src.read((slice(0, 1), slice(10, 40), slice(5, 60)))[0], base[10:40, 5:60])


def test_multi_series_reads_series_0(tmp_path):
    first = np.full((10, 12), 3, np.uint8)
    with tifffile.TiffWriter(tmp_path / "two.tif") as w:
        w.write(first)
        w.write(np.zeros((5, 5), np.uint16))
    src = open_source([tmp_path / "two.tif"])
    assert (src.shape, src.header.dtype) == ((1, 10, 12), "uint8")
    assert any("series 0" in n for n in src.header.notes)
    np.testing.assert_array_equal(_full(src)[0], first)


def test_bilevel_becomes_uint8(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], bool)
    tifffile.imwrite(tmp_path / "bits.tif", bits)
    src = open_source([tmp_path / "bits.tif"])
    assert src.header.dtype == "uint8"
    np.testing.assert_array_equal(_full(src)[0], bits.astype(np.uint8))


def test_resolution_in_centimetres_is_a_pixel_size(tmp_path):
    # 2e5 pixels per cm = 50 nm pixels in x, 1e5 per cm = 100 nm in y
    tifffile.imwrite(tmp_path / "cm.tif", np.zeros((4, 4), np.uint8), resolution=(2e5, 1e5), resolutionunit="CENTIMETER")
    assert open_source([tmp_path / "cm.tif"]).header.voxel_size_nm == pytest.approx((None, 100.0, 50.0))


def test_resolution_in_inches_is_not_a_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "dpi.tif", np.zeros((4, 4), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    h = open_source([tmp_path / "dpi.tif"]).header
    assert h.voxel_size_nm == (None, None, None)
    assert any("dots per inch" in n for n in h.notes)


def test_plain_tiff_has_no_invented_voxel_size(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 4, 4), np.uint8), photometric="minisblack")
    assert open_source([tmp_path / "plain.tif"]).header.voxel_size_nm == (None, None, None)


def test_ome_tiff_physical_sizes(tmp_path):
    tifffile.imwrite(
        tmp_path / "vol.ome.tif", np.zeros((3, 8, 8), np.uint8),
        metadata={"axes": "ZYX", "PhysicalSizeX": 5.0, "PhysicalSizeXUnit": "nm",
                  "PhysicalSizeY": 6.0, "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.03},  # Z: µm default
    )
    h = open_source([tmp_path / "vol.ome.tif"]).header
    assert h.voxel_size_nm == pytest.approx((30.0, 6.0, 5.0))


def test_truncated_tiff_is_corrupt(tmp_path):
    tifffile.imwrite(tmp_path / "whole.tif", np.ones((4, 64, 64), np.uint16), photometric="minisblack")
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSourceError, match="cut.tif"):
        open_source([tmp_path / "cut.tif"])
    tifffile.imwrite(tmp_path / "z.tif", np.ones((64, 64), np.uint16), compression="zlib")
    data = (tmp_path / "z.tif").read_bytes()
    (tmp_path / "zcut.tif").write_bytes(data[:-20])
    with pytest.raises(CorruptSourceError, match="zcut.tif"):
        open_source([tmp_path / "zcut.tif"])


def test_not_a_tiff_with_tiff_suffix_is_corrupt(tmp_path):
    (tmp_path / "fake.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(CorruptSourceError, match="fake.tif"):
        open_source([tmp_path / "fake.tif"])


def test_tiff_without_suffix_is_found_by_magic(tmp_path):
    tifffile.imwrite(tmp_path / "noext", np.zeros((4, 5), np.uint8))
    assert get_reader(tmp_path / "noext") is TiffReader
    assert open_source([tmp_path / "noext"]).shape == (1, 4, 5)


def test_uncompressed_is_memory_mapped_compressed_is_not(tmp_path):
    tifffile.imwrite(tmp_path / "raw.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    tifffile.imwrite(
        tmp_path / "zip.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack", compression="zlib"
    )
    assert open_source([tmp_path / "raw.tif"]).layout.memmappable
    assert not open_source([tmp_path / "zip.tif"]).layout.memmappable


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_region_read_does_not_decode_the_volume(tmp_path, compression):
    import tracemalloc

    volume = np.arange(32 * 256 * 256, dtype=np.uint16).reshape(32, 256, 256)  # 4 MiB
    tifffile.imwrite(tmp_path / "big.tif", volume, photometric="minisblack", compression=compression,
                     tile=(64, 64) if compression else None)
    src = open_source([tmp_path / "big.tif"])
    src.read((slice(0, 1), slice(0, 1), slice(0, 1)))  # warm up handles and imports
    tracemalloc.start()
    try:
        part = src.read((slice(5, 7), slice(64, 128), slice(0, 64)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(part, volume[5:7, 64:128, 0:64])
    assert peak < 1 << 20, f"a 16 KiB region read allocated {peak} bytes"
