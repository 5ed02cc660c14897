"""Declarative pipelines (``pipelines/*.yaml``): a validated list of steps over one
acquisition, each step one library call. ``curate demo`` runs ``pipelines/demo.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PipelineError

STEP_KINDS = ("ingest", "labels-import", "labels-diff", "verify", "package")



class PhantomConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    shape: tuple[int, int, int] = (48, 256, 256)
    voxel_size_nm: float = Field(8.0, gt=0)
    seed: int = 0


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["ingest", "labels-import", "labels-diff", "verify", "package"]
    params: dict[str, Any] = Field(default_factory=dict)


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pipeline: str
    version: int = 1
    description: str = ""
    phantom: PhantomConfig = PhantomConfig()
    acquisition: str = "phantom"
    steps: list[Step]

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> list[dict]:
        out = []
        for i, item in enumerate(v or []):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"step {i} must be a mapping of one step kind to its parameters")
            (kind, params), = item.items()
            if kind not in STEP_KINDS:
                raise ValueError(f"step {i}: unknown kind {kind!r} (expected one of {', '.join(STEP_KINDS)})")
            out.append({"kind": kind, "params": params or {}})
        return out


def default_pipeline_path() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "pipelines" / "demo.yaml"


def load_pipeline(path: Path | str | None = None) -> Pipeline:
    path = Path(path) if path else default_pipeline_path()
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PipelineError(f"cannot read the pipeline: {exc.strerror or exc}", path=path) from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"not valid YAML: {' '.join(str(exc).split())}", path=path) from exc
    try:
        return Pipeline.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise PipelineError(err["msg"], path=path, field=field, found=err.get("input")) from exc
