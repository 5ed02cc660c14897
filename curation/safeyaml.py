"""Load a YAML document someone else wrote, without letting it cost more than its size.

``yaml.safe_load`` already refuses to build arbitrary Python objects, but three things
remain open: a huge file, deep nesting (a RecursionError in the composer), and an alias
bomb ("billion laughs": a few lines of anchors ``&a`` and aliases ``*a`` that expand into
billions of nodes when the result is walked, as pydantic validation and the line map of a
metadata document do). :class:`BoundedLoader` counts every node an alias would expand into
and refuses the document once the total passes :data:`MAX_NODES`; configuration files
(pipelines, model cards) never need anchors, so :func:`load_yaml` refuses aliases outright
unless ``aliases=True``. The size is capped before parsing, the depth while composing, and
every problem is reported as one line naming the file (and the line).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import CurationError

#: a configuration file larger than this is refused before parsing
MAX_BYTES = 1024 * 1024
#: deeper nesting than this is refused (no configuration needs it)
MAX_DEPTH = 64
#: at most this many nodes, aliases counted as the nodes they expand into
MAX_NODES = 200_000
#: integers with more digits than this are refused (no measurement needs them)
MAX_INT_DIGITS = 30


class Refused(Exception):
    """A document refused by :class:`BoundedLoader`; callers turn it into their CurationError."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.line = message, hint, line


_Refused = Refused  # the former private name


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with a depth cap and a budget of expanded nodes (aliases included).

    ``allow_aliases`` (a class attribute) says whether aliases are accepted at all."""

    allow_aliases = True
    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}

    def _expanded_size(self, node: Any) -> int:
        """Nodes ``node`` stands for when fully expanded (memoised: aliases share nodes)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += self._expanded_size(k) + self._expanded_size(v)
                if total > self.max_nodes:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += self._expanded_size(item)
                if total > self.max_nodes:
                    break
        self._sizes[id(node)] = total
        return total

    def _spend(self, n: int, event: Any) -> None:
        self._nodes += n
        if self._nodes > self.max_nodes:
            raise Refused(f"the document expands into more than {self.max_nodes} values"
                          + (" through its aliases" if isinstance(event, yaml.AliasEvent) else ""),
                          "write the document without anchors and aliases (*name)", _line(event))

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if not self.allow_aliases:
                raise Refused(f"YAML aliases (*{event.anchor}) are not allowed (line {_line(event) or '?'})",
                              "write the value out instead of referring to an anchor", _line(event))
            anchor = self.anchors.get(event.anchor)
            if anchor is not None:
                self._spend(self._expanded_size(anchor), event)
            return super().compose_node(parent, index)
        event = self.peek_event()
        self._spend(1, event)
        self._depth += 1
        if self._depth > self.max_depth:
            raise Refused(f"the document nests deeper than {self.max_depth} levels (line {_line(event) or '?'})",
                          None, _line(event))
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_int(loader: BoundedLoader, node: Any) -> Any:
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise Refused(f"an integer of {digits} digits (line {node.start_mark.line + 1})", None,
                      node.start_mark.line + 1)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _construct_float(loader: BoundedLoader, node: Any) -> Any:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if value != value or value in (float("inf"), float("-inf")):
        if not str(node.value).lower().lstrip("+-").startswith(".") or len(str(node.value)) > 5:
            raise Refused(f"a number out of range: {str(node.value)[:40]!r} (line {node.start_mark.line + 1})",
                          "write a finite number", node.start_mark.line + 1)
    return value


def _construct_timestamp(loader: BoundedLoader, node: Any) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError) as exc:
        raise Refused(f"not a valid date: {str(node.value)[:40]!r}, {exc} (line {node.start_mark.line + 1})",
                      "write the date as YYYY-MM-DD, or quote it to keep it as text",
                      node.start_mark.line + 1) from None


BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
BoundedLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class _Loader(BoundedLoader):
    allow_aliases = False


def load_yaml(source: str | bytes, *, path: str | Path | None = None,
              error: type[CurationError] = CurationError, max_bytes: int = MAX_BYTES,
              aliases: bool = False) -> Any:
    """Parse one YAML document safely; raise ``error`` (a CurationError) on any problem."""
    raw = source.encode("utf-8") if isinstance(source, str) else bytes(source)
    if len(raw) > max_bytes:
        raise error("the YAML document is too large", path=path, expected=f"at most {max_bytes} bytes",
                    found=f"{len(raw)} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"the YAML document is not UTF-8 text (bad byte at offset {exc.start})", path=path,
                    hint="save it as UTF-8") from None
    loader = (BoundedLoader if aliases else _Loader)(text)
    try:
        return loader.get_single_data()
    except Refused as exc:
        raise error(exc.message, path=path, hint=exc.hint) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {' '.join(str(exc).split())}", path=path) from None
    except RecursionError:
        raise error(f"the document nests deeper than {MAX_DEPTH} levels", path=path) from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, *, error: type[CurationError] = CurationError,
              max_bytes: int = MAX_BYTES, aliases: bool = False) -> Any:
    """:func:`load_yaml` of a file, refusing it before reading when it is too large."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise error("is not a regular file (a folder, a named pipe or a device)", path=path,
                        expected="a YAML file")
        size = path.stat().st_size
        if size > max_bytes:
            raise error("the YAML file is too large", path=path, expected=f"at most {max_bytes} bytes",
                        found=f"{size} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    return load_yaml(data, path=path, error=error, max_bytes=max_bytes, aliases=aliases)
