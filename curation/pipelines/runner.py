"""Running a pipeline: each step in order, one library call each, results collected."""

from __future__ import annotations

from ..records import Result
from .model import Pipeline
from .registry import RunContext, kinds


def run_pipeline(pipeline: Pipeline, ctx: RunContext) -> list[Result]:
    """Run every step of ``pipeline``; a step that raises stops the run (its error is the
    caller's to report); a step whose records failed stops it too."""
    known = kinds()
    for step in pipeline.steps:
        records = known[step.kind].run(step.params, ctx)
        ctx.results.extend(records)
        if any(r.failed for r in records):
            break
    return ctx.results
