"""Typed result records, shared by the library, the CLI and the tests.

Every library operation returns (or yields) :class:`Result` records, in the manner of
DataLad: ``action``, ``status`` (ok, notneeded, impossible, error), ``path``, ``message``
and free ``data``. The CLI renders them as text or as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class Status(str, Enum):
    ok = "ok"
    notneeded = "notneeded"
    impossible = "impossible"
    error = "error"


FAILED = {Status.impossible, Status.error}


class Result(BaseModel):
    model_config = ConfigDict(frozen=True, use_enum_values=False)

    action: str
    status: Status
    path: str | None = None
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("status")
    def _ser_status(self, v: Status) -> str:
        return v.value

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# action, path and message are positional-only, so ``data`` may itself hold a "path" key
def ok(action: str, path: str | Path | None = None, message: str = "", /, **data: Any) -> Result:
    return Result(action=action, status=Status.ok, path=_p(path), message=message, data=data)


def notneeded(action: str, path: str | Path | None = None, message: str = "", /, **data: Any) -> Result:
    return Result(action=action, status=Status.notneeded, path=_p(path), message=message, data=data)


def impossible(action: str, path: str | Path | None = None, message: str = "", /, **data: Any) -> Result:
    return Result(action=action, status=Status.impossible, path=_p(path), message=message, data=data)


def error(action: str, path: str | Path | None = None, message: str = "", /, **data: Any) -> Result:
    return Result(action=action, status=Status.error, path=_p(path), message=message, data=data)


def _p(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def count(results: Iterable[Result], n: int | None = None, **match: Any) -> int:
    """Count records whose fields equal ``match`` (status may be given as a string)."""
    hits = 0
    for r in results:
        if all(_field(r, k) == (v.value if isinstance(v, Status) else v) for k, v in match.items()):
            hits += 1
    return hits


def _field(r: Result, key: str) -> Any:
    if key == "status":
        return r.status.value
    if hasattr(r, key):
        return getattr(r, key)
    return r.data.get(key)

