"""``curate run``: a pipeline file's steps on an existing archive."""

from __future__ import annotations

from pathlib import Path

from ..errors import PipelineError
from ..records import Result
from ..repository.archive import open_archive
from .model import load_pipeline
from .registry import RunContext
from .runner import run_pipeline


def run_file(archive: Path | str, pipeline: Path | str, *, acquisition: str | None = None,
             workdir: Path | str | None = None) -> list[Result]:
    """Run every step of the pipeline at ``pipeline`` on ``archive``. Paths in step
    parameters are relative to the pipeline file; outputs that are not archived (packages)
    go to ``workdir`` (default: the current folder)."""
    path = Path(pipeline)
    plan = load_pipeline(path)
    if plan.phantom is not None:
        raise PipelineError("this pipeline generates a phantom: run it with `curate demo DIR --pipeline FILE`",
                            path=path, field="phantom")
    root = open_archive(archive).root
    ctx = RunContext(archive=root, acquisition=acquisition or plan.acquisition,
                     workdir=Path(workdir or ".").resolve(), base=path.resolve().parent)
    return run_pipeline(plan, ctx)
