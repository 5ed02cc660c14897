"""Every JSON Schema curation publishes, generated from its pydantic models."""

from __future__ import annotations

from pathlib import Path

from .records import Result


def export_all(directory: Path | str) -> list[Result]:
    from .metadata import export_schemas
    from .segmentation.schemas import export_schemas as export_segmentation

    return list(export_schemas(Path(directory))) + export_segmentation(Path(directory))
