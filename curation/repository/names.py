"""Names of acquisitions, layers and files: safe on every file system and in URLs."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidNameError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: names Windows reserves for devices, with or without an extension (``NUL.txt`` too)
RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))})


def check_name(name: str, *, what: str = "acquisition name", field: str = "--name") -> str:
    """Return ``name`` if it is a safe single path component, else raise InvalidNameError."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"an {what} is required", field=field, found=name)
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise InvalidNameError(
            f"the {what} must be one plain folder name, without '/', '\\\\' or '..'",
            field=field, found=name, hint="use letters, digits, '.', '_' and '-'",
        )
    if not _NAME.match(name) or name.endswith(".") or name.lower().endswith(".ome.zarr"):
        raise InvalidNameError(
            f"the {what} may hold only letters, digits, '.', '_' and '-', start with a letter or digit "
            "and be at most 100 characters",
            field=field, found=name,
        )
    if name.split(".", 1)[0].upper() in RESERVED:
        raise InvalidNameError(
            f"the {what} is a device name reserved on Windows, where the archive could not be checked out",
            field=field, found=name, expected="a name other than CON, PRN, AUX, NUL, COM0-9, LPT0-9",
        )
    return name


def check_case(name: str, existing: Iterable[str], *, what: str = "acquisition name", field: str = "--name") -> str:
    """Refuse ``name`` when an existing name differs from it only by case (``BASE`` beside
    ``base``): the two would be one folder on macOS and Windows file systems."""
    for other in existing:
        if other != name and other.lower() == name.lower():
            raise InvalidNameError(
                f"the {what} differs from an existing one only by case; the two would collide on "
                "case-insensitive file systems (macOS, Windows)",
                field=field, expected=f"a name other than {other!r} in any case", found=name,
            )
    return name


def derive_name(stem: str) -> str:
    """A safe name from a file or folder name (``FIB run 3.dm4`` -> ``FIB_run_3``)."""
    for suffix in (".ome.zarr", ".tiff", ".tif", ".dm4", ".dm3", ".png", ".zarr"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return cleaned[:100] or "acquisition"
