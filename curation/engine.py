"""The engine behind ingest and every blockwise job, chosen per job.

Kinds (``Engine.kind``, recorded in the run record's :class:`EngineInfo`):

* ``threads``: a priority thread pool in this process, no Dask at all. The default for
  jobs under :data:`CLUSTER_MIN_BYTES`: starting a Dask cluster costs a second or more
  (imports, scheduler, worker), which is most of a small command's time. numpy, zstd and
  hashlib release the GIL, so threads use every core.
* ``cluster``: an in-process Dask ``LocalCluster`` (threads), the default for large jobs
  (its scheduler keeps thousands of tasks in priority order and shows a dashboard when
  asked). ``scheduler="cluster"`` forces it, ``scheduler="threads"`` forces the pool.
* ``processes``: a ``LocalCluster`` of worker processes.
* ``external`` (``scheduler="tcp://host:8786"`` or any address): an existing cluster,
  e.g. one started by dask-jobqueue on SLURM. Workers must see the same paths.
* ``client``: an existing ``distributed.Client`` (tests and notebooks).

The memory cap is enforced here, not by Dask: it bounds ``concurrency x per-task
memory`` (:func:`plan_concurrency`; a task holds at most one shard plus its codec
buffers) and the shard size (:func:`shard_bytes_for`). For the clusters it starts, the
engine turns Dask's own memory monitor off: it reads the process's resident memory, which
also counts the interpreter's baseline and any file-backed pages, and a paused in-process
worker never resumes (issue 13). Readers use positioned reads, not memory maps, so the
resident memory a job adds is anonymous memory bounded by that plan. A stall watchdog
(:meth:`Engine.next_done` with a timeout) turns any remaining hang into an error.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future
from typing import Any

import psutil

from .errors import EngineError

#: memory a task holds per byte of shard: it streams the shard by slabs of chunk rows
#: (an eighth of a 512-deep shard), and keeps the downsampled piece (a quarter at most)
TASK_MEMORY_FACTOR = 0.75
#: resident memory of the interpreter with numpy, zarr and distributed imported
BASELINE_BYTES = 350 * 1024**2
#: jobs (bytes of level 0) at least this large run on a Dask LocalCluster by default
CLUSTER_MIN_BYTES = 2 * 1024**3
#: seconds to wait for a Dask client or cluster to close after a failed job
CLOSE_AFTER_ERROR_S = 3
KINDS = ("threads", "cluster", "processes", "external", "client")

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


def choose_kind(scheduler: str | None, *, client: Any = None, job_bytes: int | None = None) -> str:
    """The engine kind for a job: see the module docstring."""
    if client is not None:
        return "client"
    if scheduler in (None, "", "auto"):
        # no job size given (a caller driving the engine itself): the Dask cluster, as before
        return "threads" if job_bytes is not None and job_bytes < CLUSTER_MIN_BYTES else "cluster"
    if scheduler in ("threads", "pool"):
        return "threads"
    if scheduler in ("local", "cluster"):
        return "cluster"
    if scheduler == "processes":
        return "processes"
    return "external"


class _PriorityPool:
    """A thread pool that runs the highest-priority queued task first (as Dask does):
    parents of the pyramid go before more level-0 shards, so pieces do not pile up."""

    def __init__(self, workers: int) -> None:
        self._heap: list[tuple[int, int, Future, Callable[..., Any], tuple]] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"curation-engine-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], args: tuple, priority: int) -> Future:
        fut: Future = Future()
        with self._cv:
            heapq.heappush(self._heap, (-priority, next(self._seq), fut, fn, args))
            self._cv.notify()
        return fut

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if not self._heap:
                    return
                _p, _s, fut, fn, args = heapq.heappop(self._heap)
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # handed to the driver through the future
                fut.set_exception(exc)

    def shutdown(self, wait: bool = True) -> None:
        """Cancel queued tasks and stop; ``wait=False`` leaves a stuck task's thread behind
        (a daemon thread: a read that never returns must not hang the command too)."""
        with self._cv:
            for _p, _s, fut, _fn, _a in self._heap:
                fut.cancel()
            self._heap.clear()
            self._closed = True
            self._cv.notify_all()
        if wait:
            for t in self._threads:
                t.join()


class Completed:
    """Futures in the order they finish, for every engine kind; ``add`` more on the way.

    Iterating blocks; :meth:`next` takes a timeout (None when nothing finished in time),
    which is what the stall watchdog needs.
    """

    def __init__(self, futures: Iterable[Any] = ()) -> None:
        self._q: queue.Queue = queue.Queue()
        self._n = 0
        for f in futures:
            self.add(f)

    def add(self, fut: Any) -> None:
        self._n += 1
        fut.add_done_callback(self._q.put)

    def __len__(self) -> int:
        return self._n

    def next(self, timeout: float | None = None) -> Any:
        """The next finished future; None after ``timeout`` seconds without one."""
        if self._n == 0:
            raise StopIteration
        try:
            fut = self._q.get(timeout=timeout)
        except queue.Empty:
            return None
        self._n -= 1
        return fut

    def __iter__(self) -> "Completed":
        return self

    def __next__(self) -> Any:
        return self.next(None)


class Engine:
    """Runs a job's tasks: a thread pool or a Dask cluster (see the module docstring).

    ``job_bytes`` (bytes of level 0) picks threads or a cluster when ``scheduler`` is not
    given (without it: the in-process cluster).
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        client: Any = None,
        memory_limit: int | None = None,
        concurrency: int | None = None,
        job_bytes: int | None = None,
    ) -> None:
        self.kind = choose_kind(scheduler, client=client, job_bytes=job_bytes)
        self.scheduler = scheduler or ("client" if client is not None else self.kind)
        self._client = client
        self._pool: _PriorityPool | None = None
        self._own: list[Any] = []
        self.memory_limit = memory_limit or default_memory_limit()
        self.concurrency = concurrency or (os.cpu_count() or 1)

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        if self.kind == "threads":
            self._pool = _PriorityPool(self.concurrency)
            return self
        if self._client is not None:
            return self
        from distributed import Client, LocalCluster

        # memory is bounded by the plan (module docstring): no pausing, spilling, killing
        quiet = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                 "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}
        try:
            import dask

            with dask.config.set(quiet):
                # no dashboard; the scheduler's small HTTP server (health checks) on a free
                # local port, so a busy 8787 never prints "Port 8787 is already in use"
                http = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
                if self.kind == "cluster":
                    cluster = LocalCluster(
                        processes=False, n_workers=1, threads_per_worker=self.concurrency,
                        memory_limit=0, dashboard_address=None, scheduler_kwargs=http,
                    )
                elif self.kind == "processes":
                    cluster = LocalCluster(
                        processes=True, n_workers=self.concurrency, threads_per_worker=1,
                        memory_limit=0, dashboard_address=None, scheduler_kwargs=http,
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
            self.__exit__()
            raise EngineError(f"cannot reach the Dask scheduler ({exc})", field="--scheduler",
                              found=self.scheduler,
                              hint="start it first, or leave --scheduler out for a local engine") from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            # wait for running tasks (queued ones are cancelled), so that a caller removing
            # the staging after an error does not race a task still writing into it; only
            # after a stall, where a task may never return, leave its thread behind
            from .errors import StallError

            stalled = bool(exc) and exc[0] is not None and issubclass(exc[0], StallError)
            self._pool.shutdown(wait=not stalled)
            self._pool = None
        failed = bool(exc) and exc[0] is not None
        for thing in self._own:
            try:
                # after an error (a stall: a task may never return) do not wait on workers
                thing.close(timeout=CLOSE_AFTER_ERROR_S) if failed else thing.close()
            except Exception:  # closing is best effort; a timeout here is expected after a stall
                pass
        self._own.clear()

    @property
    def client(self):
        if self._client is None:
            raise RuntimeError("Engine used outside its context, or a thread-pool engine has no client")
        return self._client

    def n_threads(self) -> int:
        if self.kind == "threads":
            return self.concurrency
        return sum(self.client.nthreads().values()) or 1

    # --- work --------------------------------------------------------------------------

    def scatter(self, obj: Any) -> Any:
        if self.kind == "threads":
            return obj
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any, priority: int = 0, key: str | None = None) -> Any:
        if self.kind == "threads":
            if self._pool is None:
                raise RuntimeError("Engine used outside its context")
            return self._pool.submit(fn, args, priority)
        kw: dict[str, Any] = {"priority": priority, "pure": False}
        if key:
            kw["key"] = key
        return self.client.submit(fn, *args, **kw)

    def as_completed(self, futures: Iterable[Any]) -> Completed:
        return Completed(futures)

    @staticmethod
    def result(fut: Any) -> Any:
        """A finished future's result; its task's exception raised as it was."""
        status = getattr(fut, "status", None)
        if status == "error":
            raise fut.exception()
        if status == "cancelled" or (status is None and fut.cancelled()):
            raise CancelledError("a task was cancelled")
        return fut.result()

    def describe_waiting(self) -> str:
        """What the job waits on, for a stall message (workers, their memory, tasks)."""
        if self.kind == "threads":
            return f"{self.concurrency} engine threads"
        try:
            info = self.client.scheduler_info()
            workers = info.get("workers", {})
            paused = sum(1 for w in workers.values() if w.get("status") == "paused")
            text = f"{len(workers)} Dask workers at {self.client.scheduler.address}"
            return text + (f", {paused} paused" if paused else "")
        except Exception:  # the scheduler itself may be what hangs
            return f"the Dask scheduler {self.scheduler}"
