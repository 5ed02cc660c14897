"""Length units: every length curation handles is converted to nanometres.

One table, read by the readers (header calibrations), the metadata models (voxel sizes
with units) and the vendor-tag parsers, so a unit means the same everywhere.
"""

from __future__ import annotations

UNIT_TO_NM: dict[str, float] = {
    "m": 1e9,
    "meter": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "millimeter": 1e6,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "micrometer": 1e3,
    "nm": 1.0,
    "nanometer": 1.0,
    "a": 0.1,
    "å": 0.1,
    "Å": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
}


def to_nm(value: float, unit: str | None) -> float:
    """Convert ``value`` in ``unit`` to nanometres; raises KeyError for unknown units."""
    if unit is None:
        raise KeyError("no unit")
    key = unit.strip()
    if key not in UNIT_TO_NM:
        key = key.lower()
    return float(value) * UNIT_TO_NM[key]
