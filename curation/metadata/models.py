"""The top-level acquisition-metadata document, its version, and migration of old versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from curation.metadata.base import MetadataModel, problem
from curation.metadata.imaging import Acquisition, ImageData
from curation.metadata.sample import Biosample, SpecimenPreparation
from curation.metadata.study import Name, Study

SCHEMA_VERSION = "1.0.0"

#: version -> (next version, function upgrading a document dict from version to next)
MIGRATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a document dict from an older ``schema_version`` to :data:`SCHEMA_VERSION`.

    Returns a new dict; the input is not changed. A document already at the current
    version, or at a version with no migration path, is returned as it is (validation
    then reports the version).
    """
    out = dict(data)
    seen: set[str] = set()
    while isinstance(out.get("schema_version"), str) and out["schema_version"] in MIGRATIONS:
        version = out["schema_version"]
        if version in seen:  # pragma: no cover - a cycle in MIGRATIONS is a programming error
            raise RuntimeError(f"migration cycle at schema_version {version}")
        seen.add(version)
        target, step = MIGRATIONS[version]
        out = dict(step(out))
        out["schema_version"] = target
    return out


def _check_version(value: Any) -> Any:
    if value == SCHEMA_VERSION:
        return value
    if isinstance(value, str) and _newer(value, SCHEMA_VERSION):
        msg = "document was written for a newer schema; upgrade curation"
    else:
        msg = "unsupported schema version"
    raise problem(msg, expected=SCHEMA_VERSION, found=value)


def _newer(a: str, b: str) -> bool:
    try:
        return tuple(int(p) for p in a.split(".")) > tuple(int(p) for p in b.split("."))
    except ValueError:
        return False


class AcquisitionMetadata(MetadataModel):
    """Metadata of one volume EM acquisition: study, sample, preparation, imaging, data."""

    schema_version: Annotated[Literal["1.0.0"], BeforeValidator(_check_version)]
    """Version of this document format: 1.0.0."""
    study: Study
    biosample: Biosample
    specimen_preparation: SpecimenPreparation | None = None
    acquisition: Acquisition
    image_data: ImageData = Field(default_factory=ImageData)

    # --- derived values -----------------------------------------------------------------

    def voxel_size_nm(self) -> tuple[float | None, float | None, float | None]:
        """(z, y, x) voxel size in nanometres; None on an axis the document leaves out."""
        vs = self.image_data.voxel_size
        return tuple(None if q is None else q.to_nm() for q in (vs.z, vs.y, vs.x))  # type: ignore[return-value]

    def shape_zyx(self) -> tuple[int, int, int] | None:
        """(z, y, x) size in voxels from ``image_data.dimensions``, or None."""
        d = self.image_data.dimensions
        return None if d is None else (d.z, d.y, d.x)

    def citation_authors(self) -> list[Name]:
        """Authors of the citation, falling back to ``study.authors``."""
        return self.study.citation_authors()

    # --- documents ------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The document as a JSON-safe dict (empty optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def with_fields(self, updates: dict[str, Any]) -> AcquisitionMetadata:
        """A validated copy with dotted-path fields set, e.g. ``{"acquisition.detector": "EsB"}``.

        Setting a field to None removes it. Raises MetadataError listing every problem.
        """
        from curation.metadata.document import set_path
        from curation.metadata.validate import parse_metadata

        data = self.to_document()
        for path, value in updates.items():
            set_path(data, path, value)
        return parse_metadata(data)
