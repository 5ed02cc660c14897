"""ORCID check digits, DOIs, SPDX licence ids and ISO country codes."""

from __future__ import annotations

import pytest

from curation.metadata import identifiers as ids


@pytest.mark.parametrize(
    "orcid",
    ["0000-0002-1825-0097", "0000-0001-5109-3700", "0000-0002-1694-233X"],
)
def test_valid_orcids(orcid):
    assert ids.is_valid_orcid(orcid)
    assert ids.check_orcid(orcid) == orcid


def test_wrong_orcid_check_digit():
    assert not ids.is_valid_orcid("0000-0002-1825-0098")
    with pytest.raises(ids.IdentifierProblem) as info:
        ids.check_orcid("0000-0002-1825-0098")
    assert "checksum" in info.value.message
    assert info.value.expected == "check digit 7"
    assert info.value.found == "0000-0002-1825-0098"


@pytest.mark.parametrize(
    "given",
    [
        "https://orcid.org/0000-0002-1825-0097",
        "http://orcid.org/0000-0002-1825-0097",
        "orcid.org/0000-0002-1825-0097",
        " 0000-0002-1825-0097 ",
    ],
)
def test_orcid_url_is_normalised(given):
    assert ids.check_orcid(given) == "0000-0002-1825-0097"


def test_orcid_lower_case_x_is_normalised():
    assert ids.check_orcid("0000-0002-1694-233x") == "0000-0002-1694-233X"


@pytest.mark.parametrize("bad", ["0000-0002-1825", "0000000218250097", "abcd-0002-1825-0097", ""])
def test_orcid_shape(bad):
    with pytest.raises(ids.IdentifierProblem, match="not an ORCID"):
        ids.check_orcid(bad)


def test_orcid_check_digit_ten_is_x():
    assert ids.orcid_check_digit("000000021694233") == "X"


@pytest.mark.parametrize(
    ("given", "bare"),
    [
        ("10.1038/s41592-019-0396-9", "10.1038/s41592-019-0396-9"),
        ("https://doi.org/10.1038/s41592-019-0396-9", "10.1038/s41592-019-0396-9"),
        ("https://dx.doi.org/10.1000/xyz.123", "10.1000/xyz.123"),
        ("doi:10.1000/abc", "10.1000/abc"),
    ],
)
def test_doi_normalised(given, bare):
    assert ids.check_doi(given) == bare


@pytest.mark.parametrize("bad", ["11.1038/abc", "10.10/abc", "10.1038", "https://example.org/10.1038/x"])
def test_bad_doi(bad):
    with pytest.raises(ids.IdentifierProblem, match="not a DOI"):
        ids.check_doi(bad)


def test_spdx_list_and_license_ref():
    assert len(ids.SPDX_LICENSES) >= 40
    for lic in ("CC-BY-4.0", "CC0-1.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "ODC-By-1.0", "PDDL-1.0", "MIT",
                "Apache-2.0", "GPL-3.0-or-later", "LicenseRef-lab-agreement"):
        assert ids.check_spdx(lic) == lic


def test_spdx_suggests_the_right_case():
    with pytest.raises(ids.IdentifierProblem, match="did you mean 'CC-BY-4.0'"):
        ids.check_spdx("cc-by-4.0")
    with pytest.raises(ids.IdentifierProblem, match="LicenseRef"):
        ids.check_spdx("my own licence")


def test_country_codes():
    assert len(ids.COUNTRY_CODES) == 249 == len(set(ids.COUNTRY_CODES))
    for code in ("GB", "US", "DE", "NO", "AX"):
        assert ids.check_country(code) == code
    with pytest.raises(ids.IdentifierProblem, match="did you mean 'GB'"):
        ids.check_country("UK")
    with pytest.raises(ids.IdentifierProblem, match="did you mean 'DE'"):
        ids.check_country("de")
    with pytest.raises(ids.IdentifierProblem, match="quotes"):
        ids.check_country(False)  # YAML reads NO (Norway) as false


def test_email_and_funder_id():
    assert ids.check_email("a.b@example.org") == "a.b@example.org"
    with pytest.raises(ids.IdentifierProblem):
        ids.check_email("not-an-address")
    assert ids.check_funder_id("https://ror.org/029chgv08") == "https://ror.org/029chgv08"
    assert ids.check_funder_id("https://doi.org/10.13039/100010269") == "https://doi.org/10.13039/100010269"
    with pytest.raises(ids.IdentifierProblem):
        ids.check_funder_id("Wellcome")
