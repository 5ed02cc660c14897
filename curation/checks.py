"""Refusals of values a user typed: numbers, DOIs, repeated values.

Each check returns the clean value or raises the caller's
:class:`~curation.errors.CurationError` subclass with one line: the field, what was
expected and what was found. The CLI's parameter types (``cli/params.py``) call the same
checks, so a library caller and a command-line user are refused in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import CurationError, OptionError


def number(value: Any, *, field: str, minimum: float = 0.0, maximum: float, inclusive_min: bool = False,
           error: type[CurationError] = OptionError) -> float:
    """``value`` as a finite float in (``minimum``, ``maximum``] (``[minimum, ...`` when ``inclusive_min``)."""
    lo = "[" if inclusive_min else "("
    expected = f"a finite number in {lo}{minimum:g}, {maximum:g}]"
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error("not a number", field=field, expected=expected, found=str(value)[:80]) from None
    if not math.isfinite(x):
        raise error("not a finite number", field=field, expected=expected, found=str(value)[:80])
    if x < minimum or (x == minimum and not inclusive_min) or x > maximum:
        raise error("out of range", field=field, expected=expected, found=f"{x:g}")
    return x


def doi(value: Any, *, field: str = "--doi", error: type[CurationError] = OptionError) -> str:
    """The bare DOI (``10.NNNN/suffix``; a doi.org URL or ``doi:`` prefix is stripped)."""
    from .metadata.identifiers import IdentifierProblem, check_doi

    try:
        bare = check_doi(value)
    except IdentifierProblem:
        raise error("not a DOI", field=field, expected="10.NNNN/suffix (e.g. 10.6019/EMPIAR-10310)",
                    found=str(value)[:120]) from None
    if ".." in bare.split("/") or any(not c.isprintable() for c in bare):
        raise error("not a DOI", field=field, expected="10.NNNN/suffix without '..' or control characters",
                    found=str(value)[:120])
    return bare


def unique(items: Iterable[tuple[Any, Any]], *, field: str, what: str = "value",
           error: type[CurationError] = OptionError) -> None:
    """Refuse a key given twice in ``(key, given_as)`` pairs, showing both."""
    seen: dict[Any, Any] = {}
    for key, given in items:
        if key in seen:
            raise error(f"the same {what} is given twice", field=field, expected=f"each {what} once",
                        found=f"{seen[key]} and {given}")
        seen[key] = given
