"""What the pages show, prepared in Python: the metadata as form sections, the viewer's
configuration, the neuroglancer state, and the fixed sets of static files served.

Nothing here touches the archive; it works on :mod:`.catalog` view records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .catalog import Geometry, Version

#: our own static files: name -> media type (only these are served)
STATIC = {"viewer.js": "text/javascript", "catalog.js": "text/javascript", "style.css": "text/css"}
_NG_NAME = re.compile(r"^[a-z0-9][a-zA-Z0-9_.-]*\.(?:js|css|wasm|html)$")
NG_TYPES = {".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".html": "text/html"}


_UNITS = {"nm": "nm", "um": "µm", "mm": "mm", "kv": "kV", "na": "nA", "pa": "pA", "us": "µs", "ns": "ns",
          "ms": "ms", "s": "s", "ev": "eV", "kev": "keV", "mbar": "mbar", "pct": "%"}
_ACRONYMS = {"id": "ID", "orcid": "ORCID", "ncbi": "NCBI", "doi": "DOI", "url": "URL", "spdx": "SPDX", "rembi": "REMBI"}


def humanize(key: str) -> str:
    """``beam_current_na`` -> ``Beam current (nA)``; ``ncbi_taxon`` -> ``NCBI taxon``."""
    words = [w for w in re.split(r"[_\-\s]+", str(key)) if w]
    unit = ""
    if len(words) > 1 and words[-1].lower() in _UNITS:
        unit = f" ({_UNITS[words.pop().lower()]})"
    words = [_ACRONYMS.get(w.lower(), w) for w in words]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + unit


def metadata_sections(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The metadata document as form sections: ``[{"title", "fields": [{"label", "value",
    "long"}]}]``, nested objects flattened as ``Organism › Scientific name``."""
    sections = []
    for key, value in doc.items():
        if key in ("schema_version", "schemaKey"):
            continue
        fields: list[dict[str, Any]] = []
        if isinstance(value, Mapping):
            _flatten(value, [], fields)
        else:
            _flatten({key: value}, [], fields)
        if fields:
            sections.append({"title": humanize(key), "fields": fields})
    return sections


def _flatten(value: Any, path: list[str], out: list[dict[str, Any]]) -> None:
    if isinstance(value, Mapping):
        if set(value) == {"value", "unit"}:  # a quantity
            out.append(_field(path, f"{value['value']} {value['unit']}"))
            return
        for k, v in value.items():
            _flatten(v, path + [humanize(k)], out)
    elif isinstance(value, list):
        if all(not isinstance(v, (Mapping, list)) for v in value):
            out.append(_field(path, ", ".join(str(v) for v in value)))
        else:
            for i, v in enumerate(value, 1):
                _flatten(v, path[:-1] + [f"{path[-1] if path else 'Item'} {i}"], out)
    elif value is not None and value != "":
        out.append(_field(path, value))


def _field(path: list[str], value: Any) -> dict[str, Any]:
    text = "yes" if value is True else "no" if value is False else str(value)
    return {"label": " › ".join(path) or "Value", "value": text, "long": len(text) > 90}


def version_json(v: Version) -> dict[str, Any]:
    return {
        "address": v.address, "layer": v.layer, "version": v.version, "kind": v.kind, "parents": list(v.parents),
        "creator": v.creator, "created": v.created, "note": v.note, "dtype": v.dtype, "unlabeled": v.unlabeled,
        "annotated": dict(v.annotated), "label_values": list(v.label_values),
        "colors": {str(k): list(c) for k, c in v.colors.items()}, "names": {str(k): n for k, n in v.names.items()},
    }


def viewer_config(name: str, geo: Geometry, window: tuple[float, float], versions: list[Version],
                  allow_edit: bool) -> dict[str, Any]:
    return {
        "name": name, "shape": list(geo.shape), "dtype": geo.dtype, "voxel_size_nm": list(geo.voxel_size_nm),
        "levels": [{"index": lv.index, "shape": list(lv.shape), "scale_nm": list(lv.scale_nm)} for lv in geo.levels],
        "window": list(window), "versions": [version_json(v) for v in versions], "allow_edit": allow_edit,
        "tile_size": 512,
    }


def neuroglancer_state(base_url: str, name: str, geo: Geometry, versions: list[Version]) -> dict[str, Any]:
    """A neuroglancer state showing the image and every label version, read as zarr v3
    over this server (``base_url`` ends with '/')."""
    src = f"{base_url}zarr/{quote(name)}/"
    dims = {ax: [s * 1e-9, "m"] for ax, s in zip("zyx", geo.voxel_size_nm)}
    layers: list[dict[str, Any]] = [{"type": "image", "source": f"zarr3://{src}", "name": name}]
    for v in versions:
        layers.append({"type": "segmentation", "source": f"zarr3://{src}labels/{quote(v.group)}/",
                       "name": v.address, "visible": v is versions[-1],
                       "segmentColors": {str(k): "#%02x%02x%02x" % tuple(c[:3]) for k, c in v.colors.items()
                                         if k not in (0, v.unlabeled)},
                       "segments": [str(k) for k in v.label_values if k not in (0, v.unlabeled)][:64]})
    center = [n / 2 for n in geo.shape]
    return {"dimensions": dims, "position": center, "crossSectionScale": 1, "projectionScale": 512,
            "layers": layers, "layout": "4panel", "selectedLayer": {"layer": name}}


def neuroglancer_fragment(state: Mapping[str, Any]) -> str:
    return "!" + quote(json.dumps(state, separators=(",", ":")), safe="")


def static_files() -> dict[str, Path]:
    base = Path(__file__).resolve().parent / "static"
    return {n: base / n for n in STATIC if (base / n).is_file()}


def neuroglancer_files() -> dict[str, tuple[Path, str]]:
    """The bundled neuroglancer client of the ``neuroglancer`` wheel: file name -> (path,
    media type); empty when the wheel is not installed. Found without importing the
    package, listed once, served by name only."""
    spec = importlib.util.find_spec("neuroglancer")
    if spec is None or not spec.origin:
        return {}
    root = Path(spec.origin).parent / "static" / "client"
    if not root.is_dir():
        return {}
    return {p.name: (p, NG_TYPES[p.suffix]) for p in root.iterdir()
            if _NG_NAME.match(p.name) and p.suffix in NG_TYPES and p.is_file()}
