"""Identifiers checked offline: ORCID iDs, DOIs, SPDX licence ids, ISO country codes.

Each ``check_*`` function takes what a document holds and returns the normalised value,
or raises :class:`IdentifierProblem` with a message and what was expected and found. The
models turn these into validation errors carrying the field's path.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

# --- problems ---------------------------------------------------------------------------


class IdentifierProblem(ValueError):
    """A value is not a valid identifier of its kind."""

    def __init__(self, message: str, *, expected: Any = None, found: Any = None) -> None:
        self.message = message
        self.expected = expected
        self.found = found
        super().__init__(message)


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        hint = ""
        if isinstance(value, bool):
            hint = "; YAML reads yes/no/on/off/NO as booleans, so put the value in quotes"
        raise IdentifierProblem(f"wrong type{hint}", expected=f"{what} as a string", found=value)
    return value.strip()


# --- ORCID ------------------------------------------------------------------------------

#: what a document may hold: the bare iD or its https://orcid.org/ URL
ORCID_INPUT_PATTERN = r"^((https?://)?(www\.)?orcid\.org/)?[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9Xx]$"
ORCID_PATTERN = r"^[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9X]$"
_ORCID_URL = re.compile(r"^(https?://)?(www\.)?orcid\.org/", re.IGNORECASE)


def orcid_check_digit(base_digits: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 15 digits of an ORCID iD."""
    total = 0
    for ch in base_digits:
        total = (total + int(ch)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def is_valid_orcid(value: str) -> bool:
    try:
        check_orcid(value)
    except IdentifierProblem:
        return False
    return True


def check_orcid(value: Any) -> str:
    """Return the bare ORCID iD (``0000-0002-1825-0097``); checks form and check digit."""
    text = _require_str(value, "an ORCID iD")
    bare = _ORCID_URL.sub("", text).upper()
    if not re.fullmatch(ORCID_PATTERN, bare):
        raise IdentifierProblem(
            "not an ORCID iD", expected="16 digits as 0000-0000-0000-000X", found=value
        )
    digits = bare.replace("-", "")
    want = orcid_check_digit(digits[:15])
    if digits[15] != want:
        raise IdentifierProblem(
            "checksum digit is wrong",
            expected=f"check digit {want}",
            found=bare,
        )
    return bare


# --- DOI --------------------------------------------------------------------------------

DOI_INPUT_PATTERN = r"^((https?://)?(dx\.)?doi\.org/|doi:\s*)?10\.[0-9]{4,9}/\S+$"
_DOI_PREFIX = re.compile(r"^((https?://)?(dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_DOI = re.compile(r"^10\.[0-9]{4,9}/\S+$")


def check_doi(value: Any) -> str:
    """Return the bare DOI (``10.1038/s41586-020-2649-2``), stripping a doi.org URL."""
    text = _require_str(value, "a DOI")
    bare = _DOI_PREFIX.sub("", text)
    if not _DOI.fullmatch(bare):
        raise IdentifierProblem("not a DOI", expected="10.NNNN/suffix", found=value)
    return bare


# --- funder ids -------------------------------------------------------------------------

FUNDER_ID_PATTERN = r"^https?://(ror\.org/0[0-9a-z]{6}[0-9]{2}|(dx\.)?doi\.org/10\.13039/[0-9]+)/?$"


def check_funder_id(value: Any) -> str:
    text = _require_str(value, "a funder id")
    if not re.fullmatch(FUNDER_ID_PATTERN, text):
        raise IdentifierProblem(
            "not a ROR or Crossref Funder ID URL",
            expected="https://ror.org/0xxxxxxNN or https://doi.org/10.13039/NNNN",
            found=value,
        )
    return text.rstrip("/")


# --- e-mail -----------------------------------------------------------------------------

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def check_email(value: Any) -> str:
    text = _require_str(value, "an e-mail address")
    if not re.fullmatch(EMAIL_PATTERN, text):
        raise IdentifierProblem("not an e-mail address", expected="name@host.domain", found=value)
    return text


# --- codes that may arrive as numbers ---------------------------------------------------


def check_code(value: Any) -> str:
    """Volume, issue, page, PubMed and grant numbers: a string, or an integer kept as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = _require_str(value, "text or a whole number")
    if not text:
        raise IdentifierProblem("must not be empty", expected="text or a whole number", found=value)
    return text


# --- SPDX licences ----------------------------------------------------------------------

SPDX_LICENSES: tuple[str, ...] = (
    # Creative Commons and public-domain dedications: the usual choices for image data
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-3.0",
    "CC-BY-SA-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-3.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-NC-SA-3.0",
    "CC-BY-NC-ND-4.0",
    "CC-BY-NC-ND-3.0",
    "CC-PDDC",
    # Open Data Commons and other data licences
    "ODC-By-1.0",
    "ODbL-1.0",
    "PDDL-1.0",
    "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0",
    "OGL-UK-3.0",
    "etalab-2.0",
    # software licences (code shipped beside the data)
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "0BSD",
    "ISC",
    "Zlib",
    "Unlicense",
    "BSL-1.0",
    "MPL-2.0",
    "EPL-2.0",
    "EUPL-1.2",
    "CECILL-2.1",
    "Artistic-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
)
LICENSE_REF_PATTERN = r"^LicenseRef-[A-Za-z0-9.\-]+$"
_SPDX_BY_FOLDED = {s.casefold(): s for s in SPDX_LICENSES}


def check_spdx(value: Any) -> str:
    """Return an SPDX licence id from the embedded list, or a ``LicenseRef-...`` id."""
    text = _require_str(value, "an SPDX licence identifier")
    if text in SPDX_LICENSES or re.fullmatch(LICENSE_REF_PATTERN, text):
        return text
    message = "not a known SPDX licence identifier"
    suggestion = _SPDX_BY_FOLDED.get(text.casefold())
    if suggestion is None:
        close = difflib.get_close_matches(text, SPDX_LICENSES, n=1, cutoff=0.75)
        suggestion = close[0] if close else None
    if suggestion:
        message += f", did you mean {suggestion!r}?"
    else:
        message += " (for another licence write LicenseRef-<name>)"
    raise IdentifierProblem(message, expected="an SPDX id such as CC-BY-4.0 or CC0-1.0", found=value)


# --- ISO 3166-1 alpha-2 country codes ---------------------------------------------------

COUNTRY_CODES: tuple[str, ...] = tuple(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET
    FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT
    JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ
    LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ
    OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA
    RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
    UA UG UM US UY UZ
    VA VC VE VG VI VN VU
    WF WS
    YE YT
    ZA ZM ZW
    """.split()
)
#: common non-ISO spellings and what to write instead
_COUNTRY_HINTS = {"UK": "GB", "EL": "GR", "EN": "GB", "USA": "US", "GER": "DE", "D": "DE"}


def check_country(value: Any) -> str:
    """Return an ISO 3166-1 alpha-2 code (upper case)."""
    text = _require_str(value, "an ISO 3166-1 alpha-2 country code")
    if text in COUNTRY_CODES:
        return text
    message = "not an ISO 3166-1 alpha-2 country code"
    upper = text.upper()
    suggestion = _COUNTRY_HINTS.get(upper) or (upper if upper in COUNTRY_CODES else None)
    if suggestion:
        message += f", did you mean {suggestion!r}?"
    raise IdentifierProblem(message, expected="two capital letters such as GB, US, DE", found=value)
