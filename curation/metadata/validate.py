"""Validating metadata documents: pydantic and the JSON Schema, every problem at once.

A document is checked twice: by the pydantic models (which also verify ORCID check
digits, licence ids, country codes) and by a jsonschema validator against the generated
schema (the contract published for other tools). Both sets of problems become
:class:`Finding` records keyed by a dotted field path; when both report the same field,
the first (pydantic's, usually more precise) is kept. Any problem raises
:class:`~curation.errors.MetadataError`, whose ``errors`` lists the findings.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from curation.errors import CurationError, MetadataError
from curation.metadata import identifiers as ids
from curation.metadata.base import SHARED_DEFS, Finding
from curation.metadata.document import line_of, prune, read_document, to_jsonable
from curation.metadata.export import schema_validator
from curation.metadata.lint import lint
from curation.metadata.models import AcquisitionMetadata, migrate
from curation.records import Result, error, ok

ACTION = "metadata-check"
PLACEHOLDER = re.compile(r"^<[^<>\n]+>$")


# --- the public entry points ---------------------------------------------------------------


def load_metadata(path: str | os.PathLike[str]) -> AcquisitionMetadata:
    """Read and validate a YAML/JSON metadata file; raises MetadataError listing every problem."""
    data, lines = read_document(path)
    return _parse(data, path=path, lines=lines)


def parse_metadata(data: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None) -> AcquisitionMetadata:
    """Validate a document already read into a dict; ``path`` only names it in errors."""
    return _parse(data, path=path, lines=None)


def validate_document(
    data: Mapping[str, Any], *, lines: dict[str, int] | None = None
) -> tuple[AcquisitionMetadata | None, list[Finding]]:
    """Every problem in a document dict, and the model when there is none."""
    if not isinstance(data, Mapping):
        return None, [
            Finding(
                severity="error",
                field="",
                message="top level of the document must be a mapping",
                expected="a mapping of sections (schema_version, study, ...)",
                found=_summary(data),
            )
        ]
    doc = migrate(prune(to_jsonable(dict(data))))
    findings = list(_placeholders(doc))
    model: AcquisitionMetadata | None = None
    try:
        model = AcquisitionMetadata.model_validate(doc)
    except ValidationError as e:
        findings.extend(_from_pydantic(err) for err in e.errors())
    root = schema_validator().schema
    for err in schema_validator().iter_errors(doc):
        findings.extend(_from_jsonschema(err, root))
    findings = _dedupe(findings)
    if lines:
        findings = [f.model_copy(update={"line": line_of(lines, f.field)}) for f in findings]
    return (None if findings else model), findings


def check_metadata(path: str | os.PathLike[str]) -> list[Result]:
    """One record per problem (status error) or warning (status ok, severity warning).

    A valid document without warnings gives a single ok record. Warnings point at what a
    deposition needs later (ORCID iDs, corresponding author, citation) and at voxel sizes
    that must then come from the file headers.
    """
    try:
        data, lines = read_document(path)
    except MetadataError as e:
        msg = CurationError(e.message, path=path, field=e.field, expected=e.expected, found=e.found,
                            hint=e.hint).one_line()
        return [error(ACTION, path, msg, field=None, expected=None, found=None, severity="error")]
    model, findings = validate_document(data, lines=lines)
    if model is None:
        return [error(ACTION, path, f.one_line(), **_record_data(f)) for f in findings]
    warnings = [w.model_copy(update={"line": line_of(lines, w.field)}) for w in lint(model)]
    out = [ok(ACTION, path, w.one_line(), **_record_data(w)) for w in warnings]
    summary = "metadata valid" + (f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else "")
    out.append(ok(ACTION, path, summary, field=None, expected=None, found=None, severity="ok"))
    return out


def _record_data(f: Finding) -> dict[str, Any]:
    return {
        "field": f.field,
        "expected": to_jsonable(f.expected),
        "found": to_jsonable(f.found),
        "severity": f.severity,
        "line": f.line,
    }


def _parse(data: Any, *, path: Any, lines: dict[str, int] | None) -> AcquisitionMetadata:
    model, findings = validate_document(data, lines=lines)
    if findings:
        n = len(findings)
        head = f"{n} problem{'s' * (n != 1)}: "
        raise MetadataError(head + "; ".join(f.one_line() for f in findings), path=path, errors=findings)
    assert model is not None
    return model


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[str, Finding] = {}
    for f in findings:
        seen.setdefault(f.field, f)
    return list(seen.values())


def _placeholders(doc: Any, prefix: str = "") -> Iterable[Finding]:
    if isinstance(doc, dict):
        items: Iterable[tuple[str, Any]] = doc.items()
    elif isinstance(doc, list):
        items = ((str(i), v) for i, v in enumerate(doc))
    else:
        if isinstance(doc, str) and PLACEHOLDER.match(doc):
            yield Finding(
                severity="error",
                field=prefix,
                message="template placeholder was not filled in",
                expected=describe(schema_at(prefix.split("."))),
                found=doc,
            )
        return
    for key, value in items:
        yield from _placeholders(value, f"{prefix}.{key}" if prefix else str(key))


# --- the schema, for describing what is expected ----------------------------------------------

_PATTERNS = {
    ids.ORCID_INPUT_PATTERN: "an ORCID iD such as 0000-0002-1825-0097",
    ids.DOI_INPUT_PATTERN: "a DOI such as 10.1038/s41592-019-0396-9",
    ids.EMAIL_PATTERN: "an e-mail address",
    ids.FUNDER_ID_PATTERN: "a ROR or Crossref Funder ID URL",
    ids.LICENSE_REF_PATTERN: "LicenseRef-<name>",
}
_SHARED = {
    "CountryCode": "an ISO 3166-1 alpha-2 country code such as GB",
    "SpdxLicense": "an SPDX licence id such as CC-BY-4.0",
}


def _root() -> dict[str, Any]:
    return schema_validator().schema


def _resolve(node: Any) -> Any:
    for _ in range(16):
        if not (isinstance(node, dict) and "$ref" in node):
            break
        name = node["$ref"].rsplit("/", 1)[-1]
        node = _root()["$defs"].get(name, {})
    return node


def _non_null(node: Any) -> Any:
    node = _resolve(node)
    if isinstance(node, dict) and "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            return _resolve(branches[0])
    return node


def schema_at(parts: list[str | int]) -> dict[str, Any] | None:
    """The subschema at a field path (list indexes as ints or digit strings), or None."""
    node: Any = _root()
    for part in parts:
        if part == "":
            continue
        node = _non_null(node)
        if not isinstance(node, dict):
            return None
        if isinstance(part, int) or str(part).isdigit():
            node = node.get("items")
        else:
            node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def describe(node: Any) -> str | None:
    """A short phrase for what a subschema accepts, e.g. "a number > 0"."""
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref", "")
    if ref.rsplit("/", 1)[-1] in _SHARED:
        return _SHARED[ref.rsplit("/", 1)[-1]]
    for name, sub in SHARED_DEFS.items():
        if node == sub:
            return _SHARED[name]
    node = _non_null(node)
    if not isinstance(node, dict):
        return None
    if "anyOf" in node:
        parts = [describe(b) for b in node["anyOf"] if b.get("type") != "null"]
        return " or ".join(p for p in parts if p) or None
    if "const" in node:
        return repr(node["const"])
    if "enum" in node:
        values = node["enum"]
        more = f", ... ({len(values)} values)" if len(values) > 12 else ""
        return "one of " + ", ".join(repr(v) for v in values[:12]) + more
    kind = node.get("type")
    if kind == "string":
        if node.get("format") == "date":
            return "a date YYYY-MM-DD"
        if "pattern" in node:
            return _PATTERNS.get(node["pattern"], f"text matching {node['pattern']}")
        return "non-empty text" if node.get("minLength") else "text"
    if kind == ["string", "integer"]:
        return "text or a whole number"
    if kind in ("integer", "number"):
        noun = "a whole number" if kind == "integer" else "a number"
        if "exclusiveMinimum" in node:
            return f"{noun} > {node['exclusiveMinimum']}"
        if "minimum" in node and "maximum" in node:
            return f"{noun} from {node['minimum']} to {node['maximum']}"
        return noun
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        n = node.get("minItems")
        return f"a list of at least {n} item{'s' * (n != 1)}" if n else "a list"
    if kind == "object":
        req = node.get("required")
        return f"a mapping with {', '.join(req)}" if req else "a mapping"
    return None


def _known_keys(parts: list[str | int]) -> list[str]:
    node = _non_null(schema_at(parts))
    return list(node.get("properties", {})) if isinstance(node, dict) else []


def _summary(value: Any) -> Any:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return value


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _unknown_key(parts: list[Any], key: str) -> Finding:
    known = _known_keys(parts)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    msg = "unknown field" + (f", did you mean {close[0]!r}?" if close else "")
    return Finding(
        severity="error",
        field=".".join(str(p) for p in [*parts, key]),
        message=msg,
        expected="one of " + ", ".join(known) if known else "no such field",
        found=key,
    )


# --- pydantic errors -------------------------------------------------------------------------


def _from_pydantic(err: Mapping[str, Any]) -> Finding:
    loc = [p for p in err["loc"]]
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "curation":
        field = ".".join(str(p) for p in loc)
        if ctx.get("subfield"):
            field = f"{field}.{ctx['subfield']}" if field else ctx["subfield"]
        return Finding(
            severity="error", field=field, message=ctx["message"], expected=ctx.get("expected"), found=ctx.get("found")
        )
    if kind == "extra_forbidden":
        return _unknown_key(loc[:-1], str(loc[-1]))
    field = ".".join(str(p) for p in loc)
    expected = describe(schema_at(loc))
    found = None if kind == "missing" else _summary(err.get("input"))
    return Finding(severity="error", field=field, message=_pydantic_message(kind, ctx, err), expected=expected, found=found)


def _pydantic_message(kind: str, ctx: Mapping[str, Any], err: Mapping[str, Any]) -> str:
    if kind == "missing":
        return "required field is missing"
    if kind in ("enum", "literal_error"):
        return "not an allowed value"
    if kind == "greater_than":
        return f"must be greater than {_num(ctx.get('gt'))}"
    if kind == "greater_than_equal":
        return f"must be at least {_num(ctx.get('ge'))}"
    if kind == "less_than_equal":
        return f"must be at most {_num(ctx.get('le'))}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"needs at least {n} item{'s' * (n != 1)}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "int_from_float":
        return "must be a whole number"
    if kind.startswith("date"):
        return "not a valid date"
    if kind.endswith(("_type", "_parsing")):
        return "wrong type"
    return " ".join(str(err.get("msg", kind)).split())


# --- jsonschema errors -----------------------------------------------------------------------

_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def _from_jsonschema(err: Any, root: dict[str, Any]) -> list[Finding]:
    parts = [str(p) for p in err.absolute_path]
    field = ".".join(parts)
    kind = err.validator
    value = err.validator_value
    if kind in ("anyOf", "oneOf") and err.context:
        return _from_branches(err, root)
    if kind == "required":
        m = _REQUIRED.match(err.message)
        missing = [m.group(1)] if m else [r for r in value if r not in err.instance]
        props = err.schema.get("properties", {})
        return [
            Finding(
                severity="error",
                field=".".join([*parts, name]),
                message="required field is missing",
                expected=describe(props.get(name)) or describe(schema_at([*parts, name])),
                found=None,
            )
            for name in missing
        ]
    if kind == "additionalProperties":
        props = err.schema.get("properties", {})
        return [_unknown_key(parts, str(k)) for k in err.instance if k not in props]
    messages = {
        "type": "wrong type",
        "enum": "not an allowed value",
        "const": "not an allowed value",
        "pattern": "does not have the expected form",
        "exclusiveMinimum": f"must be greater than {_num(value)}",
        "minimum": f"must be at least {_num(value)}",
        "maximum": f"must be at most {_num(value)}",
        "minItems": f"needs at least {value} item{'s' * (value != 1) if isinstance(value, int) else ''}",
        "minLength": "must not be empty",
        "format": f"not a valid {value}",
    }
    message = messages.get(kind, " ".join(err.message.split()))
    expected = describe(err.schema) if kind != "const" else repr(value)
    return [Finding(severity="error", field=field, message=message, expected=expected, found=_summary(err.instance))]


def _from_branches(err: Any, root: dict[str, Any]) -> list[Finding]:
    """An anyOf failed: report the branch that was meant (the one not ``type: null``)."""
    from jsonschema.exceptions import best_match

    by_branch: dict[Any, list[Any]] = {}
    for sub in err.context:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = {
        k: subs
        for k, subs in by_branch.items()
        if not all(s.validator == "type" and s.validator_value == "null" for s in subs)
    }
    if len(meant) == 1:
        out: list[Finding] = []
        for sub in next(iter(meant.values())):
            out.extend(_from_jsonschema(sub, root))
        return out
    pool = [s for subs in meant.values() for s in subs]
    best = best_match(pool) if pool else None
    if best is None:
        parts = [str(p) for p in err.absolute_path]
        return [
            Finding(
                severity="error",
                field=".".join(parts),
                message="not an allowed value",
                expected=describe(err.schema),
                found=_summary(err.instance),
            )
        ]
    found = _from_jsonschema(best, root)
    # the branch's own expectation is narrower than the field's: describe the whole anyOf
    whole = describe(err.schema)
    return [f.model_copy(update={"expected": whole}) if whole else f for f in found]
