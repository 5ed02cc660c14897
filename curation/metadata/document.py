"""Reading and writing metadata documents: YAML or JSON, line numbers, dotted paths."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from curation.errors import MetadataError
from curation.safeload import load_json, require_regular
from curation.safeyaml import BoundedLoader, Refused

#: a metadata document larger than this is refused before parsing (real ones are a few KB)
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024

# --- YAML with duplicate-key detection ------------------------------------------------------


class _Loader(BoundedLoader):
    """Bounded SafeLoader (aliases, depth: see :mod:`curation.safeyaml`) that refuses
    duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given at line {first})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_document(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Read a YAML or JSON metadata file.

    Returns the top-level mapping and a map from dotted field paths to 1-based line
    numbers. Raises MetadataError naming the file (and line) when it cannot be read, is
    not valid YAML/JSON, or its top level is not a mapping.
    """
    p = Path(path)
    require_regular(p, MetadataError, "metadata file")
    try:
        size = p.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise MetadataError("the metadata file is too large", path=p,
                                expected=f"at most {MAX_DOCUMENT_BYTES} bytes", found=f"{size} bytes")
        raw = p.read_bytes()
    except OSError as e:
        raise MetadataError(f"cannot read the metadata file: {e.strerror or e}", path=p) from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MetadataError(f"not UTF-8 text (bad byte at offset {e.start})", path=p) from e
    return parse_text(text, path=p, json_only=p.suffix.lower() == ".json")


def parse_text(
    text: str, *, path: str | os.PathLike[str] | None = None, json_only: bool = False
) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse document text (YAML, or JSON when ``json_only``); see :func:`read_document`."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise MetadataError("the metadata document is too large", path=path,
                            expected=f"at most {MAX_DOCUMENT_BYTES} characters", found=f"{len(text)} characters")
    if json_only:
        data = load_json(text, path=path, error=MetadataError)
    else:
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except Refused as e:
            where = f" (line {e.line})" if e.line and "line" not in e.message else ""
            raise MetadataError(f"{e.message}{where}", path=path, hint=e.hint) from None
        except RecursionError:
            raise MetadataError("the document nests too deeply", path=path) from None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = " ".join(str(e.problem or e.context or "syntax error").split())
            raise MetadataError(f"invalid YAML{where}: {what}", path=path) from e
        except yaml.YAMLError as e:
            raise MetadataError(f"invalid YAML: {' '.join(str(e).split())}", path=path) from e
        except (RecursionError, ValueError, OverflowError) as e:  # deep nesting, a 5000-digit number
            raise MetadataError(f"the YAML cannot be read: {_why(e)}", path=path) from None
    if data is None:
        raise MetadataError("the metadata file is empty", path=path, expected="a mapping")
    if not isinstance(data, dict):
        raise MetadataError(
            "top level of the document must be a mapping (at line 1)",
            path=path,
            expected="a mapping of sections (schema_version, study, ...)",
            found=_kind(data),
        )
    return data, line_map(text)


def _why(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    text = " ".join(str(e).split())
    if "digits" in text:
        return "a number with too many digits"
    return text[:200]


def line_map(text: str) -> dict[str, int]:
    """Dotted path -> 1-based line of its key (or list item); empty if the text won't compose."""
    try:
        node = yaml.compose(text, Loader=_Loader)  # noqa: S506
    except (yaml.YAMLError, Refused, RecursionError, ValueError):
        return {}
    out: dict[str, int] = {}
    _walk_nodes(node, "", out, 0)
    return out


def _walk_nodes(node: Any, prefix: str, out: dict[str, int], depth: int) -> None:
    if depth > 64:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            p = f"{prefix}.{key_node.value}" if prefix else key_node.value
            out.setdefault(p, key_node.start_mark.line + 1)
            _walk_nodes(value_node, p, out, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            p = f"{prefix}.{i}" if prefix else str(i)
            out.setdefault(p, item.start_mark.line + 1)
            _walk_nodes(item, p, out, depth + 1)


def line_of(lines: dict[str, int], field: str) -> int | None:
    """Line of ``field``, or of its nearest parent present in the file."""
    parts = field.split(".") if field else []
    while parts:
        hit = lines.get(".".join(parts))
        if hit is not None:
            return hit
        parts.pop()
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"


# --- normalising values -----------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Dates as ISO text, enums as values, models as dicts, tuples as lists, keys as text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def prune(value: Any) -> Any:
    """Drop empty entries: keys whose value is null, mappings left empty, empty list items.

    A field left blank in a YAML template (``tissue:``) means "not given", exactly as if
    the key were absent; a section whose fields are all blank disappears with them.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = prune(v)
            if v is None or (isinstance(v, dict) and not v):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if v is not None and not (isinstance(v, dict) and not v)]
    return value


# --- dotted paths ----------------------------------------------------------------------------


def get_path(data: Any, path: str) -> Any:
    """Value at a dotted path in dicts/lists (or model attributes); None when absent."""
    current = data
    for part in path.split("."):
        if current is None:
            return None
        if isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, BaseModel):
            current = getattr(current, part, None)
        else:
            return None
    return current


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a document dict, creating mappings on the way; None removes it."""
    parts = path.split(".")
    if not all(parts):
        raise MetadataError("not a dotted field path", field=path, expected="e.g. acquisition.detector")
    current: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        child_default: Any = [] if nxt.isdigit() else {}
        if isinstance(current, list):
            idx = _index(current, part, path)
            if idx == len(current):
                current.append(child_default)
            if not isinstance(current[idx], (dict, list)):
                current[idx] = child_default
            current = current[idx]
        else:
            if not isinstance(current.get(part), (dict, list)):
                current[part] = child_default
            current = current[part]
    last = parts[-1]
    if isinstance(current, list):
        idx = _index(current, last, path)
        if value is None:
            if idx < len(current):
                del current[idx]
        elif idx == len(current):
            current.append(to_jsonable(value))
        else:
            current[idx] = to_jsonable(value)
    elif value is None:
        current.pop(last, None)
    else:
        current[last] = to_jsonable(value)


def _index(items: list, part: str, path: str) -> int:
    if not part.isdigit() or int(part) > len(items):
        raise MetadataError(
            "no such list item", field=path, expected=f"an index from 0 to {len(items)}", found=part
        )
    return int(part)


# --- writing ---------------------------------------------------------------------------------


def dump_text(data: dict[str, Any], *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
