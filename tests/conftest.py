"""Shared fixtures: real instrument files from ../shared/data, a git identity, tmp archives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curation.tools import ensure_tool_path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CURATION_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require_shared() -> bool:
    return os.environ.get("CURATION_REQUIRE_SHARED_DATA", "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real instrument files. Skips when absent, fails when required."""
    if not SHARED_DATA.is_dir():
        msg = f"real test data not found at {SHARED_DATA}"
        if _require_shared():
            pytest.fail(msg + " and CURATION_REQUIRE_SHARED_DATA=1 is set")
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _git_identity():
    """Tests never rely on the machine's git identity."""
    env = {
        "GIT_AUTHOR_NAME": "Curation Tests",
        "GIT_AUTHOR_EMAIL": "tests@curation.invalid",
        "GIT_COMMITTER_NAME": "Curation Tests",
        "GIT_COMMITTER_EMAIL": "tests@curation.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ensure_tool_path()
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
