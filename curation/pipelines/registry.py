"""Step kinds of the pipeline runner: a registry, as readers have one.

A step kind is a name (``ingest``, ``labels-import`` ...), a pydantic model of its
parameters (frozen, no unknown fields, so a typo in a pipeline file is refused with the
field named) and a function ``run(params, context) -> list[Result]`` that makes one
library call. Built-in kinds live in :mod:`curation.pipelines.steps` and the ``steps``
modules of curation's other packages (:data:`BUILTIN_STEP_MODULES`); other packages add
theirs with :func:`step_kind` in a module named by an entry point of the group
``curation.pipeline_steps`` (loaded when the registry is first read), so the runner never
changes when a step kind is added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..records import Result


class StepParams(BaseModel):
    """Base of every step's parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class RunContext:
    """What a step may use: the archive, the acquisition, folders, earlier results."""

    archive: Path
    acquisition: str
    #: where steps write what is not in the archive (packages, generated inputs)
    workdir: Path
    #: the folder of the pipeline file: relative paths in parameters start there
    base: Path
    #: the generated phantom, when the pipeline declares one (``curation.demo.phantom.Phantom``)
    phantom: Any = None
    progress: Callable | None = None
    results: list[Result] = field(default_factory=list)

    def path(self, text: str | Path) -> Path:
        p = Path(text)
        return p if p.is_absolute() else (self.base / p).resolve()


@dataclass(frozen=True)
class StepKind:
    name: str
    params: type[StepParams]
    run: Callable[[Any, RunContext], list[Result]]

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0] if self.run.__doc__ else ""


_KINDS: dict[str, StepKind] = {}
_LOADED = False
#: curation's own modules that register step kinds (others use the entry point group)
BUILTIN_STEP_MODULES = ("curation.pipelines.steps", "curation.analysis.steps", "curation.segmentation.steps")


def step_kind(name: str, params: type[StepParams]) -> Callable[[Callable], Callable]:
    """Register ``fn(params, context)`` as the step kind ``name``."""

    def deco(fn: Callable) -> Callable:
        _KINDS[name] = StepKind(name, params, fn)
        return fn

    return deco


def kinds() -> dict[str, StepKind]:
    """Every registered step kind (built-ins and entry points), by name."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from importlib import import_module
        from importlib.metadata import entry_points

        for module in BUILTIN_STEP_MODULES:
            try:
                import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is None or not module.startswith(exc.name):
                    raise
        for ep in entry_points(group="curation.pipeline_steps"):
            ep.load()
    return dict(_KINDS)
