"""The instrument and its settings, and the image data (REMBI: Image acquisition, Image data)."""

from __future__ import annotations

from datetime import date as Date
from enum import Enum

from pydantic import Field

from curation.metadata.base import MetadataModel, Text
from curation.units import to_nm


class Technique(str, Enum):
    """Volume EM imaging technique."""

    FIB_SEM = "FIB-SEM"
    SBF_SEM = "SBF-SEM"
    ATUM_SEM = "ATUM-SEM"
    SSTEM = "ssTEM"
    SEM = "SEM"
    TEM = "TEM"
    STEM = "STEM"
    ET = "ET"


class Instrument(MetadataModel):
    manufacturer: Text | None = None
    """e.g. "Zeiss", "Thermo Fisher Scientific", "JEOL"."""
    model: Text | None = None
    """e.g. "Crossbeam 540", "Helios 5 UX", "GeminiSEM 300 + Gatan 3View2XP"."""


class Acquisition(MetadataModel):
    """How the images were recorded."""

    technique: Technique
    """FIB-SEM, SBF-SEM, ATUM-SEM, ssTEM, SEM, TEM, STEM or ET."""
    instrument: Instrument | None = None
    detector: Text | None = None
    """Detector used for the images, e.g. "EsB", "in-lens", "BSE (OnPoint)"."""
    beam_energy_kv: float | None = Field(default=None, gt=0)
    """Accelerating voltage of the imaging beam, in kV."""
    beam_current_na: float | None = Field(default=None, gt=0)
    """Probe current of the imaging beam, in nA."""
    dwell_time_us: float | None = Field(default=None, gt=0)
    """Pixel dwell time, in µs."""
    slice_thickness_nm: float | None = Field(default=None, gt=0)
    """Milling step (FIB-SEM), cutting step (SBF-SEM) or section thickness, in nm."""
    date: Date | None = None
    """Date of the acquisition (its first day), YYYY-MM-DD."""


class LengthUnit(str, Enum):
    NM = "nm"
    UM_MICRO = "µm"
    UM = "um"
    ANGSTROM = "Å"
    A = "A"
    PM = "pm"
    MM = "mm"
    M = "m"


class Quantity(MetadataModel):
    """A length with its unit."""

    value: float = Field(gt=0)
    unit: LengthUnit
    """nm, µm (or um), Å (or A), pm, mm or m."""

    def to_nm(self) -> float:
        return to_nm(self.value, self.unit.value)


class VoxelSize(MetadataModel):
    """Physical size of one voxel along each axis; an axis left out comes from file headers."""

    z: Quantity | None = None
    """Distance between slices: for FIB-SEM the milling step, for SBF-SEM the cutting step."""
    y: Quantity | None = None
    x: Quantity | None = None


class Dimensions(MetadataModel):
    """Size of the volume in voxels."""

    z: int = Field(gt=0)
    y: int = Field(gt=0)
    x: int = Field(gt=0)


class DType(str, Enum):
    uint8 = "uint8"
    int8 = "int8"
    uint16 = "uint16"
    int16 = "int16"
    uint32 = "uint32"
    int32 = "int32"
    float32 = "float32"
    float64 = "float64"


class ImageData(MetadataModel):
    """What the image volume is; ingest cross-checks this against the files."""

    voxel_size: VoxelSize = Field(default_factory=VoxelSize)
    dimensions: Dimensions | None = None
    """Volume size in voxels (z, y, x); checked against the files at ingest."""
    dtype: DType | None = None
    """Voxel data type, e.g. uint8."""
    contrast_inverted: bool = False
    """True when membranes are bright (inverted backscatter contrast)."""
