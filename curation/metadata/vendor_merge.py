"""Merging what vendor file tags say (beam energy, detector ...) into the user's metadata.

Readers report vendor tags as dotted metadata paths (``HeaderMetadata.fields``). A field
the user left empty is filled from them; a field the user set is compared, numbers with
a 1 % relative tolerance and text case-insensitively, and disagreements are returned for
the caller to report. The user's value always wins.
"""

from __future__ import annotations

import math
import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from curation.errors import MetadataError
from curation.metadata.document import get_path, to_jsonable
from curation.metadata.models import AcquisitionMetadata

#: relative tolerance when comparing numbers from the user and from vendor tags
REL_TOL = 0.01


def merge_vendor(
    md: AcquisitionMetadata, fields: dict[str, Any]
) -> tuple[AcquisitionMetadata, list[str], list[tuple[str, Any, Any]]]:
    """Fill empty fields from vendor tags and list disagreements with the user's values.

    Returns ``(metadata, filled, conflicts)``: the updated metadata, the dotted paths that
    were filled, and ``(field, user_value, vendor_value)`` for every disagreement. Keys
    that are not metadata fields, and vendor values the field cannot hold (the wrong type,
    or out of range, e.g. a dwell time of 0), are ignored.
    """
    filled: list[str] = []
    conflicts: list[tuple[str, Any, Any]] = []
    updates: dict[str, Any] = {}
    for path, raw in fields.items():
        kind = field_type(path)
        if kind is None or raw is None:
            continue
        try:
            vendor = _coerce(kind, raw)
        except (TypeError, ValueError):
            continue
        user = get_path(md, path)
        if user is None:
            updates[path] = vendor
            filled.append(path)
        elif not values_agree(user, vendor):
            conflicts.append((path, _plain(user), _plain(vendor)))
    if not updates:
        return md, filled, conflicts
    try:
        return md.with_fields(updates), filled, conflicts
    except MetadataError:
        pass
    kept: list[str] = []
    for path in filled:  # one at a time, leaving out vendor values the document cannot hold
        try:
            md = md.with_fields({path: updates[path]})
        except MetadataError:
            continue
        kept.append(path)
    return md, kept, conflicts


def field_type(path: str) -> Any:
    """The Python type of the field at a dotted path of AcquisitionMetadata, or None."""
    current: Any = AcquisitionMetadata
    for part in path.split("."):
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if origin is list:
            if not part.isdigit():
                return None
            current = typing.get_args(current)[0]
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = info.annotation
    return _unwrap(current)


def _unwrap(t: Any) -> Any:
    """Strip Optional[...] and Annotated[...]."""
    for _ in range(8):
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(t) if a is not type(None)]
            if len(args) != 1:
                return t
            t = args[0]
        else:
            return t
    return t


def _coerce(kind: Any, value: Any) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise TypeError("a boolean")
    if kind is float:
        out = float(value)
        if not math.isfinite(out):
            raise ValueError("not finite")
        return out
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("not whole")
        return int(value)
    if kind is date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            text = value.strip()
            try:
                return date.fromisoformat(text)
            except ValueError:
                return datetime.fromisoformat(text).date()
        raise TypeError("not a date")
    if isinstance(kind, type) and issubclass(kind, Enum):
        for member in kind:
            if str(member.value).casefold() == str(value).strip().casefold():
                return member
        raise ValueError("not a member")
    if kind is str or typing.get_origin(kind) is typing.Literal:
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise TypeError("not text")
        return value.strip()
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        if isinstance(value, BaseModel):
            return value
        if isinstance(value, dict):
            return to_jsonable(value)
        raise TypeError("not a mapping")
    if kind is bool and isinstance(value, bool):
        return value
    raise TypeError(f"cannot merge into {kind!r}")


def values_agree(user: Any, vendor: Any) -> bool:
    """Numbers within 1 %, text case-insensitively, dates by day, mappings field by field."""
    user, vendor = _plain(user), _plain(vendor)
    if isinstance(user, datetime):
        user = user.date()
    if isinstance(vendor, datetime):
        vendor = vendor.date()
    if _is_number(user) and _is_number(vendor):
        return math.isclose(float(user), float(vendor), rel_tol=REL_TOL)
    if isinstance(user, str) and isinstance(vendor, str):
        return " ".join(user.split()).casefold() == " ".join(vendor.split()).casefold()
    if isinstance(user, dict) and isinstance(vendor, dict):
        keys = set(user) | set(vendor)
        return all(
            user.get(k) is None or vendor.get(k) is None or values_agree(user[k], vendor[k]) for k in keys
        )
    return user == vendor


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json", exclude_none=True)
    return v
