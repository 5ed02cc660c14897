"""Warnings about a valid document: what deposition will need later, what must come from files."""

from __future__ import annotations

import math

from curation.metadata.base import Finding
from curation.metadata.imaging import Technique
from curation.metadata.models import AcquisitionMetadata
from curation.metadata.study import CitationStatus, ReleasePolicy

_SECTIONED = {Technique.FIB_SEM, Technique.SBF_SEM, Technique.ATUM_SEM, Technique.SSTEM}


def _warn(field: str, message: str, expected: object = None, found: object = None) -> Finding:
    return Finding(severity="warning", field=field, message=message, expected=expected, found=found)


def lint(md: AcquisitionMetadata) -> list[Finding]:
    """Warnings for a valid document (never errors)."""
    out: list[Finding] = []
    study = md.study
    for i, author in enumerate(study.authors):
        if author.orcid is None:
            out.append(
                _warn(
                    f"study.authors.{i}.orcid",
                    f"author {author.given_name} {author.family_name} has no ORCID iD",
                    expected="an ORCID iD such as 0000-0002-1825-0097",
                )
            )
    if study.corresponding_author is None:
        out.append(
            _warn(
                "study.corresponding_author",
                "no corresponding author; an EMPIAR deposition needs one",
                expected="a contact with given_name, family_name, email, affiliation, country",
            )
        )
    if not study.principal_investigators:
        out.append(
            _warn(
                "study.principal_investigators",
                "no principal investigator; an EMPIAR deposition needs at least one",
                expected="a list of contacts",
            )
        )
    if study.citation is None:
        out.append(
            _warn(
                "study.citation",
                "no citation; an EMPIAR deposition needs one (it may be in preparation)",
                expected="a citation with status and title",
            )
        )
    elif study.citation.status is CitationStatus.published and study.citation.doi is None:
        out.append(_warn("study.citation.doi", "the citation is published but has no DOI", expected="a DOI"))
    release = study.release
    if release.date is not None and release.policy is not ReleasePolicy.hold_until_date:
        out.append(
            _warn(
                "study.release.date",
                f"ignored: the release policy is {release.policy.value}",
                expected="policy hold_until_date",
                found=release.policy.value,
            )
        )
    vs = md.image_data.voxel_size
    for axis in ("z", "y", "x"):
        if getattr(vs, axis) is None:
            out.append(
                _warn(
                    f"image_data.voxel_size.{axis}",
                    "voxel size not given; it must then come from the file headers",
                    expected="a value and unit, e.g. {value: 8, unit: nm}",
                )
            )
    step = md.acquisition.slice_thickness_nm
    z_nm = md.voxel_size_nm()[0]
    if md.acquisition.technique in _SECTIONED and step is not None and z_nm is not None:
        if not math.isclose(step, z_nm, rel_tol=0.01):
            out.append(
                _warn(
                    "image_data.voxel_size.z",
                    "z voxel size differs from acquisition.slice_thickness_nm (resampled, or a typing error?)",
                    expected=f"{step:g} nm",
                    found=f"{z_nm:g} nm",
                )
            )
    return out
