"""Fixtures for the metadata tests: the example documents beside this file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parent / "examples"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def _full_doc() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "fibsem-full.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def full_doc(_full_doc: dict[str, Any]) -> dict[str, Any]:
    """The complete FIB-SEM example as a dict (a fresh copy per test)."""
    return copy.deepcopy(_full_doc)


@pytest.fixture
def minimal_doc() -> dict[str, Any]:
    """The smallest valid document (SBF-SEM)."""
    return yaml.safe_load((EXAMPLES / "sbfsem-minimal.yaml").read_text(encoding="utf-8"))
