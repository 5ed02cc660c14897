"""Declarative pipelines (``pipelines/*.yaml``): a validated list of steps over one
acquisition, each step one library call, each step kind registered
(:mod:`.registry`). ``curate demo`` runs ``pipelines/demo.yaml`` on a generated
phantom; ``curate run`` runs any pipeline file.
"""

from .model import Pipeline, PhantomConfig, Step, load_pipeline
from .registry import RunContext, StepKind, StepParams, kinds, step_kind
from .runner import run_pipeline

__all__ = ["PhantomConfig", "Pipeline", "RunContext", "Step", "StepKind", "StepParams", "kinds", "load_pipeline",
           "run_pipeline", "step_kind"]
