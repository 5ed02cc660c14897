"""Templates for archive, acquisition and deposit READMEs (``archive_templates/``).

Plain ``string.Template`` (``$name``) files: librarians can edit them without learning a
template language. A missing variable is an error, never a silent blank.
"""

from __future__ import annotations

import os
from pathlib import Path
from string import Template

from .errors import CurationError


def templates_dir() -> Path:
    env = os.environ.get("CURATION_TEMPLATES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "archive_templates"


def render(name: str, /, **values: object) -> str:
    path = templates_dir() / name
    try:
        text = path.read_text()
    except OSError as exc:
        raise CurationError("template not found", path=path,
                            hint="set CURATION_TEMPLATES to the archive_templates folder") from exc
    try:
        return Template(text).substitute({k: "" if v is None else str(v) for k, v in values.items()})
    except KeyError as exc:
        raise CurationError(f"template needs a value for ${exc.args[0]}", path=path) from exc
