"""EMPIAR's codes, and strict checks of a deposition JSON.

The tables are EMPIAR's own (from the enums and descriptions of its deposition schema):
experiment types, release codes, image-set categories, file formats, voxel types and the
country codes its lists accept (ISO 3166-1 without AX and BQ, plus FX and XK).

:func:`check_deposition` is stricter than EMPIAR's schema, whose patterns are mostly not
anchored: every pattern must match the whole string, ORCID iDs must pass their check
digit, codes and country codes must be known, lengths are enforced and text must not be
blank. :func:`check_official` applies EMPIAR's schema itself, from a local copy the user
points at (``--empiar-schema`` or ``$CURATION_EMPIAR_SCHEMA``); it is not shipped here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import PackagingError
from ..metadata.identifiers import COUNTRY_CODES, IdentifierProblem, check_orcid
from ..safeload import read_json as safe_read_json
from .export_common import Problem

SCHEMA_ENV = "CURATION_EMPIAR_SCHEMA"

EXPERIMENT_TYPES = {"SBF-SEM": 4, "FIB-SEM": 5, "ATUM-SEM": 11}
EXPERIMENT_LABELS = {
    1: "soft X-ray tomography", 2: "simulated data", 3: "raw data of an EMDB structure",
    4: "serial block-face SEM", 5: "focused ion beam SEM", 6: "integrative hybrid modelling",
    7: "correlative light-electron microscopy", 8: "correlative light X-ray microscopy",
    9: "microcrystal electron diffraction", 11: "ATUM-SEM", 12: "hard X-ray / X-ray microCT",
    13: "serial-section electron tomography",
}
RELEASE_TEXT = {
    "RE": "directly after the submission has been processed",
    "HP": "after the primary citation has been published",
    "HO": "held for one year from the date of deposition",
    "EP": "after the related EMDB entry has been released",
}
FORMAT_CODES = {".mrc": "T1", ".mrcs": "T2", ".tif": "T3", ".tiff": "T3", ".dm3": "T5", ".dm4": "T6",
                ".spi": "T7", ".eer": "T9", ".png": "T10", ".jpg": "T11", ".jpeg": "T11", ".em": "T13",
                ".tpx3": "T14"}
VOXEL_CODES = {"uint8": "T1", "int8": "T2", "uint16": "T3", "int16": "T4", "uint32": "T5", "int32": "T6",
               "float32": "T7", "bool": "T8"}
VOXEL_OTHER = {"float64": "64 BIT FLOAT", "uint64": "UNSIGNED 64 BIT INTEGER",
               "int64": "SIGNED 64 BIT INTEGER", "float16": "16 BIT FLOAT"}
#: what the codes curation writes mean, for the package README (EMPIAR's JSON holds codes only)
CATEGORY_LABELS = {"T1": "micrographs - single frame", "T13": "reconstructed volumes"}
FORMAT_LABELS = {"T1": "MRC", "T2": "MRCS", "T3": "TIFF", "T5": "DM3", "T6": "DM4", "T7": "SPIDER", "T9": "EER",
                 "T10": "PNG", "T11": "JPEG", "T13": "EM", "T14": "TPX3"}
VOXEL_LABELS = {"T1": "unsigned 8-bit integer", "T2": "signed 8-bit integer", "T3": "unsigned 16-bit integer",
                "T4": "signed 16-bit integer", "T5": "unsigned 32-bit integer", "T6": "signed 32-bit integer",
                "T7": "32-bit float", "T8": "bit (boolean)"}
#: ISO 3166-1 codes EMPIAR's country list lacks, and codes it has beyond ISO
EMPIAR_COUNTRIES = (set(COUNTRY_CODES) - {"AX", "BQ"}) | {"FX", "XK"}
EXPERIMENT_CODES = set(EXPERIMENT_LABELS)

BAD_NAME_CHARS = "0123456789!\"£$%^&*()'"
NAME_RE = re.compile(r"[^0-9!\"£$%^&*()]+")
_AUTHOR_RE = re.compile(r"\('([^0-9!\"£$%^&*()']+)', '([^0-9!\"£$%^&*()']+)'\)")
_ORCID_RE = re.compile(r"([0-9]{4}-){3}[0-9]{3}[0-9X]")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CODE_RE = re.compile(r"\('T(1[0-4]|[1-9])', ''\)|\('OT', '[A-Z0-9 ]+'\)")
_CATEGORY_RE = re.compile(r"\('T(1[0-4]|[1-9])', ''\)|\('OT', '[^\x00']+'\)")
_VOXEL_RE = re.compile(r"\('T[1-9]', ''\)|\('OT', '[A-Z0-9 ]+'\)")
DOI_RE = re.compile(r"10\.[0-9]{4,9}/[-._;()/:A-Za-z0-9]+")
_PUBMED_RE = re.compile(r"[0-9]{1,8}(\.[0-9]+)?")



def _orcid_problem(value: Any, where: str) -> Problem | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ORCID_RE.fullmatch(value):
        return Problem(where, "not an ORCID iD", expected="0000-0000-0000-000X", found=value)
    try:
        check_orcid(value)
    except IdentifierProblem as p:
        return Problem(where, f"ORCID iD {p.message}", expected=p.expected, found=value)
    return None


def _text_problem(value: Any, where: str, max_len: int, *, required: bool = True,
                  pattern: re.Pattern | None = None) -> Problem | None:
    if value is None:
        return Problem(where, "missing") if required else None
    if not isinstance(value, str) or not value.strip():
        return Problem(where, "must be non-empty text", found=value)
    if len(value) > max_len:
        return Problem(where, "too long", expected=f"at most {max_len} characters", found=f"{len(value)} characters")
    if pattern is not None and not pattern.fullmatch(value):
        return Problem(where, "does not match EMPIAR's pattern", expected=pattern.pattern, found=value)
    return None


def _check_people(people: Any, where: str, out: list[Problem]) -> None:
    if not isinstance(people, list) or not people:
        out.append(Problem(where, "at least one author is required"))
        return
    for i, a in enumerate(people):
        w = f"{where}[{i}]"
        m = _AUTHOR_RE.fullmatch(str(a.get("name", "")))
        if not m:
            out.append(Problem(f"{w}.name", "not in EMPIAR's ('Surname', 'INITIALS') form",
                               expected="('Chang', 'YW')", found=a.get("name")))
        elif len(m.group(1)) > 60 or len(m.group(2)) > 20 or not m.group(2).isupper() \
                or not m.group(2).isalpha() or not m.group(1).strip():
            out.append(Problem(f"{w}.name", "surname at most 60 characters, initials 1-20 capital letters",
                               found=a.get("name")))
        if a.get("order_id") != i:
            out.append(Problem(f"{w}.order_id", "must count from 0 in order", expected=i, found=a.get("order_id")))
        p = _orcid_problem(a.get("author_orcid"), f"{w}.author_orcid")
        if p:
            out.append(p)


def _check_contact(c: Any, where: str, out: list[Problem]) -> None:
    if not isinstance(c, dict):
        out.append(Problem(where, "missing"))
        return
    for f in ("first_name", "last_name"):
        p = _text_problem(c.get(f), f"{where}.{f}", 60, pattern=NAME_RE)
        if p:
            out.append(p)
    p = _text_problem(c.get("middle_name"), f"{where}.middle_name", 60, required=False, pattern=NAME_RE)
    if p:
        out.append(p)
    for f, n, req in (("organization", 255, True), ("street", 255, False), ("town_or_city", 60, False),
                      ("state_or_province", 60, False), ("post_or_zip", 60, False)):
        p = _text_problem(c.get(f), f"{where}.{f}", n, required=req)
        if p:
            out.append(p)
    for f in ("town_or_city", "post_or_zip"):
        if f in c and c[f] is None:
            out.append(Problem(f"{where}.{f}", "EMPIAR does not accept null here; leave it out"))
    p = _text_problem(c.get("email"), f"{where}.email", 255, pattern=_EMAIL_RE)
    if p:
        out.append(p)
    if c.get("country") not in EMPIAR_COUNTRIES:
        out.append(Problem(f"{where}.country", "not a country code EMPIAR accepts",
                           expected="ISO 3166-1 alpha-2", found=c.get("country")))
    p = _orcid_problem(c.get("author_orcid"), f"{where}.author_orcid")
    if p:
        out.append(p)


def check_deposition(doc: dict[str, Any]) -> list[Problem]:
    """Strict local checks of an EMPIAR deposition JSON (stricter than EMPIAR's schema)."""
    out: list[Problem] = []
    for key in ("title", "release_date", "experiment_type", "authors", "corresponding_author",
                "principal_investigator", "imagesets", "citation"):
        if doc.get(key) in (None, "", []):
            out.append(Problem(key, "missing; EMPIAR requires it"))
    t = doc.get("title")
    if isinstance(t, str) and not 10 <= len(t.strip()) <= 255:
        out.append(Problem("title", "must be 10-255 characters", found=f"{len(t.strip())} characters"))
    if doc.get("release_date") not in RELEASE_TEXT:
        out.append(Problem("release_date", "not an EMPIAR release code", expected="RE, EP, HP or HO",
                           found=doc.get("release_date")))
    et = doc.get("experiment_type")
    if not isinstance(et, int) or isinstance(et, bool) or et not in EXPERIMENT_CODES:
        out.append(Problem("experiment_type", "not an EMPIAR experiment type",
                           expected=f"one of {sorted(EXPERIMENT_CODES)}", found=et))
    if "scale" in doc and not re.fullmatch(r"[1-5]", str(doc["scale"])):
        out.append(Problem("scale", "not an EMPIAR scale code", expected="1-5", found=doc["scale"]))
    _check_people(doc.get("authors"), "authors", out)
    _check_contact(doc.get("corresponding_author"), "corresponding_author", out)
    pis = doc.get("principal_investigator")
    if isinstance(pis, list):
        for i, pi in enumerate(pis):
            _check_contact(pi, f"principal_investigator[{i}]", out)
    for i, s in enumerate(doc.get("imagesets") or []):
        _check_imageset(s, f"imagesets[{i}]", out)
    dirs = [s.get("directory") for s in doc.get("imagesets") or []]
    if len(set(dirs)) != len(dirs):
        out.append(Problem("imagesets", "two image sets share a directory", found=dirs))
    for i, c in enumerate(doc.get("citation") or []):
        _check_citation(c, f"citation[{i}]", out)
    return out


def _check_imageset(s: dict[str, Any], w: str, out: list[Problem]) -> None:
    for f, n, pat in (("name", 200, None), ("directory", 200, re.compile(r"/data/[^\x00]+"))):
        p = _text_problem(s.get(f), f"{w}.{f}", n, pattern=pat)
        if p:
            out.append(p)
    for f, pat in (("category", _CATEGORY_RE), ("header_format", _CODE_RE), ("data_format", _CODE_RE),
                   ("voxel_type", _VOXEL_RE)):
        if not pat.fullmatch(str(s.get(f, ""))):
            out.append(Problem(f"{w}.{f}", "not an EMPIAR code", expected="('T<n>', '') or ('OT', 'TEXT')",
                               found=s.get(f)))
    for f in ("num_images_or_tilt_series", "frames_per_image"):
        v = s.get(f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            out.append(Problem(f"{w}.{f}", "must be a whole number of at least 1", found=v))
    for f in ("pixel_width", "pixel_height"):
        v = s.get(f)
        if v is not None and (not isinstance(v, (int, float)) or v <= 0):
            out.append(Problem(f"{w}.{f}", "must be a positive number of Å", found=v))
    for f in ("image_width", "image_height"):
        v = s.get(f)
        if v is not None and (not isinstance(v, int) or v < 1):
            out.append(Problem(f"{w}.{f}", "must be a whole number of pixels", found=v))


def _check_citation(c: dict[str, Any], w: str, out: list[Problem]) -> None:
    _check_people(c.get("authors"), f"{w}.authors", out)
    for f in ("published", "j_or_nj_citation"):
        if not isinstance(c.get(f), bool):
            out.append(Problem(f"{w}.{f}", "must be true or false", found=c.get(f)))
    p = _text_problem(c.get("title"), f"{w}.title", 255)
    if p:
        out.append(p)
    for f, n in (("volume", 8), ("first_page", 8), ("last_page", 8), ("journal", 255), ("issue", 255)):
        p = _text_problem(c.get(f), f"{w}.{f}", n, required=False)
        if p:
            out.append(p)
    if c.get("doi") is not None:
        p = _text_problem(c["doi"], f"{w}.doi", 80, pattern=DOI_RE)
        if p:
            out.append(p)
    if c.get("pubmedid") is not None:
        p = _text_problem(c["pubmedid"], f"{w}.pubmedid", 20, pattern=_PUBMED_RE)
        if p:
            out.append(p)
    y = c.get("year")
    if y is not None and (not isinstance(y, int) or not 1000 <= y <= 9999):
        out.append(Problem(f"{w}.year", "not a year", expected="1000-9999", found=y))


def official_schema_path(empiar_schema: str | os.PathLike[str] | None) -> Path | None:
    value = empiar_schema or os.environ.get(SCHEMA_ENV)
    return Path(value) if value else None


def check_official(doc: dict[str, Any], schema_path: Path) -> list[Problem]:
    """Validate with EMPIAR's own JSON Schema (a local copy the user points at)."""
    import jsonschema

    schema = safe_read_json(schema_path, error=PackagingError)
    if not schema or not isinstance(schema, dict):
        raise PackagingError("EMPIAR's deposition schema cannot be read", path=schema_path,
                             expected="empiar_deposition.schema.json", hint=f"check --empiar-schema or ${SCHEMA_ENV}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    try:
        cls.check_schema(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    except (jsonschema.exceptions.SchemaError, RecursionError) as exc:
        raise PackagingError(f"EMPIAR's deposition schema is not a usable JSON Schema: "
                             f"{' '.join(str(getattr(exc, 'message', exc)).split())[:160]}", path=schema_path,
                             field="--empiar-schema", expected="empiar_deposition.schema.json") from None
    out = []
    for err in errors:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
        out.append(Problem(where or "document", f"EMPIAR schema: {err.message[:200]}"))
    return out
