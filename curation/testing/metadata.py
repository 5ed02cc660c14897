"""A minimal valid acquisition-metadata document, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def minimal_metadata(voxel_nm: dict[str, float] | None = None, *, technique: str = "FIB-SEM",
                     **image_data: Any) -> dict[str, Any]:
    """The smallest document that validates; ``voxel_nm`` maps axes ('z', 'y', 'x') to
    nanometres, ``image_data`` adds fields such as ``dimensions`` or ``dtype``."""
    doc: dict[str, Any] = {
        "schema_version": "1.0.0",
        "study": {
            "title": "Test acquisition",
            "description": "A volume used by curation's tests.",
            "license": "CC-BY-4.0",
            "authors": [{"given_name": "Josiah", "family_name": "Carberry", "orcid": "0000-0002-1825-0097",
                         "affiliation": "Brown University", "country": "US"}],
        },
        "biosample": {"organism": {"scientific_name": "Mus musculus", "ncbi_taxon": 10090}},
        "acquisition": {"technique": technique},
    }
    img = dict(image_data)
    if voxel_nm:
        img["voxel_size"] = {ax: {"value": v, "unit": "nm"} for ax, v in voxel_nm.items()}
    if img:
        doc["image_data"] = img
    return doc


def write_metadata(path: Path | str, voxel_nm: dict[str, float] | None = None, *, technique: str = "FIB-SEM",
                   **image_data: Any) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(minimal_metadata(voxel_nm, technique=technique, **image_data), sort_keys=False))
    return path
