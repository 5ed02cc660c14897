"""Load a YAML document someone else wrote, without letting it cost more than its size.

``yaml.safe_load`` already refuses to build arbitrary Python objects, but two things remain
open: a huge file, and an alias bomb ("billion laughs": a few lines of anchors ``&a`` and
aliases ``*a`` that expand into billions of nodes when the result is walked, as pydantic
validation does). Configuration files curation reads (pipelines, model cards) never need
anchors, so :func:`load_yaml` refuses aliases outright, caps the size and the nesting depth,
and reports every problem as one line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import CurationError

#: a configuration file larger than this is refused before parsing
MAX_BYTES = 1024 * 1024
#: deeper nesting than this is refused (no configuration needs it)
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise _Refused(f"YAML aliases (*{event.anchor}) are not allowed (line {line})",
                           "write the value out instead of referring to an anchor")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"the document nests deeper than {MAX_DEPTH} levels", None)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def load_yaml(source: str | bytes, *, path: str | Path | None = None,
              error: type[CurationError] = CurationError, max_bytes: int = MAX_BYTES) -> Any:
    """Parse one YAML document safely; raise ``error`` (a CurationError) on any problem."""
    raw = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    if len(raw) > max_bytes:
        raise error("the YAML document is too large", path=path, expected=f"at most {max_bytes} bytes",
                    found=f"{len(raw)} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("the YAML document is not UTF-8 text", path=path, found=str(exc)) from None
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise error(exc.message, path=path, hint=exc.hint) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {' '.join(str(exc).split())}", path=path) from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, *, error: type[CurationError] = CurationError,
              max_bytes: int = MAX_BYTES) -> Any:
    """:func:`load_yaml` of a file, refusing it before reading when it is too large."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error("the YAML file is too large", path=path, expected=f"at most {max_bytes} bytes",
                        found=f"{size} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return load_yaml(data, path=path, error=error, max_bytes=max_bytes)
