"""The biological sample and how it was prepared (REMBI: Biosample, Specimen)."""

from __future__ import annotations

from pydantic import Field

from curation.metadata.base import MetadataModel, Text


class Organism(MetadataModel):
    scientific_name: Text
    """Scientific (binomial) name, e.g. "Mus musculus"."""
    ncbi_taxon: int = Field(gt=0)
    """NCBI Taxonomy id, e.g. 10090 for Mus musculus, 9606 for Homo sapiens."""


class Biosample(MetadataModel):
    """The biological entity imaged."""

    organism: Organism
    tissue: Text | None = None
    """Tissue or organ, e.g. "somatosensory cortex, layer 4"."""
    cell_type: Text | None = None
    """Cell type, e.g. "HeLa" or "pyramidal neuron"."""
    strain: Text | None = None
    """Strain or cell line, e.g. "C57BL/6J"."""
    genotype: Text | None = None
    """Genotype or genetic modification, e.g. "wild type"."""
    description: Text | None = None
    """Anything else about the sample."""


class SpecimenPreparation(MetadataModel):
    """How the sample was prepared for imaging."""

    fixation: Text | None = None
    """e.g. "high-pressure freezing, freeze substitution" or "2.5% glutaraldehyde"."""
    staining: Text | None = None
    """e.g. "rOTO (reduced osmium, thiocarbohydrazide, osmium), uranyl acetate, lead aspartate"."""
    embedding: Text | None = None
    """e.g. "Durcupan" or "Epon 812"."""
    description: Text | None = None
    """Anything else about the preparation."""
