"""Vendor header tags → curation metadata fields.

Instruments write their acquisition parameters in their own dialects: FEI/Thermo Fisher
Helios TIFFs carry an INI-like ``FEI_HELIOS`` tag, Zeiss SmartSEM TIFFs a ``CZ_SEM`` tag,
Gatan DigitalMicrograph files a tree of ``ImageTags``. The functions here translate each
into :class:`VendorInfo`: dotted metadata field paths (``acquisition.beam_energy_kv`` ...),
pixel sizes in nanometres and notes about values that were present but unusable.

Nothing is guessed: a field is filled only from a tag that states it, in a unit the tag
states; a corrupt value is skipped with a note, never replaced by a default.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..units import UNIT_TO_NM

# --- units ------------------------------------------------------------------------------

#: spellings meaning "no calibration"
UNCALIBRATED_UNITS = frozenset({"", "<undefined>", "undefined", "pixel", "pixels", "px", "none"})

_UNIT_ALIASES = {
    "microns": "micron",
    "micrometers": "micrometer",
    "micrometre": "micrometer",
    "micrometres": "micrometer",
    "nanometers": "nanometer",
    "nanometre": "nanometer",
    "nanometres": "nanometer",
    "meters": "meter",
    "metre": "meter",
    "metres": "meter",
    "millimeters": "millimeter",
    "millimetre": "millimeter",
    "angstroms": "angstrom",
    "ångström": "angstrom",
    "picometers": "picometer",
    "\\u00b5m": "µm",  # ImageJ writes the micro sign escaped
    "\\u03bcm": "µm",
}


def unit_kind(unit: Any) -> str:
    """``"length"``, ``"none"`` (uncalibrated) or ``"other"`` (eV, 1/nm, s ...)."""
    return "none" if _norm_unit(unit) is None else (
        "length" if _length_factor(unit) is not None else "other"
    )


def _norm_unit(unit: Any) -> str | None:
    if unit is None or isinstance(unit, list | tuple):  # DM writes [] for "no unit"
        return None
    text = str(unit).strip()
    if text.lower() in UNCALIBRATED_UNITS:
        return None
    return text


def _length_factor(unit: Any) -> float | None:
    text = _norm_unit(unit)
    if text is None:
        return None
    for key in (text, text.lower(), _UNIT_ALIASES.get(text.lower(), "")):
        if key in UNIT_TO_NM:
            return UNIT_TO_NM[key]
        if key.lower() in UNIT_TO_NM:
            return UNIT_TO_NM[key.lower()]
    return None


def length_nm(value: Any, unit: Any) -> float | None:
    """``value`` in ``unit`` as nanometres, or None when either is unusable.

    None for an uncalibrated axis ('' / '<undefined>' / 'pixel'), a unit that is not a
    length, or a value that is not a finite positive number. Never a default.
    """
    factor = _length_factor(unit)
    number = as_float(value)
    if factor is None or number is None or number <= 0:
        return None
    return number * factor


def as_float(value: Any) -> float | None:
    """A finite float, or None (for '', 'nan', 'notafloat', inf, None ...)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- JSON-safe raw tags -------------------------------------------------------------------

MAX_ITEMS = 256  # longer sequences (CLUTs, strip offsets, dark references) are dropped
MAX_STR = 8192


def jsonable(obj: Any, _depth: int = 0) -> Any:
    """``obj`` made JSON-safe: numpy scalars → Python, bytes → str, enums → names, huge
    arrays dropped (replaced by a short description), nested mappings kept."""
    if _depth > 32:
        return "<nested too deep>"
    if obj is None or isinstance(obj, bool | int | str):
        return obj if not isinstance(obj, str) or len(obj) <= MAX_STR else obj[:MAX_STR] + "…"
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), _depth + 1)
    if isinstance(obj, bytes | bytearray):
        try:
            text = bytes(obj).decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return f"<{len(obj)} bytes>"
        if len(text) > MAX_STR or any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            return f"<{len(obj)} bytes>"
        return text
    if hasattr(obj, "name") and hasattr(obj, "value") and type(obj).__module__ != "builtins":
        # enum members (tifffile's COMPRESSION.NONE ...)
        return str(obj.name)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        if obj.size > MAX_ITEMS:
            return f"<array {obj.shape} {obj.dtype}>"
        return jsonable(obj.tolist(), _depth + 1)
    if isinstance(obj, list | tuple | set | frozenset):
        if len(obj) > MAX_ITEMS:
            return f"<{len(obj)} items>"
        return [jsonable(v, _depth + 1) for v in obj]
    if isinstance(obj, _dt.datetime | _dt.date):
        return obj.isoformat()
    if hasattr(obj, "to_dict"):  # Box / DTBox from rosettasciio
        return jsonable(obj.to_dict(), _depth + 1)
    return str(obj)


# --- dates ----------------------------------------------------------------------------------


def _date(year: int, month: int, day: int) -> _dt.date | None:
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None




def parse_dmy(text: Any) -> _dt.date | None:
    """'13.06.2016 17:06:40' or '13/06/2016' (day first) → date."""
    m = re.match(r"\s*(\d{1,2})[./](\d{1,2})[./](\d{4})", str(text))
    return _date(int(m[3]), int(m[2]), int(m[1])) if m else None


def parse_text_date(text: Any) -> _dt.date | None:
    """'25 Sep 2018', '2018-09-25', 'Sep 25 2018' → date."""
    s = " ".join(str(text).split())
    for fmt in ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%b %d %Y", "%d-%b-%Y", "%Y:%m:%d"):
        try:
            return _dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    m = re.match(r"(\d{4})[-:](\d{2})[-:](\d{2})", s)  # ISO / EXIF datetime prefix
    return _date(int(m[1]), int(m[2]), int(m[3])) if m else None


def filetime_date(value: Any) -> _dt.date | None:
    """A Windows FILETIME (100 ns ticks since 1601-01-01 UTC) → UTC date."""
    ticks = as_float(value)
    if ticks is None or ticks <= 0:
        return None
    try:
        stamp = _dt.datetime(1601, 1, 1) + _dt.timedelta(microseconds=ticks / 10)
    except OverflowError:
        return None
    return stamp.date() if 1990 <= stamp.year <= 2200 else None


def _slash_date(text: Any, reference: _dt.date | None) -> tuple[_dt.date | None, str | None]:
    """A locale-formatted 'a/b/yyyy' date. Month-first unless only day-first is valid or a
    reference date (from an unambiguous timestamp) says otherwise. Returns (date, note)."""
    m = re.fullmatch(r"\s*(\d{1,2})[/.](\d{1,2})[/.](\d{4})\s*", str(text))
    if not m:
        return None, None
    a, b, y = int(m[1]), int(m[2]), int(m[3])
    mdy, dmy = _date(y, a, b), _date(y, b, a)
    options = [d for d in (mdy, dmy) if d is not None]
    if not options:
        return None, None
    if reference is not None:
        best = min(options, key=lambda d: abs((d - reference).days))
        if abs((best - reference).days) <= 1:
            return best, None
    if mdy is not None and dmy is not None and mdy != dmy:
        return mdy, f"date {text!r} is ambiguous; read as month/day/year"
    return options[0], None


# --- the result ---------------------------------------------------------------------------


@dataclass
class VendorInfo:
    """What one vendor's tags say, normalised."""

    vendor: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    #: pixel size (y, x) in nm where the tags calibrate it
    pixel_yx_nm: tuple[float | None, float | None] = (None, None)
    notes: list[str] = field(default_factory=list)


def _positive(value: Any) -> float | None:
    number = as_float(value)
    return number if number is not None and number > 0 else None


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, list | tuple | Mapping):
        return None
    s = " ".join(str(value).replace('"', " ").split())
    return s or None


KNOWN_MANUFACTURERS = {
    "zeiss": "Zeiss",
    "fei": "FEI",
    "thermo": "Thermo Fisher Scientific",
    "jeol": "JEOL",
    "hitachi": "Hitachi",
    "tescan": "TESCAN",
    "gatan": "Gatan",
}


# --- FEI / Thermo Fisher ----------------------------------------------------------------------

#: FEI keys whose values are numbers when the instrument writes them correctly
FEI_NUMERIC_KEYS = frozenset(
    {
        "HV", "BeamCurrent", "Dwelltime", "Dwell", "PixelWidth", "PixelHeight", "HFW", "VFW",
        "WD", "WorkingDistance", "HorFieldsize", "VerFieldsize", "StageX", "StageY", "StageZ",
        "StageR", "StageT", "StageTa", "StageTb", "ChPressure", "EmissionCurrent",
        "ApertureDiameter", "FrameTime", "LineTime", "ScanRotation", "Spot", "ResolutionX",
        "ResolutionY", "DatabarHeight", "SpecimenCurrent", "LandingEnergy", "TiltCorrectionAngle",
    }
)


def fei_info(md: Mapping[str, Any], image_shape_yx: tuple[int, int]) -> VendorInfo:
    """FEI/Thermo Fisher ``FEI_HELIOS`` / ``FEI_SFEG`` metadata (``TiffFile.fei_metadata``).

    Units in the tags: metres, volts, amperes, seconds. The beam section is the one that
    ``Beam.Beam`` names (``EBeam`` or ``IBeam``); the scan section is ``Scan``.
    """
    info = VendorInfo(vendor="FEI")
    notes = info.notes
    for section, values in md.items():
        if not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if key not in FEI_NUMERIC_KEYS or value is None or value == "":
                continue
            if as_float(value) is None:  # 'notafloat', 'nan', inf
                notes.append(
                    f"FEI metadata field {section}.{key} is corrupt (value {str(value)!r}); ignored"
                )

    beam_name = _text(_get(md, "Beam", "Beam"))
    beam = md.get(beam_name, {}) if beam_name else {}
    beam = beam if isinstance(beam, Mapping) else {}

    kv = _positive(_get(md, "Beam", "HV"))
    if kv is None:
        kv = _positive(beam.get("HV"))
    if kv is not None:
        info.fields["acquisition.beam_energy_kv"] = kv / 1000.0
    current = _positive(beam.get("BeamCurrent"))
    if current is not None:
        info.fields["acquisition.beam_current_na"] = current * 1e9
    dwell = _positive(_get(md, "Scan", "Dwelltime"))
    if dwell is None:
        dwell = _positive(_get(md, _text(_get(md, "Beam", "Scan")) or "EScan", "Dwell"))
    if dwell is not None:
        info.fields["acquisition.dwell_time_us"] = dwell * 1e6

    vendor_text = _text(_get(md, "System", "Vendor"))
    info.fields["acquisition.instrument.manufacturer"] = vendor_text or "FEI"
    model = _text(_get(md, "System", "SystemType"))
    if model:
        info.fields["acquisition.instrument.model"] = model
    detector = _text(_get(md, "Detectors", "Name"))
    if detector:
        info.fields["acquisition.detector"] = detector

    creation = parse_dmy(_get(md, "PrivateFei", "TimeOfCreation"))
    date, note = _slash_date(_get(md, "User", "Date"), creation)
    date = date or creation
    if note:
        notes.append(f"FEI User.Date {note}")
    if date is not None:
        info.fields["acquisition.date"] = date.isoformat()

    # pixel size: Scan.PixelWidth/PixelHeight (m); else field width / resolution
    px = _positive(_get(md, "Scan", "PixelWidth"))
    py = _positive(_get(md, "Scan", "PixelHeight"))
    if px is None and py is None:
        for section in ("EScan", "IScan"):
            if section == _text(_get(md, "Beam", "Scan")):
                px = _positive(_get(md, section, "PixelWidth"))
                py = _positive(_get(md, section, "PixelHeight"))
    if px is None and py is None:
        hfw, vfw = _positive(_get(md, "IRBeam", "HFW")), _positive(_get(md, "IRBeam", "VFW"))
        rx, ry = _positive(_get(md, "Image", "ResolutionX")), _positive(_get(md, "Image", "ResolutionY"))
        if hfw and rx:
            px = hfw / rx
            py = vfw / ry if vfw and ry else None
            notes.append("FEI pixel size derived from IRBeam.HFW / Image.ResolutionX (no Scan section)")
    info.pixel_yx_nm = (py * 1e9 if py else None, px * 1e9 if px else None)

    bar = _positive(_get(md, "PrivateFei", "DatabarHeight"))
    ry = _positive(_get(md, "Image", "ResolutionY"))
    if bar and ry and int(ry) + int(bar) == image_shape_yx[0]:
        notes.append(
            f"the FEI image includes its {int(bar)}-pixel data bar at the bottom "
            f"(rows {int(ry)}..{image_shape_yx[0] - 1}); it is kept as stored"
        )
    return info


# --- Zeiss SmartSEM ------------------------------------------------------------------------------

_ZEISS_CURRENT_TO_NA = {"pa": 1e-3, "na": 1.0, "µa": 1e3, "μa": 1e3, "ua": 1e3, "a": 1e9, "fa": 1e-6}
_ZEISS_TIME_TO_US = {"ns": 1e-3, "µs": 1.0, "μs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
_ZEISS_KV = {"kv": 1.0, "v": 1e-3}


def _zeiss_value(md: Mapping[str, Any], key: str) -> tuple[Any, str | None]:
    entry = md.get(key)
    if isinstance(entry, tuple | list):
        value = entry[1] if len(entry) > 1 else None
        unit = str(entry[2]).strip() if len(entry) > 2 else None
        return value, unit
    return entry, None


def _zeiss_scaled(
    md: Mapping[str, Any], key: str, table: Mapping[str, float], notes: list[str]
) -> float | None:
    value, unit = _zeiss_value(md, key)
    if value is None:
        return None
    number = as_float(value)
    if number is None:
        notes.append(f"Zeiss metadata field {key} is corrupt (value {value!r}); ignored")
        return None
    factor = table.get((unit or "").lower())
    if factor is None:
        notes.append(f"Zeiss metadata field {key} has unknown unit {unit!r}; ignored")
        return None
    return number * factor if number > 0 else None


def zeiss_info(md: Mapping[str, Any], image_shape_yx: tuple[int, int]) -> VendorInfo:
    """Zeiss SmartSEM ``CZ_SEM`` metadata (``TiffFile.sem_metadata``): entries are
    ``(label, value, unit)`` tuples keyed ``ap_*`` (parameters) / ``dp_*`` (states)."""
    info = VendorInfo(vendor="Zeiss")
    notes = info.notes
    kv = _zeiss_scaled(md, "ap_actualkv", _ZEISS_KV, notes)
    if kv is None:
        kv = _zeiss_scaled(md, "ap_manualkv", _ZEISS_KV, notes)
    if kv is not None:
        info.fields["acquisition.beam_energy_kv"] = kv
    current = _zeiss_scaled(md, "ap_iprobe", _ZEISS_CURRENT_TO_NA, notes)
    if current is not None:
        info.fields["acquisition.beam_current_na"] = current
    for key in ("ap_dwell_time", "ap_pixel_dwell_time", "dp_dwell_time"):
        dwell = _zeiss_scaled(md, key, _ZEISS_TIME_TO_US, notes)
        if dwell is not None:
            info.fields["acquisition.dwell_time_us"] = dwell
            break

    info.fields["acquisition.instrument.manufacturer"] = "Zeiss"
    model = None
    for key in ("sv_model", "dp_model", "sv_instrument_model"):
        model = _text(_zeiss_value(md, key)[0])
        if model:
            break
    serial = _text(_zeiss_value(md, "sv_serial_number")[0])
    if not model and serial:
        m = re.fullmatch(r"(.*?[A-Za-z].*?)[- ](\d+-\d+)", serial)
        if m:
            model = m[1].strip(" -")
            notes.append(f"Zeiss instrument model {model!r} taken from serial number {serial!r}")
    if model:
        info.fields["acquisition.instrument.model"] = model
    for key in ("dp_detector_type", "dp_detector_channel"):
        detector = _text(_zeiss_value(md, key)[0])
        if detector:
            info.fields["acquisition.detector"] = detector
            break
    raw_date = _zeiss_value(md, "ap_date")[0]
    if raw_date is not None:
        date = parse_text_date(raw_date)
        if date is None:
            date, note = _slash_date(raw_date, None)
            if note:
                notes.append(f"Zeiss ap_date {note}")
        if date is not None:
            info.fields["acquisition.date"] = date.isoformat()
        else:
            notes.append(f"Zeiss metadata field ap_date is not a date (value {raw_date!r}); ignored")

    info.pixel_yx_nm = _zeiss_pixel(md, image_shape_yx, notes)
    return info


def _zeiss_pixel(
    md: Mapping[str, Any], image_shape_yx: tuple[int, int], notes: list[str]
) -> tuple[float | None, float | None]:
    """Zeiss pixel size (y, x) in nm. ``ap_pixel_size`` (precise: the unnamed structure's
    4th value, in metres) refers to the scan's store resolution; an image saved at another
    resolution is recognised by ``ap_width`` / pixel count being a simple multiple of it."""
    height_y, width_x = image_shape_yx
    stated = length_nm(*_zeiss_value(md, "ap_pixel_size"))
    primary = md.get("")
    if isinstance(primary, tuple | list) and len(primary) > 3:
        precise = length_nm(primary[3], "m")
        if precise and stated and abs(precise - stated) <= 0.01 * stated:
            stated = precise
    width_nm = length_nm(*_zeiss_value(md, "ap_width"))
    height_nm = length_nm(*_zeiss_value(md, "ap_height"))
    from_width = width_nm / width_x if width_nm and width_x else None
    if stated is None:
        if from_width is None:
            return None, None
        from_height = height_nm / height_y if height_nm and height_y else from_width
        return from_height, from_width
    if from_width is None:
        return stated, stated
    ratio = from_width / stated
    for n in range(1, 17):
        for factor in (float(n), 1.0 / n):
            if abs(ratio - factor) <= 0.005 * factor:
                if n != 1:
                    notes.append(
                        f"Zeiss ap_pixel_size ({stated:g} nm) is for the scan resolution; this "
                        f"image was stored at {'1/' if factor > 1 else ''}{n}× that resolution "
                        f"(ap_width / width), so its pixels are {stated * factor:g} nm"
                    )
                return stated * factor, stated * factor
    from_height = height_nm / height_y if height_nm and height_y else from_width
    notes.append(
        f"Zeiss ap_pixel_size ({stated:g} nm) disagrees with ap_width / image width "
        f"({from_width:g} nm); the field width over the pixel count is used"
    )
    return from_height, from_width


# --- Gatan DigitalMicrograph ------------------------------------------------------------------------


def gatan_info(tags: Mapping[str, Any]) -> VendorInfo:
    """A DigitalMicrograph image's ``ImageTags`` group: ``Microscope Info`` (Voltage in V,
    Probe Current (nA), Name), ``DigiScan`` (Sample Time in µs), ``DataBar`` (acquisition
    date and time, signal name), ``Acquisition.Device`` (camera name)."""
    info = VendorInfo(vendor="Gatan")
    notes = info.notes
    mic = tags.get("Microscope Info") if isinstance(tags.get("Microscope Info"), Mapping) else {}

    def number(group: Mapping[str, Any], key: str, where: str) -> float | None:
        if key not in group:
            return None
        value = group[key]
        n = as_float(value)
        if n is None and not (isinstance(value, list | tuple) and not value):
            notes.append(f"Gatan tag {where}.{key} is corrupt (value {value!r}); ignored")
        return n if n is not None and n > 0 else None

    volts = number(mic, "Voltage", "Microscope Info")
    if volts is not None:
        info.fields["acquisition.beam_energy_kv"] = volts / 1000.0
    current = number(mic, "Probe Current (nA)", "Microscope Info")
    if current is not None:
        info.fields["acquisition.beam_current_na"] = current
    digiscan = tags.get("DigiScan") if isinstance(tags.get("DigiScan"), Mapping) else {}
    dwell = number(digiscan, "Sample Time", "DigiScan")
    if dwell is not None:
        info.fields["acquisition.dwell_time_us"] = dwell

    name = _text(mic.get("Name"))
    if name:
        lowered = name.lower()
        for key, manufacturer in KNOWN_MANUFACTURERS.items():
            if re.search(rf"\b{key}", lowered):
                info.fields["acquisition.instrument.manufacturer"] = manufacturer
                break
    databar = tags.get("DataBar") if isinstance(tags.get("DataBar"), Mapping) else {}
    detector = _text(databar.get("Signal Name"))
    if not detector:
        device = _get(tags, "Acquisition", "Device", "Name")
        detector = _text(device)
    if detector:
        info.fields["acquisition.detector"] = detector

    stamp = filetime_date(databar.get("Acquisition Time (OS)"))
    if stamp is None:
        epoch_ms = _positive(_get(tags, "Acquisition", "Frame", "Sequence", "Acquisition Start Time (epoch)"))
        if epoch_ms is not None and 6e11 < epoch_ms < 7.3e12:  # 1989 .. 2200, in ms
            stamp = _dt.datetime.fromtimestamp(epoch_ms / 1000, _dt.timezone.utc).date()
    date, note = _slash_date(databar.get("Acquisition Date"), stamp)
    if note:
        notes.append(f"Gatan DataBar.Acquisition Date {note}")
    date = date or stamp
    if date is not None:
        info.fields["acquisition.date"] = date.isoformat()
    return info
