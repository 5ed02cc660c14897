"""The common model base, the :class:`Finding` record, and the checked string types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from curation.metadata import identifiers as ids


class MetadataModel(BaseModel):
    """Base of every metadata model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_default=False,
        use_attribute_docstrings=True,
    )


class Finding(BaseModel):
    """One problem (or warning) found in a metadata document."""

    model_config = ConfigDict(frozen=True)

    severity: Literal["error", "warning"]
    #: dotted path of the field, e.g. ``study.authors.0.orcid``; "" for the whole document
    field: str
    message: str
    expected: Any = None
    found: Any = None
    #: line in the YAML/JSON file, when known
    line: int | None = None

    def one_line(self) -> str:
        where = self.field or "document"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.message}"
        if self.expected is not None:
            text += f" (expected {self.expected}, found {_fmt(self.found)})"
        elif self.found is not None:
            text += f" (found {_fmt(self.found)})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


def _fmt(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def problem(message: str, expected: Any = None, found: Any = None, subfield: str | None = None):
    """A validation error whose Finding carries ``message``, ``expected`` and ``found``.

    ``subfield`` is appended to the error's location (model validators use it to point at
    the field that is wrong rather than at the model).
    """
    ctx: dict[str, Any] = {"message": message, "expected": expected, "found": found}
    if subfield:
        ctx["subfield"] = subfield
    return PydanticCustomError("curation", "{message} (expected {expected}, found {found})", ctx)


def _checked(check: Callable[[Any], str], json_schema: dict[str, Any]) -> Any:
    def validate(value: Any) -> str:
        try:
            return check(value)
        except ids.IdentifierProblem as p:
            raise problem(p.message, p.expected, p.found) from None

    return Annotated[str, BeforeValidator(validate), WithJsonSchema(json_schema)]


#: free text; surrounding whitespace is stripped and it must not be empty
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

Orcid = _checked(
    ids.check_orcid,
    {
        "type": "string",
        "pattern": ids.ORCID_INPUT_PATTERN,
        "description": "ORCID iD; the check digit (ISO 7064 11,2) is verified",
        "examples": ["0000-0002-1825-0097"],
    },
)
Doi = _checked(
    ids.check_doi,
    {"type": "string", "pattern": ids.DOI_INPUT_PATTERN, "examples": ["10.1038/s41592-019-0396-9"]},
)
Email = _checked(ids.check_email, {"type": "string", "pattern": ids.EMAIL_PATTERN})
FunderId = _checked(ids.check_funder_id, {"type": "string", "pattern": ids.FUNDER_ID_PATTERN})
COUNTRY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": list(ids.COUNTRY_CODES),
    "description": "ISO 3166-1 alpha-2 country code",
}
LICENSE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "enum": list(ids.SPDX_LICENSES)},
        {"type": "string", "pattern": ids.LICENSE_REF_PATTERN},
    ],
    "description": "SPDX licence identifier, or LicenseRef-<name>",
}
#: schemas the exported JSON Schema holds once under $defs, referred to by the fields
SHARED_DEFS: dict[str, dict[str, Any]] = {"CountryCode": COUNTRY_SCHEMA, "SpdxLicense": LICENSE_SCHEMA}
#: placeholder key the export replaces by a $ref to SHARED_DEFS (pydantic resolves $refs itself)
SHARED_DEF_KEY = "x-curation-def"
Country = _checked(ids.check_country, {SHARED_DEF_KEY: "CountryCode"})
License = _checked(ids.check_spdx, {SHARED_DEF_KEY: "SpdxLicense"})
#: volume, issue, pages, PubMed id, grant number: text, or a whole number kept as text
Code = _checked(ids.check_code, {"type": ["string", "integer"], "minLength": 1})
