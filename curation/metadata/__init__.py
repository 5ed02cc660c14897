"""Acquisition metadata of a volume EM dataset, informed by REMBI.

One YAML or JSON document per acquisition, carrying ``schema_version``. The pydantic
models are the schema: :func:`schema_dict` derives the JSON Schema from them and
:func:`export_schemas` writes it to ``schemas/``. :func:`load_metadata` checks a document
with both and reports every problem at once in one
:class:`~curation.errors.MetadataError`; :func:`check_metadata` returns them as result
records, with warnings about what a deposition will need later.

Modules: ``identifiers`` (ORCID, DOI, SPDX, ISO 3166), ``base`` (model base, Finding),
``study``, ``sample``, ``imaging``, ``models`` (the document and its migrations),
``document`` (reading files, dotted paths), ``validate``, ``lint``, ``export``,
``template``, ``vendor_merge``.
"""

from curation.metadata.base import Finding, MetadataModel
from curation.metadata.document import dump_text
from curation.metadata.export import SCHEMA_ID, export_schemas, schema_dict
from curation.metadata.imaging import (
    Acquisition,
    Dimensions,
    DType,
    ImageData,
    Instrument,
    LengthUnit,
    Quantity,
    Technique,
    VoxelSize,
)
from curation.metadata.lint import lint
from curation.metadata.models import MIGRATIONS, SCHEMA_VERSION, AcquisitionMetadata, migrate
from curation.metadata.sample import Biosample, Organism, SpecimenPreparation
from curation.metadata.study import (
    Address,
    Citation,
    CitationStatus,
    Contact,
    Funding,
    Name,
    Person,
    Release,
    ReleasePolicy,
    Study,
)
from curation.metadata.template import template, technique_from_text
from curation.metadata.validate import check_metadata, load_metadata, parse_metadata, validate_document
from curation.metadata.vendor_merge import merge_vendor

__all__ = [
    "MIGRATIONS",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "Acquisition",
    "AcquisitionMetadata",
    "Address",
    "Biosample",
    "Citation",
    "CitationStatus",
    "Contact",
    "DType",
    "Dimensions",
    "Finding",
    "Funding",
    "ImageData",
    "Instrument",
    "LengthUnit",
    "MetadataModel",
    "Name",
    "Organism",
    "Person",
    "Quantity",
    "Release",
    "ReleasePolicy",
    "SpecimenPreparation",
    "Study",
    "Technique",
    "VoxelSize",
    "check_metadata",
    "dump_text",
    "export_schemas",
    "lint",
    "load_metadata",
    "merge_vendor",
    "migrate",
    "parse_metadata",
    "schema_dict",
    "template",
    "technique_from_text",
    "validate_document",
]
