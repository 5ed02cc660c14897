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
    out += plausibility(md)
    return out


#: usual voxel sizes in nm per technique, (low, high), generous: outside them a value is
#: more likely a typing or unit error than a real acquisition
PIXEL_RANGE_NM: dict[Technique, tuple[float, float]] = {
    Technique.FIB_SEM: (1, 50), Technique.SBF_SEM: (2, 100), Technique.ATUM_SEM: (1, 100),
    Technique.SSTEM: (0.5, 50), Technique.SEM: (0.5, 1000), Technique.TEM: (0.05, 100),
    Technique.STEM: (0.02, 100), Technique.ET: (0.1, 50),
}
Z_RANGE_NM: dict[Technique, tuple[float, float]] = {
    Technique.FIB_SEM: (1, 50), Technique.SBF_SEM: (10, 200), Technique.ATUM_SEM: (10, 200),
    Technique.SSTEM: (20, 300), Technique.ET: (0.1, 50),
}


def plausibility(md: AcquisitionMetadata) -> list[Finding]:
    """Warnings for values that disagree with each other or fall outside the technique's
    usual range (a 0.002 nm pixel, a 4000 nm z step beside a 40 nm slice thickness).
    Ingest records them in the ingest record (``metadata.warnings``)."""
    out: list[Finding] = []
    tech = md.acquisition.technique
    z_nm, y_nm, x_nm = md.voxel_size_nm()
    lo, hi = PIXEL_RANGE_NM[tech]
    for axis, v in (("y", y_nm), ("x", x_nm)):
        if v is not None and not lo <= v <= hi:
            out.append(_warn(f"image_data.voxel_size.{axis}",
                             f"pixel size outside the usual range for {tech.value} (a unit or typing error?)",
                             expected=f"{lo:g}-{hi:g} nm", found=f"{v:g} nm"))
    if y_nm is not None and x_nm is not None and max(y_nm, x_nm) > 2 * min(y_nm, x_nm):
        out.append(_warn("image_data.voxel_size.y", "y and x pixel sizes differ by more than a factor 2",
                         expected=f"about {x_nm:g} nm like x", found=f"{y_nm:g} nm"))
    if tech in Z_RANGE_NM and z_nm is not None:
        lo, hi = Z_RANGE_NM[tech]
        if not lo <= z_nm <= hi:
            out.append(_warn("image_data.voxel_size.z",
                             f"z voxel size outside the usual range for {tech.value} (a unit or typing error?)",
                             expected=f"{lo:g}-{hi:g} nm", found=f"{z_nm:g} nm"))
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
