"""DigitalMicrograph files: every real fixture is read correctly or refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from curation.errors import CorruptSourceError, NotAnImageError, SourceError
from curation.readers import DMReader, DMSource, get_reader, open_source

pytestmark = pytest.mark.shared_data

FULL = (slice(None), slice(None), slice(None))

# DM data type → (numpy dtype read, or None when refused)
ACCEPTED_TYPES = {1: "int16", 2: "float32", 6: "uint8", 7: "int32", 9: "int8", 10: "uint16",
                  11: "uint32", 12: "float64", 14: "uint8"}
COMPLEX_TYPES = (3, 5, 13, 27, 28)
RGB_TYPES = (8, 23)


@pytest.fixture(scope="module")
def dm(shared_data: Path) -> Path:
    return shared_data / "dm"


def _full(source) -> np.ndarray:
    return source.read(tuple(slice(0, n) for n in source.shape))


def test_3d_stack_shape_dtype_and_units(dm):
    for suffix in ("dm4", "dm3"):
        src = open_source([dm / f"dmTest_3D_int16_64-65-66.{suffix}"])
        assert isinstance(src, DMSource)
        h = src.header
        assert h.shape == (66, 65, 64)
        assert h.dtype == "int16"
        # z 4 µm, y 3 nm, x 2 pm
        assert h.voxel_size_nm == pytest.approx((4000.0, 3.0, 0.002))
        assert h.vendor == "Gatan"


def test_3d_values_match_rosettasciio(dm):
    from rsciio.digitalmicrograph import file_reader

    path = dm / "dmTest_3D_int16_64-65-66.dm4"
    expected = np.asarray(file_reader(str(path))[0]["data"])
    src = open_source([path])
    np.testing.assert_array_equal(src.read((slice(10, 12), slice(5, 40), slice(0, 64))), expected[10:12, 5:40])


def test_2d_nonsquare_angstrom_and_nm(dm):
    for suffix in ("dm4", "dm3"):
        h = open_source([dm / f"dmTest_float32_nonSquare_diffPixelSize.{suffix}"]).header
        assert h.shape == (1, 64, 128)
        assert h.dtype == "float32"
        assert h.voxel_size_nm[0] is None  # a 2D image has no z calibration
        assert h.voxel_size_nm[1:] == pytest.approx((0.2, 1.0))  # y = 2 Å, x = 1 nm


@pytest.mark.parametrize("suffix", ["dm3", "dm4"])
@pytest.mark.parametrize("dm_type", sorted(ACCEPTED_TYPES))
def test_accepted_data_types_read_values_in_order(dm, dm_type, suffix):
    src = open_source([dm / "dtypes-2d" / f"test-{dm_type}.{suffix}"])
    assert src.header.shape == (1, 2, 2)
    assert src.header.dtype == ACCEPTED_TYPES[dm_type]
    assert src.header.voxel_size_nm == (None, None, None)  # uncalibrated: units '' scale 1
    data = _full(src)
    if dm_type == 14:
        np.testing.assert_array_equal(data, np.ones((1, 2, 2), np.uint8))
        assert any("bool" in n for n in src.header.notes)
    else:
        np.testing.assert_array_equal(data, np.array([[[1, 2], [3, 4]]], dtype=data.dtype))


@pytest.mark.parametrize("dm_type", COMPLEX_TYPES)
def test_complex_types_are_refused(dm, dm_type):
    for path in sorted((dm / "dtypes-2d").glob(f"test-{dm_type}.dm*")):
        with pytest.raises(SourceError, match="complex data cannot be ingested as an EM image") as e:
            open_source([path])
        assert path.name in str(e.value)


@pytest.mark.parametrize("dm_type", RGB_TYPES)
def test_rgb_types_are_refused(dm, dm_type):
    for path in sorted((dm / "dtypes-2d").glob(f"test-{dm_type}.dm*")):
        with pytest.raises(SourceError, match="RGB") as e:
            open_source([path])
        assert "greyscale" in str(e.value)
        assert path.name in str(e.value)


def test_eels_spectrum_image_is_not_an_image(dm):
    with pytest.raises(NotAnImageError) as e:
        open_source([dm / "EELS_SI.dm4"])
    message = str(e.value)
    assert "EELS_SI.dm4" in message
    assert "EELS" in message
    assert "spectrum" in message


def test_multi_signal_reads_the_image_and_notes_the_plot(dm):
    src = open_source([dm / "multi_signal.dm3"])
    h = src.header
    assert h.shape == (1, 512, 512)
    assert h.dtype == "uint16"
    assert h.voxel_size_nm[1:] == pytest.approx((0.017751578, 0.017751578))
    assert any("skipped" in n and "plot" in n for n in h.notes)
    assert h.fields["acquisition.beam_energy_kv"] == pytest.approx(300.0)
    assert h.fields["acquisition.date"] == "2019-12-10"
    assert _full(src).shape == (1, 512, 512)


def test_monarc_cl_gatan_and_zeiss_tags_become_fields(dm):
    h = open_source([dm / "test-MonarcCL_mono-image.dm4"]).header
    assert h.shape == (1, 2, 2)
    assert h.dtype == "uint16"
    assert h.voxel_size_nm[1:] == pytest.approx((18325.3498, 18325.3498))
    f = h.fields
    assert f["acquisition.beam_energy_kv"] == pytest.approx(3.0)  # Microscope Info.Voltage 3000 V
    assert f["acquisition.instrument.manufacturer"] == "Zeiss"  # 'Zeiss SEM COM'
    assert f["acquisition.dwell_time_us"] == pytest.approx(10.0)  # DigiScan Sample Time
    assert f["acquisition.date"] == "2021-05-14"
    assert "acquisition.beam_current_na" not in f  # Probe Current 0.0: not recorded
    assert "acquisition.technique" not in f
    tags = h.raw["ImageTags"]
    assert tags["Microscope Info"]["Name"] == "Zeiss SEM COM"


def test_diffraction_pattern_without_tags_has_no_voxel_size(dm):
    h = open_source([dm / "test_diffraction_pattern_tags_removed.dm3"]).header
    assert h.shape == (1, 87, 87)
    assert h.dtype == "int32"
    assert h.voxel_size_nm == (None, None, None)  # 1/nm is reciprocal space, not a length
    assert any("1/nm" in n for n in h.notes)


def test_every_fixture_is_read_or_refused_clearly(dm):
    for path in sorted(dm.rglob("*.dm?")):
        try:
            src = open_source([path])
        except SourceError as e:
            assert path.name in str(e)
            assert not isinstance(e, CorruptSourceError), f"{path.name} is not corrupt: {e}"
            continue
        data = src.read((slice(0, 1), slice(0, min(2, src.shape[1])), slice(0, min(2, src.shape[2]))))
        assert data.dtype == src.dtype


# --- damaged files (copies in tmp_path) ----------------------------------------------------------


def test_truncated_dm4_is_corrupt(dm, tmp_path):
    original = (dm / "dmTest_3D_int16_64-65-66.dm4").read_bytes()
    for keep in (len(original) // 2, len(original) - 200, 300, 10):
        bad = tmp_path / f"cut_{keep}.dm4"
        bad.write_bytes(original[:keep])
        with pytest.raises(CorruptSourceError) as e:
            open_source([bad])
        assert bad.name in str(e.value)


def test_header_overwritten_dm4_is_corrupt(dm, tmp_path):
    original = bytearray((dm / "dmTest_float32_nonSquare_diffPixelSize.dm4").read_bytes())
    damaged = bytearray(original)
    damaged[0:8] = b"\xde\xad\xbe\xef\xde\xad\xbe\xef"
    bad = tmp_path / "bad_header.dm4"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(CorruptSourceError, match="bad_header.dm4"):
        open_source([bad])


def test_tag_area_overwritten_dm4_is_corrupt(dm, tmp_path):
    original = bytearray((dm / "dmTest_float32_nonSquare_diffPixelSize.dm4").read_bytes())
    damaged = bytearray(original)
    damaged[16:64] = b"\xff" * 48  # the root tag group's header and first tags
    bad = tmp_path / "bad_tags.dm4"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(CorruptSourceError, match="bad_tags.dm4"):
        open_source([bad])


def test_not_dm_content_with_dm_suffix_is_corrupt(tmp_path):
    fake = tmp_path / "fake.dm3"
    fake.write_bytes(b"this is a text file, not a micrograph" * 10)
    with pytest.raises(CorruptSourceError, match="fake.dm3"):
        open_source([fake])
    empty = tmp_path / "empty.dm4"
    empty.write_bytes(b"")
    with pytest.raises(CorruptSourceError, match="empty.dm4"):
        open_source([empty])


def test_dm_file_without_suffix_is_found_by_its_header(dm, tmp_path):
    copy = tmp_path / "micrograph"
    shutil.copyfile(dm / "dtypes-2d" / "test-1.dm4", copy)
    assert get_reader(copy) is DMReader
    assert open_source([copy]).header.shape == (1, 2, 2)


def test_missing_dm_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        open_source([tmp_path / "absent.dm4"])


def _forged_dm4(path: Path, n_elements: int) -> Path:
    """A DM4 whose one data tag is an array of ``n_elements`` structs of no fields: each
    element reads no byte, so a reader that builds the array element by element loops
    (found by atheris on a real file's tags)."""
    import struct

    tag = struct.pack(">bH", 21, 3) + b"Bad" + struct.pack(">Q", 0) + b"%%%%"
    tag += struct.pack(">QQQ", 5, 20, 15)  # infoarray: array of ... structs
    tag += struct.pack(">QQ", 0, 0)  # struct definition: name length 0, no fields
    tag += struct.pack(">Q", n_elements) + b"\0" * 64
    body = struct.pack(">bbQ", 1, 0, 1) + tag
    path.write_bytes(struct.pack(">iQi", 4, len(body), 1) + body)
    return path


def test_tag_array_longer_than_the_file_is_refused_fast(tmp_path):
    import time

    path = _forged_dm4(tmp_path / "forged.dm4", 10**12)
    start = time.monotonic()
    with pytest.raises(CorruptSourceError, match="claims an array longer than the file") as info:
        open_source(path)
    assert time.monotonic() - start < 10
    assert "\n" not in str(info.value) and "10000" in str(info.value)
