"""The study: who made the data, under which licence, funded by whom, cited how.

Field names follow REMBI's *Study* and *Study component* sections, and cover what an
EMPIAR deposition asks for (corresponding author, principal investigators, citation,
release policy), so that packaging needs nothing outside this document.
"""

from __future__ import annotations

from datetime import date as Date
from enum import Enum

from pydantic import Field, model_validator

from curation.metadata.base import Code, Country, Doi, Email, FunderId, License, MetadataModel, Orcid, Text, problem


class Name(MetadataModel):
    """A person as named in an author list."""

    given_name: Text
    """Given (first) name, with any middle names, e.g. "Josiah"."""
    family_name: Text
    """Family (last) name, e.g. "Carberry"."""
    orcid: Orcid | None = None
    """ORCID iD, e.g. 0000-0002-1825-0097; an https://orcid.org/ URL is accepted."""


class Person(Name):
    """An author of the dataset."""

    email: Email | None = None
    """E-mail address."""
    affiliation: Text | None = None
    """Organisation, e.g. "University of Cambridge"."""
    country: Country | None = None
    """Country of the affiliation, ISO 3166-1 alpha-2, e.g. GB."""


class Address(MetadataModel):
    """A postal address (EMPIAR asks for it for the corresponding author and PIs)."""

    street: Text | None = None
    city: Text | None = None
    state_or_province: Text | None = None
    postcode: Code | None = None


class Contact(Person):
    """A person who can be contacted: e-mail, affiliation and country are required."""

    email: Email
    """E-mail address."""
    affiliation: Text
    """Organisation, e.g. "University of Cambridge"."""
    country: Country
    """Country of the affiliation, ISO 3166-1 alpha-2, e.g. GB."""
    address: Address | None = None
    """Postal address of the affiliation."""


class Funding(MetadataModel):
    """One grant."""

    funder: Text
    """Funding organisation, e.g. "Wellcome Trust"."""
    grant_id: Code | None = None
    """Grant number as the funder writes it."""
    funder_id: FunderId | None = None
    """ROR or Crossref Funder ID URL, e.g. https://ror.org/029chgv08."""


class CitationStatus(str, Enum):
    published = "published"
    submitted = "submitted"
    in_preparation = "in_preparation"


class Citation(MetadataModel):
    """The publication describing the data."""

    status: CitationStatus
    """published, submitted or in_preparation."""
    title: Text
    """Title of the article."""
    authors: list[Name] | None = None
    """Authors of the article in order; when omitted, study.authors are used."""
    journal: Text | None = None
    year: int | None = Field(default=None, ge=1900, le=2200)
    volume: Code | None = None
    issue: Code | None = None
    first_page: Code | None = None
    last_page: Code | None = None
    doi: Doi | None = None
    """DOI of the article, e.g. 10.1038/s41592-019-0396-9 (a doi.org URL is accepted)."""
    pubmed_id: Code | None = None


class ReleasePolicy(str, Enum):
    immediate = "immediate"
    hold_until_date = "hold_until_date"
    hold_until_publication = "hold_until_publication"


class Release(MetadataModel):
    """When the data may be made public."""

    model_config = {
        "json_schema_extra": {
            "if": {"properties": {"policy": {"const": "hold_until_date"}}, "required": ["policy"]},
            "then": {"required": ["date"], "properties": {"date": {"type": "string", "format": "date"}}},
        }
    }

    policy: ReleasePolicy = ReleasePolicy.immediate
    """immediate, hold_until_date or hold_until_publication."""
    date: Date | None = None
    """Release date (YYYY-MM-DD); required when policy is hold_until_date."""

    @model_validator(mode="after")
    def _date_when_held(self) -> Release:
        if self.policy is ReleasePolicy.hold_until_date and self.date is None:
            raise problem(
                "required when policy is hold_until_date",
                expected="a date YYYY-MM-DD",
                found=None,
                subfield="date",
            )
        return self


class Study(MetadataModel):
    """What the dataset is, who made it and how it may be used (REMBI: Study)."""

    title: Text
    """Title of the study, as it will appear on deposition."""
    description: Text
    """A paragraph describing the study and the data."""
    license: License
    """SPDX licence identifier of the data, e.g. CC-BY-4.0 or CC0-1.0."""
    keywords: list[Text] = Field(default_factory=list)
    """Free keywords, e.g. ["connectomics", "mitochondria"]."""
    authors: list[Person] = Field(min_length=1)
    """Authors of the dataset, in author order; at least one."""
    corresponding_author: Contact | None = None
    """Person to contact about the data (EMPIAR deposition requires one)."""
    principal_investigators: list[Contact] = Field(default_factory=list)
    """Principal investigators (EMPIAR deposition requires at least one)."""
    funding: list[Funding] = Field(default_factory=list)
    """Grants that paid for the work."""
    citation: Citation | None = None
    """The publication describing the data (EMPIAR deposition requires one)."""
    release: Release = Field(default_factory=Release)
    """When the data may be made public."""

    def citation_authors(self) -> list[Name]:
        """The citation's author list, or the study's authors when the citation has none."""
        if self.citation is not None and self.citation.authors:
            return list(self.citation.authors)
        return [Name(given_name=a.given_name, family_name=a.family_name, orcid=a.orcid) for a in self.authors]
