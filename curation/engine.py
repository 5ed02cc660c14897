"""The Dask distributed engine behind ingest and every blockwise job.

* Default: an in-process ``LocalCluster`` (threads) sized to the machine and to the
  memory cap. numpy, zstd and hashlib release the GIL, so threads use every core, and
  one process keeps the baseline memory low.
* ``scheduler="processes"``: a ``LocalCluster`` of worker processes.
* ``scheduler="tcp://host:8786"`` (or any address): an existing cluster, e.g. one started
  by dask-jobqueue on SLURM. Workers there must see the same file system paths.
* ``client=``: an existing ``distributed.Client`` (used by tests and notebooks).

The memory cap bounds ``concurrency x per-task memory``; a task holds at most one shard
plus its codec buffers, so peak memory is set by the cap and the shard size, never by
the size of the volume.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from .errors import EngineError

#: memory a task holds per byte of shard: it streams the shard by slabs of chunk rows
#: (an eighth of a 512-deep shard), and keeps the downsampled piece (a quarter at most)
TASK_MEMORY_FACTOR = 0.75
#: resident memory of the interpreter with numpy, zarr and distributed imported
BASELINE_BYTES = 350 * 1024**2

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4,
          "tb": 1000**4, "tib": 1024**4}



def parse_bytes(text: str | int | None) -> int | None:
    """'2GiB', '1.5 GB', '512M' or a number of bytes; None stays None."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise EngineError("not a memory size", field="--memory-limit",
                          expected="a size such as 2GiB, 1.5GB or 800MB", found=text)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_memory_limit() -> int:
    """A quarter of the machine's memory, at most 1 GiB plus 512 MiB per core."""
    total = psutil.virtual_memory().total
    cores = os.cpu_count() or 1
    return int(min(total // 4, 1024**3 + cores * 512 * 1024**2))


def plan_concurrency(memory_limit: int, shard_bytes: int, cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    usable = max(memory_limit - BASELINE_BYTES, 0)
    return max(1, min(cores, int(usable // (TASK_MEMORY_FACTOR * shard_bytes))))


def shard_bytes_for(memory_limit: int, default: int) -> int:
    """Shrink the shard when the cap cannot hold even one task of the default size."""
    usable = max(memory_limit - BASELINE_BYTES, 16 * 1024**2)
    fit = int(usable // TASK_MEMORY_FACTOR)
    return max(min(default, fit), 2 * 1024**2)


class Engine:
    """A context manager around a ``distributed.Client``."""

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        client: Any = None,
        memory_limit: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.scheduler = scheduler or "local"
        self._client = client
        self._own: list[Any] = []
        self.memory_limit = memory_limit or default_memory_limit()
        self.concurrency = concurrency or (os.cpu_count() or 1)

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        from distributed import Client, LocalCluster

        if self._client is not None:
            return self
        try:
            if self.scheduler in ("local", "threads"):
                # memory_limit=0: an in-process worker's RSS is the host process's RSS
                # (a test runner's or a server's own memory, the file-backed pages of a
                # memory-mapped source), so Dask's pause/spill thresholds would fire on
                # memory the job does not hold and pause the worker forever. The cap is
                # enforced by planning concurrency x task memory (plan_concurrency).
                cluster = LocalCluster(
                    processes=False, n_workers=1, threads_per_worker=self.concurrency,
                    memory_limit=0, dashboard_address=None,
                )
            elif self.scheduler == "processes":
                cluster = LocalCluster(
                    processes=True, n_workers=self.concurrency, threads_per_worker=1,
                    memory_limit=max(self.memory_limit // self.concurrency, 256 * 1024**2),
                    dashboard_address=None,
                )
            else:
                cluster = None
            if cluster is not None:
                self._own.append(cluster)
                self._client = Client(cluster, set_as_default=False)
            else:
                self._client = Client(self.scheduler, timeout="20s", set_as_default=False)
            self._own.insert(0, self._client)
        except OSError as exc:
            raise EngineError(f"cannot reach the Dask scheduler ({exc})", field="--scheduler",
                              found=self.scheduler,
                              hint="start it first, or leave --scheduler out for a local cluster") from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        for thing in self._own:
            try:
                thing.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        self._own.clear()

    @property
    def client(self):
        if self._client is None:
            raise RuntimeError("Engine used outside its context")
        return self._client

    def n_threads(self) -> int:
        return sum(self.client.nthreads().values()) or 1

    # --- work --------------------------------------------------------------------------

    def scatter(self, obj: Any) -> Any:
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any, priority: int = 0, key: str | None = None) -> Any:
        kw: dict[str, Any] = {"priority": priority, "pure": False}
        if key:
            kw["key"] = key
        return self.client.submit(fn, *args, **kw)

    def as_completed(self, futures: Iterable[Any]):
        from distributed import as_completed

        return as_completed(list(futures), with_results=False, loop=self.client.loop)
