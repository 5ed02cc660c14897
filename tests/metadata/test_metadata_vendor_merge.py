"""Filling and cross-checking the user's metadata from vendor file tags."""

from __future__ import annotations

import datetime

import pytest

from curation.metadata import merge_vendor, parse_metadata


@pytest.fixture
def minimal(minimal_doc):
    return parse_metadata(minimal_doc)


@pytest.fixture
def full(full_doc):
    return parse_metadata(full_doc)


def test_empty_fields_are_filled(minimal):
    fields = {
        "acquisition.beam_energy_kv": 2.0,
        "acquisition.instrument.manufacturer": "Zeiss",
        "acquisition.instrument.model": "Sigma",
        "acquisition.detector": "BSD",
        "acquisition.beam_current_na": 0.25,
        "acquisition.dwell_time_us": 1,
        "acquisition.date": datetime.datetime(2024, 3, 1, 14, 22),
    }
    md, filled, conflicts = merge_vendor(minimal, fields)
    assert sorted(filled) == sorted(fields)
    assert conflicts == []
    acq = md.acquisition
    assert acq.beam_energy_kv == 2.0 and acq.beam_current_na == 0.25 and acq.dwell_time_us == 1.0
    assert acq.instrument.manufacturer == "Zeiss" and acq.instrument.model == "Sigma"
    assert acq.detector == "BSD"
    assert acq.date == datetime.date(2024, 3, 1)
    assert minimal.acquisition.beam_energy_kv is None  # the input is unchanged


def test_agreeing_values_are_neither_filled_nor_conflicts(full):
    fields = {
        "acquisition.beam_energy_kv": 1.505,  # within 1 %
        "acquisition.instrument.manufacturer": "ZEISS",  # case-insensitive
        "acquisition.detector": "esb",
        "acquisition.date": "2024-03-01T09:30:00",
    }
    md, filled, conflicts = merge_vendor(full, fields)
    assert filled == [] and conflicts == []
    assert md == full


def test_disagreements_are_conflicts_and_the_user_wins(full):
    fields = {
        "acquisition.beam_energy_kv": 2.0,
        "acquisition.instrument.model": "Helios 5",
        "acquisition.dwell_time_us": 3.1,  # 3.3 % off
        "acquisition.date": datetime.date(2024, 3, 2),
    }
    md, filled, conflicts = merge_vendor(full, fields)
    assert filled == []
    assert set(conflicts) == {
        ("acquisition.beam_energy_kv", 1.5, 2.0),
        ("acquisition.instrument.model", "Crossbeam 540", "Helios 5"),
        ("acquisition.dwell_time_us", 3.0, 3.1),
        ("acquisition.date", datetime.date(2024, 3, 1), datetime.date(2024, 3, 2)),
    }
    assert md == full


def test_unknown_keys_and_unusable_values_are_ignored(minimal):
    fields = {
        "acquisition.gun_type": "Schottky",  # not a metadata field
        "vendor.tag": 3,
        "acquisition.beam_current_na": 0,  # out of range
        "acquisition.dwell_time_us": "fast",  # not a number
        "acquisition.beam_energy_kv": None,
        "acquisition.detector": "  InLens ",
    }
    md, filled, conflicts = merge_vendor(minimal, fields)
    assert filled == ["acquisition.detector"]
    assert conflicts == []
    assert md.acquisition.detector == "InLens"
    assert md.acquisition.beam_current_na is None


def test_mixed_fill_and_conflict(full_doc):
    del full_doc["acquisition"]["detector"]
    md, filled, conflicts = merge_vendor(
        parse_metadata(full_doc), {"acquisition.detector": "in-lens", "acquisition.beam_energy_kv": 5}
    )
    assert filled == ["acquisition.detector"] and md.acquisition.detector == "in-lens"
    assert conflicts == [("acquisition.beam_energy_kv", 1.5, 5.0)]
