"""DataCite metadata (kernel 4, JSON) of one acquisition, ready to register a DOI.

``OUT/datacite.json`` is the document DataCite's REST API takes
(``{"data": {"type": "dois", "attributes": {...}}}``; POST it to create a draft DOI),
with the kernel-4 properties under ``attributes``: every mandatory one (identifier,
creators, titles, publisher, publicationYear, types) and subjects, contributors, dates,
rightsList (SPDX), descriptions, fundingReferences, relatedIdentifiers (the citation),
sizes, formats and version (the acquisition dataset's commit). When no DOI is given
``identifiers`` is empty and the README says so: DataCite assigns one on registration.

:func:`check_datacite` checks the mandatory properties locally; the package is refused,
with nothing written, when any is missing or malformed.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from .. import __version__
from ..metadata.identifiers import IdentifierProblem, check_doi, check_orcid
from ..records import Result, ok
from .context import PackageSource, deposit_readme, identifier_note, recorded_entries
from .export_common import Problem, refuse, staged_output, write_json

JSON_NAME = "datacite.json"
SCHEMA_VERSION = "http://datacite.org/schema/kernel-4"
RESOURCE_TYPES = {
    "Audiovisual", "Award", "Book", "BookChapter", "Collection", "ComputationalNotebook", "ConferencePaper",
    "ConferenceProceeding", "DataPaper", "Dataset", "Dissertation", "Event", "Image", "Instrument",
    "InteractiveResource", "Journal", "JournalArticle", "Model", "OutputManagementPlan", "PeerReview",
    "PhysicalObject", "Preprint", "Project", "Report", "Service", "Software", "Sound", "Standard",
    "StudyRegistration", "Text", "Workflow", "Other",
}
_ORCID_URL = "https://orcid.org/"


def _person(p: Any, *, contributor_type: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f"{p.family_name}, {p.given_name}",
        "nameType": "Personal",
        "givenName": p.given_name,
        "familyName": p.family_name,
        "nameIdentifiers": [],
        "affiliation": [],
    }
    if p.orcid:
        out["nameIdentifiers"].append({"nameIdentifier": _ORCID_URL + p.orcid, "nameIdentifierScheme": "ORCID",
                                       "schemeUri": "https://orcid.org"})
    if getattr(p, "affiliation", None):
        out["affiliation"].append({"name": p.affiliation})
    if contributor_type:
        out["contributorType"] = contributor_type
    return out


def _rights(license_id: str) -> dict[str, Any]:
    if license_id.startswith("LicenseRef-"):
        return {"rights": license_id}
    return {"rights": license_id, "rightsUri": f"https://spdx.org/licenses/{license_id}.html",
            "rightsIdentifier": license_id.lower(), "rightsIdentifierScheme": "SPDX",
            "schemeUri": "https://spdx.org/licenses/"}


def _funding(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"funderName": f.funder}
    if f.funder_id:
        out["funderIdentifier"] = f.funder_id
        out["funderIdentifierType"] = "ROR" if "ror.org" in f.funder_id else "Crossref Funder ID"
    if f.grant_id:
        out["awardNumber"] = f.grant_id
    return out


def default_publisher(src: PackageSource) -> str:
    study = src.metadata.study
    for p in ([study.corresponding_author] if study.corresponding_author else []) + list(study.authors):
        if getattr(p, "affiliation", None):
            return p.affiliation
    return src.archive.title


def build_datacite(src: PackageSource, *, doi: str | None = None, publisher: str | None = None) -> dict[str, Any]:
    md = src.metadata
    study = md.study
    entries = recorded_entries(src, src.labels)
    n_bytes = sum(size for size, _ in entries.values())
    rel = study.release
    year = rel.date.year if rel.policy.value == "hold_until_date" and rel.date else date.today().year
    finished = src.ingest.finished[:10]
    subjects = [{"subject": k} for k in study.keywords]
    subjects.append({"subject": md.acquisition.technique.value, "subjectScheme": "volume EM technique"})
    org = md.biosample.organism
    subjects.append({"subject": org.scientific_name, "subjectScheme": "NCBI Taxonomy",
                     "schemeUri": "https://www.ncbi.nlm.nih.gov/taxonomy",
                     "valueUri": f"https://www.ncbi.nlm.nih.gov/Taxonomy/Browser/wwwtax.cgi?id={org.ncbi_taxon}"})
    if md.biosample.tissue:
        subjects.append({"subject": md.biosample.tissue})
    contributors = []
    if study.corresponding_author:
        contributors.append(_person(study.corresponding_author, contributor_type="ContactPerson"))
    contributors += [_person(p, contributor_type="ProjectLeader") for p in study.principal_investigators]
    dates = [{"date": finished, "dateType": "Created"}] if finished else []
    if rel.policy.value == "hold_until_date" and rel.date:
        dates.append({"date": rel.date.isoformat(), "dateType": "Available"})
    vox = src.voxel_size_nm
    labels = ", ".join(lab.address for lab in src.labels) or "none"
    tech = (f"Volume (z, y, x) {' x '.join(map(str, src.shape))} voxels of {src.dtype} at "
            f"{' x '.join(f'{v:g}' for v in vox)} nm, stored as OME-Zarr 0.5 (Zarr v3, sharded, zstd) with a "
            f"multiscale pyramid. Label versions: {labels}.")
    related = []
    if study.citation and study.citation.doi:
        related.append({"relatedIdentifier": study.citation.doi, "relatedIdentifierType": "DOI",
                        "relationType": "IsSupplementTo", "resourceTypeGeneral": "JournalArticle"})
    formats = ["OME-Zarr 0.5 (Zarr v3)", "application/json"]
    raw_suffixes = sorted({Path(s.name).suffix.lower().lstrip(".") for s in src.ingest.sources} - {""})
    if src.ingest.raw_copy:
        formats += [f"{s.upper()} (raw files as recorded)" for s in raw_suffixes]
    attrs: dict[str, Any] = {
        "identifiers": [{"identifier": doi, "identifierType": "DOI"}] if doi else [],
        "creators": [_person(a) for a in study.authors],
        "titles": [{"title": study.title, "lang": "en"}],
        "publisher": {"name": publisher or default_publisher(src)},
        "publicationYear": year,
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Volume EM image with label layers",
                  "schemaOrg": "Dataset"},
        "subjects": subjects,
        "contributors": contributors,
        "dates": dates,
        "language": "en",
        "rightsList": [_rights(study.license)],
        "descriptions": [{"description": study.description, "descriptionType": "Abstract"},
                         {"description": tech, "descriptionType": "TechnicalInfo"}],
        "fundingReferences": [_funding(f) for f in study.funding],
        "relatedIdentifiers": related,
        "sizes": [f"{n_bytes} bytes", f"{len(entries)} files", f"{' x '.join(map(str, src.shape))} voxels"],
        "formats": formats,
        "version": src.commit or "unknown",
        "schemaVersion": SCHEMA_VERSION,
    }
    if doi:
        attrs["doi"] = doi
    return {"data": {"type": "dois", "attributes": attrs}}


def check_datacite(doc: dict[str, Any]) -> list[Problem]:
    """Local checks of the mandatory kernel-4 properties (and of identifiers given)."""
    out: list[Problem] = []
    a = doc.get("data", {}).get("attributes") if isinstance(doc.get("data"), dict) else None
    if not isinstance(a, dict):
        return [Problem("data.attributes", "missing")]
    for i, ident in enumerate(a.get("identifiers") or []):
        if ident.get("identifierType") == "DOI":
            try:
                check_doi(ident.get("identifier"))
            except IdentifierProblem as p:
                out.append(Problem(f"identifiers[{i}]", p.message, expected=p.expected, found=p.found))
    creators = a.get("creators") or []
    if not creators:
        out.append(Problem("creators", "missing; at least one creator is mandatory"))
    for i, c in enumerate(creators):
        _check_name(c, f"creators[{i}]", out)
    for i, c in enumerate(a.get("contributors") or []):
        _check_name(c, f"contributors[{i}]", out)
        if not c.get("contributorType"):
            out.append(Problem(f"contributors[{i}].contributorType", "missing"))
    titles = a.get("titles") or []
    if not titles or not all(isinstance(t.get("title"), str) and t["title"].strip() for t in titles):
        out.append(Problem("titles", "missing; a non-empty title is mandatory"))
    pub = a.get("publisher")
    name = pub.get("name") if isinstance(pub, dict) else pub
    if not isinstance(name, str) or not name.strip():
        out.append(Problem("publisher", "missing; a publisher is mandatory"))
    year = a.get("publicationYear")
    if not re.fullmatch(r"[0-9]{4}", str(year or "")):
        out.append(Problem("publicationYear", "missing or not a year", expected="YYYY", found=year))
    types = a.get("types") or {}
    if types.get("resourceTypeGeneral") not in RESOURCE_TYPES:
        out.append(Problem("types.resourceTypeGeneral", "missing or not a DataCite resource type",
                           expected="e.g. Dataset", found=types.get("resourceTypeGeneral")))
    for i, r in enumerate(a.get("rightsList") or []):
        if not r.get("rights"):
            out.append(Problem(f"rightsList[{i}].rights", "missing"))
    for i, f in enumerate(a.get("fundingReferences") or []):
        if not f.get("funderName"):
            out.append(Problem(f"fundingReferences[{i}].funderName", "missing"))
    for i, r in enumerate(a.get("relatedIdentifiers") or []):
        for k in ("relatedIdentifier", "relatedIdentifierType", "relationType"):
            if not r.get(k):
                out.append(Problem(f"relatedIdentifiers[{i}].{k}", "missing"))
    for i, d in enumerate(a.get("descriptions") or []):
        if not d.get("description") or not d.get("descriptionType"):
            out.append(Problem(f"descriptions[{i}]", "needs description and descriptionType"))
    return out


def _check_name(c: dict[str, Any], where: str, out: list[Problem]) -> None:
    if not isinstance(c.get("name"), str) or not c["name"].strip():
        out.append(Problem(f"{where}.name", "missing"))
    if c.get("nameType") == "Personal" and not (c.get("givenName") and c.get("familyName")):
        out.append(Problem(where, "a person needs givenName and familyName"))
    for j, n in enumerate(c.get("nameIdentifiers") or []):
        if n.get("nameIdentifierScheme") == "ORCID":
            try:
                check_orcid(n.get("nameIdentifier"))
            except IdentifierProblem as p:
                out.append(Problem(f"{where}.nameIdentifiers[{j}]", f"ORCID iD: {p.message}", found=p.found))


def write_datacite(src: PackageSource, out: Path, *, doi: str | None = None, publisher: str | None = None,
                   record: Any = None) -> Result:
    problems: list[Problem] = []
    if doi:
        try:
            doi = check_doi(doi)
        except IdentifierProblem as p:
            problems.append(Problem("--doi", p.message, expected=p.expected, found=p.found))
    doc = build_datacite(src, doi=doi if not problems else None, publisher=publisher)
    problems += check_datacite(doc)
    refuse(problems, f"cannot write DataCite metadata for {src.name}", src.acq / "metadata.json")
    with staged_output(out, record) as tmp:
        write_json(tmp / JSON_NAME, doc)
        readme = deposit_readme(
            src, format_title="DataCite metadata (kernel 4, JSON)", doi=doi,
            contents=(f"- `{JSON_NAME}`: the DataCite metadata, as DataCite's REST API takes it "
                      "(`data.attributes` holds the kernel-4 properties). POST it to "
                      "https://api.datacite.org/dois with your repository's credentials to create a draft DOI."),
            check="Every mandatory property (identifier, creators, titles, publisher, publicationYear, types) "
                  "was checked by curation before writing.",
            provenance="The data and its run records stay in the curation archive; package them with "
                       "`curate package --format ro-crate` or `--format bagit`.")
        (tmp / "README.md").write_text(readme, encoding="utf-8")
    attrs = doc["data"]["attributes"]
    return ok("package", out, f"DataCite metadata of {src.name}: {len(attrs['creators'])} creator(s), "
              f"{'DOI ' + doi if doi else 'no DOI yet'}", format="datacite", name=src.name, files=2,
              bytes=sum(p.stat().st_size for p in Path(out).iterdir()), json=JSON_NAME, doi=doi,
              identifier=identifier_note(doi), labels=[lab.address for lab in src.labels], version=__version__,
              dataset_commit=src.commit, archive_commit=src.archive_commit)
