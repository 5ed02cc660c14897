"""OME-Zarr 0.5 on zarr v3: sharded, anisotropy-aware mean pyramids, written in one
streaming pass with one writer per shard, resumable after a crash."""

from .layout import Level, PyramidPlan, plan_pyramid

__all__ = ["Level", "PyramidPlan", "plan_pyramid"]
