"""The one way curation reads a JSON, YAML or CSV document a user handed it.

Python's parsers fail on hostile input with exceptions that say nothing about the file:
``RecursionError`` on deep nesting, ``ValueError`` on a 5000-digit integer, an infinite
float for ``1e400``, ``UnicodeDecodeError`` on a Latin-1 CSV, ``csv.Error`` on a field
over 131072 characters. Every reader here caps the size before parsing and turns each of
those into the caller's :class:`~curation.errors.CurationError` subclass, one line naming
the file and, where it can be known, the field (``annotations.3.slice``) and what was
expected and found. YAML goes through :mod:`curation.safeyaml` (alias and depth bounds).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import CurationError
from .safeyaml import MAX_DEPTH, load_yaml, read_yaml

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "MAX_JSON_BYTES", "escape", "guard", "load_json", "load_yaml", "read_csv",
           "read_json", "read_text", "read_yaml", "require_regular"]

#: a JSON document larger than this is refused before parsing
MAX_JSON_BYTES = 64 * 1024 * 1024
#: integers with more digits than this are refused (no measurement needs them)
MAX_INT_DIGITS = 30
#: csv's own limit on one field; a longer field is refused with its row
MAX_CSV_FIELD = 131072


def escape(text: str, limit: int = 80) -> str:
    """``text`` safe to print on one line: control characters escaped (``\\x1b``), shortened."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


@contextlib.contextmanager
def guard(error: type[CurationError], *, path: str | Path | None = None, field: str | None = None,
          what: str = "the file") -> Iterator[None]:
    """Turn the standard library's failures on hostile input into ``error`` naming the file."""
    try:
        yield
    except CurationError:
        raise
    except RecursionError:
        raise error(f"{what} nests too deeply to read", path=path, field=field,
                    expected=f"at most {MAX_DEPTH} levels", found="deeper") from None
    except MemoryError:
        raise error(f"{what} needs more memory than this machine has", path=path, field=field,
                    hint="check that the input is what you meant; a much smaller one is expected") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (bad byte at offset {exc.start})", path=path, field=field,
                    expected="UTF-8 text", found=f"byte 0x{exc.object[exc.start]:02x}",
                    hint="save it as UTF-8") from None
    except OverflowError as exc:
        raise error(f"{what} holds a number too large: {exc}", path=path, field=field) from None


class _Bad:
    """Stands in for a number json would otherwise turn into a huge int or an infinite float."""

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why


def _parse_int(text: str) -> Any:
    digits = len(text.lstrip("-"))
    return _Bad(text, f"an integer of at most {MAX_INT_DIGITS} digits") if digits > MAX_INT_DIGITS else int(text)


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _Bad(text, "a finite number")


def _parse_constant(text: str) -> Any:
    return _Bad(text, "a finite number")


def _check_tree(doc: Any, error: type[CurationError], path: str | Path | None) -> None:
    """Walk the parsed document (iteratively): refuse depth and stand-ins, naming the field."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, _Bad):
            shown = node.text if len(node.text) <= 40 else f"{node.text[:20]}... ({len(node.text)} characters)"
            raise error("a number out of range", path=path, field=where or None, expected=node.why, found=shown)
        if depth > MAX_DEPTH and isinstance(node, (dict, list)):
            raise error("the document nests too deeply", path=path, field=where or None,
                        expected=f"at most {MAX_DEPTH} levels", found="deeper")
        if isinstance(node, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}.{i}" if where else str(i), depth + 1) for i, v in enumerate(node))


def load_json(source: str | bytes, *, path: str | Path | None = None, error: type[CurationError] = CurationError,
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse one JSON document; refuse huge, deep, NaN/infinite or 5000-digit content with ``error``."""
    size = len(source)
    if size > max_bytes:
        raise error("the JSON document is too large", path=path, expected=f"at most {max_bytes} bytes",
                    found=f"{size} bytes")
    with guard(error, path=path, what="the JSON document"):
        text = source.decode("utf-8-sig") if isinstance(source, bytes) else source
        try:
            doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        except json.JSONDecodeError as exc:
            raise error(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path) from None
        except ValueError as exc:  # what json.loads raises beyond its decode errors
            raise error(f"invalid JSON: {' '.join(str(exc).split())[:200]}", path=path) from None
    _check_tree(doc, error, path)
    return doc


def read_json(path: str | Path, *, error: type[CurationError] = CurationError, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """:func:`load_json` of a file, refused before reading when too large."""
    return load_json(_read_bytes(Path(path), error, max_bytes, "JSON file"), path=path, error=error,
                     max_bytes=max_bytes)


def require_regular(path: str | Path, error: type[CurationError], what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path``, refusing a folder, a named pipe or a device (reading one would
    block or never end) as ``error`` naming it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror or exc}", path=path) from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a named pipe" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise error(f"is {kind}, not a regular file", path=path, expected=f"a {what}", found=kind)
    return st


def _read_bytes(path: Path, error: type[CurationError], max_bytes: int, what: str) -> bytes:
    require_regular(path, error, what)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"the {what} is too large", path=path, expected=f"at most {max_bytes} bytes",
                        found=f"{size} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", path=path) from None


def read_text(path: str | Path, *, error: type[CurationError] = CurationError, max_bytes: int = MAX_JSON_BYTES,
              what: str = "text file") -> str:
    """A user's text file as str: refused when too large, binary (NUL bytes) or not UTF-8."""
    path = Path(path)
    raw = _read_bytes(path, error, max_bytes, what)
    nul = raw.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise error(f"a binary file, not a {what}", path=path, expected="UTF-8 text",
                    found=f"a NUL byte at offset {nul}")
    with guard(error, path=path, what=f"the {what}"):
        return raw.decode("utf-8-sig")


def read_csv(path: str | Path, *, error: type[CurationError] = CurationError,
             max_bytes: int = MAX_JSON_BYTES) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and ``(line, row)`` pairs of a UTF-8 CSV file.

    Refuses a binary or non-UTF-8 file, a header naming a column twice (compared without
    case and spaces) and, while iterating, a field over 131072 characters or a malformed row,
    each as ``error`` naming the row."""
    path = Path(path)
    text = read_text(path, error=error, max_bytes=max_bytes, what="CSV file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise error(f"not a readable CSV header: {exc}", path=path, field="header") from None
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        key = name.strip().lower()
        if key in seen:
            raise error("the header names a column twice", path=path, field=f"header, column {i + 1}",
                        expected="each column once", found=f"{escape(name)!r} as columns {seen[key] + 1} and {i + 1}")
        seen[key] = i

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line = reader.line_num
                if "field larger than field limit" in str(exc):
                    raise error("a field is too long", path=path, field=f"row {line}",
                                expected=f"at most {MAX_CSV_FIELD} characters", found="longer") from None
                raise error(f"a malformed CSV row: {exc}", path=path, field=f"row {line}") from None
            if not values:
                continue
            yield reader.line_num, dict(zip(header, values))

    return header, rows()
