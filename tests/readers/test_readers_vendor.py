"""Units, dates and vendor tag mapping (pure functions, no files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.readers.vendor import (
    as_float,
    fei_info,
    filetime_date,
    gatan_info,
    jsonable,
    length_nm,
    parse_text_date,
    unit_kind,
    zeiss_info,
)


@pytest.mark.parametrize(
    "value, unit, nm",
    [
        (4, "µm", 4000.0), (4, "μm", 4000.0), (4, "um", 4000.0), (4, "micron", 4000.0),
        (4, "microns", 4000.0), (4, "\\u00B5m", 4000.0), (3, "nm", 3.0), (2, "Å", 0.2),
        (2, "A", 0.2), (2, "angstrom", 0.2), (2, "pm", 0.002), (1e-9, "m", 1.0),
        ("5.5", " nm ", 5.5), (1, "mm", 1e6),
    ],
)
def test_length_units(value, unit, nm):
    assert length_nm(value, unit) == pytest.approx(nm)


@pytest.mark.parametrize(
    "value, unit",
    [(1, ""), (1, "<undefined>"), (1, None), (1, []), (1, "pixel"), (0.17, "1/nm"), (1, "eV"),
     (2.5, "s"), ("nan", "nm"), ("notafloat", "nm"), (0, "nm"), (-1, "nm"), (float("inf"), "nm")],
)
def test_unusable_lengths_are_none(value, unit):
    assert length_nm(value, unit) is None


def test_unit_kind():
    assert unit_kind("nm") == "length"
    assert unit_kind("<undefined>") == "none"
    assert unit_kind("1/nm") == "other"


def test_as_float():
    assert as_float("1e-5") == 1e-5
    assert as_float(np.float32(2)) == 2.0
    assert as_float(True) is None
    assert as_float("") is None


def test_dates():
    assert parse_text_date("25 Sep 2018").isoformat() == "2018-09-25"
    assert parse_text_date("2020-01-02T10:00").isoformat() == "2020-01-02"
    assert filetime_date(1.3265491267019552e17).isoformat() == "2021-05-14"
    assert filetime_date(0) is None


def test_jsonable():
    raw = {
        "a": np.int64(3), "b": np.float32(1.5), "c": b"text\x00", "d": np.arange(3),
        "e": np.zeros(10_000), "f": (1, 2), "g": {"h": float("nan")}, "i": b"\xff\xfe\x00" * 10_000,
    }
    out = jsonable(raw)
    json.dumps(out)
    assert out["a"] == 3 and out["b"] == 1.5 and out["c"] == "text" and out["d"] == [0, 1, 2]
    assert isinstance(out["e"], str) and "array" in out["e"]
    assert out["g"]["h"] == "nan"


def test_fei_corrupt_values_are_noted_not_used():
    md = {
        "Beam": {"Beam": "EBeam", "HV": "nan"},
        "EBeam": {"BeamCurrent": "garbage", "HV": 2000},
        "Scan": {"PixelWidth": 5e-9, "PixelHeight": 6e-9, "Dwelltime": 3e-6},
        "User": {"Date": "02/03/2021"},
        "PrivateFei": {"TimeOfCreation": "03.02.2021 10:00:00"},
    }
    info = fei_info(md, (10, 10))
    assert info.pixel_yx_nm == pytest.approx((6.0, 5.0))
    assert info.fields["acquisition.beam_energy_kv"] == pytest.approx(2.0)  # from EBeam.HV
    assert "acquisition.beam_current_na" not in info.fields
    assert info.fields["acquisition.dwell_time_us"] == pytest.approx(3.0)
    assert info.fields["acquisition.date"] == "2021-02-03"  # month first, confirmed by TimeOfCreation
    assert any("Beam.HV" in n for n in info.notes)
    assert any("EBeam.BeamCurrent" in n for n in info.notes)


def test_zeiss_probe_current_and_dwell_units():
    md = {
        "ap_iprobe": ("I Probe", 200.0, "pA"),
        "ap_manualkv": ("EHT Target", 1.5, "kV"),
        "ap_dwell_time": ("Dwell Time", 100.0, "ns"),
        "ap_pixel_size": ("Pixel Size", 4.0, "nm"),
        "ap_width": ("Width", 4.096, "µm"),
        "dp_detector_type": ("Detector", "SE2"),
        "ap_date": ("Date", "1 Feb 2022"),
    }
    info = zeiss_info(md, (1024, 1024))
    f = info.fields
    assert f["acquisition.beam_current_na"] == pytest.approx(0.2)
    assert f["acquisition.beam_energy_kv"] == pytest.approx(1.5)
    assert f["acquisition.dwell_time_us"] == pytest.approx(0.1)
    assert f["acquisition.detector"] == "SE2"
    assert f["acquisition.date"] == "2022-02-01"
    assert info.pixel_yx_nm == pytest.approx((4.0, 4.0))
    assert "acquisition.instrument.model" not in f


def test_gatan_zero_values_are_not_recorded_values():
    tags = {"Microscope Info": {"Voltage": 0.0, "Probe Current (nA)": 0.0, "Name": "JEOL COM"},
            "DataBar": {"Acquisition Date": "13/5/2020"}}
    info = gatan_info(tags)
    assert "acquisition.beam_energy_kv" not in info.fields
    assert info.fields["acquisition.instrument.manufacturer"] == "JEOL"
    assert info.fields["acquisition.date"] == "2020-05-13"  # only day-first is a valid date
