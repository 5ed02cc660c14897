"""Locate external tools (git-annex from PyPI lives in the virtualenv's ``bin/``)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import ToolError


def venv_bin() -> Path:
    """The ``bin/`` folder of the interpreter running us (the virtualenv's, usually)."""
    return Path(sys.executable).parent


def ensure_tool_path() -> None:
    """Put the virtualenv's ``bin/`` first on PATH so git-annex and its remotes are found.

    ``.venv/bin/curate`` can be run without activating the virtualenv; then git-annex,
    installed by pip into that same ``bin/``, is not on PATH and DataLad cannot find it.
    Idempotent and cheap; call it before any DataLad or git-annex work.
    """
    bindir = str(venv_bin())
    path = os.environ.get("PATH", "")
    parts = path.split(os.pathsep) if path else []
    if not parts or parts[0] != bindir:
        parts = [bindir] + [p for p in parts if p != bindir]
        os.environ["PATH"] = os.pathsep.join(parts)


def git_annex() -> str:
    ensure_tool_path()
    exe = shutil.which("git-annex")
    if not exe:
        raise ToolError(
            "git-annex is not installed",
            expected=f"git-annex in {venv_bin()} or on PATH",
            found="nothing",
            hint="run `make install` (pip installs the git-annex package into the virtualenv)",
        )
    return exe
