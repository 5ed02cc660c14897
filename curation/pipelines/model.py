"""A pipeline file: which acquisition, optionally a generated phantom, and the steps.

::

    pipeline: demo
    version: 1
    phantom: {shape: [48, 256, 256], voxel_size_nm: 8.0, seed: 0}   # optional
    acquisition: phantom
    steps:
      - ingest: {}
      - labels-import: {layer: envelope, ground_truth: envelope, slices: [8, 24, 40]}

Each step is a mapping of one step kind to its parameters, validated by that kind's
parameter model (:mod:`.registry`); an unknown kind or parameter is refused with the
step and field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PipelineError
from ..safeyaml import read_yaml

#: bound on a pipeline file's size: pipelines are short
MAX_PIPELINE_BYTES = 1024 * 1024


class PhantomConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    shape: tuple[int, int, int] = (48, 256, 256)
    voxel_size_nm: float = Field(8.0, gt=0)
    seed: int = 0


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    kind: str
    params: Any


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pipeline: str
    version: int = 1
    description: str = ""
    phantom: PhantomConfig | None = None
    acquisition: str = "phantom"
    steps: list[Step]

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> list[Step]:
        from .registry import kinds

        known = kinds()
        out = []
        for i, item in enumerate(v or []):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"step {i} must be a mapping of one step kind to its parameters")
            (kind, params), = item.items()
            if kind not in known:
                raise ValueError(f"step {i}: unknown kind {kind!r} (expected one of {', '.join(sorted(known))})")
            try:
                out.append(Step(kind=kind, params=known[kind].params.model_validate(params or {})))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"step {i} ({kind}): {where}: {err['msg']}") from None
        return out


def pipelines_dir() -> Path:
    """The shipped pipeline definitions (``pipelines/`` at the top of the project)."""
    return Path(__file__).resolve().parent.parent.parent / "pipelines"


def default_pipeline_path() -> Path:
    return pipelines_dir() / "demo.yaml"


def load_pipeline(path: Path | str | None = None) -> Pipeline:
    path = Path(path) if path else default_pipeline_path()
    try:
        if path.stat().st_size > MAX_PIPELINE_BYTES:
            raise PipelineError("the pipeline file is too large", path=path,
                                expected=f"at most {MAX_PIPELINE_BYTES // 1024} KiB", found=f"{path.stat().st_size} bytes")
    except OSError as exc:
        raise PipelineError(f"cannot read the pipeline: {exc.strerror or exc}", path=path) from exc
    doc = read_yaml(path, error=PipelineError, max_bytes=MAX_PIPELINE_BYTES, aliases=True)
    try:
        return Pipeline.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise PipelineError(msg, path=path, field=field or None) from exc
