"""Blockwise read and compute: map a function over the blocks of one or more arrays.

The engine's write path (:mod:`curation.omezarr.writer`) streams a volume into shards;
this module is its read-side twin, for analyses that look at a whole volume piece by
piece (connected components, object statistics, metrics).

The shape follows daisy: a *block* has a **write region** (the part it is responsible
for; the blocks tile the volume without overlap) and a **read region** (the write
region grown by a halo of context, clipped at the volume's borders). A block function
receives the :class:`Block` and the arrays read over its read region, and knows nothing
of scheduling; the driver (:func:`map_blocks`, :func:`reduce_blocks`) knows nothing of
the science::

    def count(block, labels):                      # labels: the read region
        return np.bincount(labels[block.inner].ravel())

    total = reduce_blocks(count, zarr_array, combine=_add, initial=0)

Arrays are anything with ``shape``, ``dtype`` and ``__getitem__`` over a tuple of slices
(numpy, zarr, dask) or a :class:`curation.readers.base.Source` (read with ``read``).
Blocks default to the first array's shards (else its chunks), split along the longest
axis until a block holds at most ``max_block_voxels``.

Executors: ``"inline"`` (the calling thread, for tiny jobs and debugging),
``"threads"`` (a thread pool; numpy, cc3d and zstd release the GIL) or a
:class:`curation.engine.Engine` already entered (its ``scatter``/``submit``/
``as_completed``), which also reaches a multi-process or remote Dask cluster.

Memory: at most ``max_in_flight`` blocks are submitted and not yet consumed (twice the
workers by default), so the driver and the workers together hold a bounded number of
blocks and results, whatever the size of the volume. With ``ordered=True`` results come
back in grid order; a block is submitted only within ``max_in_flight`` of the next one
to yield, so reordering never buffers more than that.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BlockError

Region = tuple[slice, ...]

#: blocks default to the array's shard, split until they hold at most this many voxels
#: (256^3 = 16.8 M voxels: a uint8 block and its uint32 labels are about 84 MB)
DEFAULT_MAX_BLOCK_VOXELS = 256**3
#: block edge used when an array declares neither shards nor chunks
FALLBACK_EDGE = 256


# --- blocks and grids ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One block: ``region`` is written (owned), ``read`` is read (region + halo, clipped)."""

    index: tuple[int, ...]
    region: Region
    read: Region

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.region)

    @property
    def read_shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.read)

    @property
    def offset(self) -> tuple[int, ...]:
        """Global coordinates of the write region's first voxel."""
        return tuple(s.start for s in self.region)

    @property
    def read_offset(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.read)

    @property
    def inner(self) -> Region:
        """The write region in the read region's local coordinates."""
        return tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(self.region, self.read))


def _ints(value: int | Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        out = (int(value),) * ndim
    else:
        out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise BlockError(f"{what} has the wrong number of axes", field=what, expected=ndim, found=len(out))
    return out


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of ``block_shape`` tiling ``shape`` (the last along each axis may be
    smaller), each read with ``halo`` voxels of context per side."""

    shape: tuple[int, ...]
    block_shape: tuple[int, ...]
    halo: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        ndim = len(shape)
        block = _ints(self.block_shape, ndim, "block_shape")
        halo = _ints(self.halo if self.halo != () else 0, ndim, "halo")
        if any(n < 0 for n in shape):
            raise BlockError("a volume shape is not negative", field="shape", expected=">= 0", found=shape)
        if any(b < 1 for b in block):
            raise BlockError("block edges are positive", field="block_shape", expected=">= 1", found=block)
        if any(h < 0 for h in halo):
            raise BlockError("a halo is not negative", field="halo", expected=">= 0", found=halo)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "block_shape", tuple(min(b, max(n, 1)) for b, n in zip(block, shape)))
        object.__setattr__(self, "halo", halo)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / b) if n else 0 for n, b in zip(self.shape, self.block_shape))

    def __len__(self) -> int:
        return math.prod(self.grid_shape)

    def __iter__(self) -> Iterator[Block]:
        for index in itertools.product(*(range(g) for g in self.grid_shape)):
            yield self.block(index)

    def block(self, index: Sequence[int]) -> Block:
        index = tuple(int(i) for i in index)
        if len(index) != self.ndim or not all(0 <= i < g for i, g in zip(index, self.grid_shape)):
            raise BlockError("no such block", field="index", expected=f"within {self.grid_shape}", found=index)
        region = tuple(slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(index, self.block_shape, self.shape))
        read = tuple(slice(max(s.start - h, 0), min(s.stop + h, n)) for s, h, n in zip(region, self.halo, self.shape))
        return Block(index, region, read)

    def linear(self, index: Sequence[int]) -> int:
        """Position of block ``index`` in C order (the iteration order)."""
        out = 0
        for i, g in zip(index, self.grid_shape):
            out = out * g + int(i)
        return out

    def index_of(self, linear: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(int(linear), self.grid_shape))

    def blocks_in(self, region: Sequence[slice]) -> Iterator[Block]:
        """The blocks whose write region meets ``region`` (slices with explicit bounds)."""
        ranges = []
        for s, b, n in zip(region, self.block_shape, self.shape):
            start, stop = (0 if s.start is None else s.start), (n if s.stop is None else s.stop)
            if stop <= start:
                return
            ranges.append(range(start // b, (stop - 1) // b + 1))
        for index in itertools.product(*ranges):
            yield self.block(index)


def default_block_shape(array: Any, *, max_block_voxels: int = DEFAULT_MAX_BLOCK_VOXELS) -> tuple[int, ...]:
    """The array's shard shape (else chunk shape, else a cube of :data:`FALLBACK_EDGE`),
    halved along its longest axis, on chunk boundaries where it can, until it holds at
    most ``max_block_voxels``."""
    shape = tuple(int(n) for n in array.shape)
    chunks = _declared(array, "chunks")
    block = _declared(array, "shards") or chunks or tuple(min(FALLBACK_EDGE, n) for n in shape)
    block = [max(1, min(b, n)) if n else 1 for b, n in zip(block, shape)]
    unit = list(chunks) if chunks else [1] * len(shape)
    while math.prod(block) > max_block_voxels:
        axis = int(np.argmax(block))
        half = block[axis] // 2
        if half < 1:
            break
        if unit[axis] > 1 and half % unit[axis]:
            # stay on whole chunks while the block holds more than one of them
            half = half // unit[axis] * unit[axis] or half
        block[axis] = max(half, 1)
    return tuple(block)


def _declared(array: Any, name: str) -> tuple[int, ...] | None:
    value = getattr(array, name, None)
    if name == "chunks" and value is not None and value and isinstance(value[0], tuple):
        value = tuple(c[0] for c in value)  # dask: chunk sizes per axis
    if value is None or not isinstance(value, (tuple, list)) or not all(isinstance(v, (int, np.integer)) for v in value):
        return None
    return tuple(int(v) for v in value)


def grid_for(
    arrays: Sequence[Any],
    *,
    block_shape: Sequence[int] | int | None = None,
    halo: Sequence[int] | int = 0,
    max_block_voxels: int = DEFAULT_MAX_BLOCK_VOXELS,
) -> BlockGrid:
    """The grid over ``arrays`` (all of one shape); blocks from the first array by default."""
    if not arrays:
        raise BlockError("nothing to process blockwise", field="arrays", expected="one array or more", found=0)
    shape = tuple(int(n) for n in arrays[0].shape)
    for k, a in enumerate(arrays[1:], start=1):
        if tuple(int(n) for n in a.shape) != shape:
            raise BlockError("arrays processed together must have one shape", field=f"arrays[{k}]",
                             expected=shape, found=tuple(a.shape))
    if block_shape is None:
        block_shape = default_block_shape(arrays[0], max_block_voxels=max_block_voxels)
    return BlockGrid(shape, _ints(block_shape, len(shape), "block_shape"), _ints(halo, len(shape), "halo"))


# --- reading ---------------------------------------------------------------------------------


def read_region(array: Any, region: Region) -> np.ndarray:
    """``region`` of ``array`` as an ndarray: ``Source.read`` for curation sources,
    ``array[region]`` for everything else."""
    from .readers.base import Source

    if isinstance(array, Source):
        return array.read(tuple(region))  # type: ignore[arg-type]
    return np.asarray(array[tuple(region)])


def run_block(fn: Callable[..., Any], arrays: Sequence[Any], args: Sequence[Any], block: Block) -> Any:
    """Worker side: read every array over ``block.read`` and call ``fn(block, *data, *args)``."""
    data = [read_region(a, block.read) for a in arrays]
    return fn(block, *data, *args)


def _run_payload(payload: tuple[Callable[..., Any], Sequence[Any], Sequence[Any]], block: Block) -> Any:
    fn, arrays, args = payload
    return run_block(fn, arrays, args, block)


# --- the driver -------------------------------------------------------------------------------


Executor = Any  # "inline" | "threads" | curation.engine.Engine (entered)


def map_blocks(
    fn: Callable[..., Any],
    *arrays: Any,
    grid: BlockGrid | None = None,
    blocks: Iterable[Block] | None = None,
    block_shape: Sequence[int] | int | None = None,
    halo: Sequence[int] | int = 0,
    args: Sequence[Any] = (),
    executor: Executor = "threads",
    workers: int | None = None,
    max_in_flight: int | None = None,
    ordered: bool = False,
    max_block_voxels: int = DEFAULT_MAX_BLOCK_VOXELS,
) -> Iterator[tuple[Block, Any]]:
    """Yield ``(block, fn(block, *data, *args))`` for every block, ``data`` being each
    array read over the block's read region.

    ``grid`` (or :func:`grid_for` from ``block_shape``/``halo``) sets the blocks;
    ``blocks`` restricts the run to some of them. With no arrays ``fn`` reads what it
    needs itself (give ``grid``). The first task error is raised after the outstanding
    tasks are cancelled; closing the generator early cancels them too.
    """
    if grid is None:
        grid = grid_for(arrays, block_shape=block_shape, halo=halo, max_block_voxels=max_block_voxels)
    elif arrays:
        for k, a in enumerate(arrays):
            if tuple(int(n) for n in a.shape) != grid.shape:
                raise BlockError("an array's shape differs from the grid's", field=f"arrays[{k}]",
                                 expected=grid.shape, found=tuple(a.shape))
    todo = list(grid if blocks is None else blocks)
    if isinstance(executor, str) and executor not in ("inline", "threads"):
        raise BlockError("unknown executor", field="executor", expected="inline | threads | an Engine",
                         found=executor)
    if executor == "inline" or len(todo) <= 1:
        for block in todo:
            yield block, run_block(fn, arrays, args, block)
        return
    if executor == "threads":
        workers = workers or os.cpu_count() or 1
        yield from _windowed(_ThreadBackend(workers), fn, arrays, args, todo, max_in_flight or 2 * workers,
                             ordered)
        return
    n = workers or _engine_threads(executor)
    yield from _windowed(_EngineBackend(executor), fn, arrays, args, todo, max_in_flight or 2 * n, ordered)


def reduce_blocks(
    fn: Callable[..., Any],
    *arrays: Any,
    combine: Callable[[Any, Any], Any],
    initial: Any,
    **kw: Any,
) -> Any:
    """``combine(...combine(initial, r0)..., rn)`` over the blocks' results, in grid order
    when ``ordered=True`` (the default here, so floating-point sums are reproducible)."""
    kw.setdefault("ordered", True)
    acc = initial
    for _block, result in map_blocks(fn, *arrays, **kw):
        acc = combine(acc, result)
    return acc


def _engine_threads(engine: Any) -> int:
    try:
        return int(engine.n_threads())
    except Exception:  # an engine outside its context: let submit() report it
        return os.cpu_count() or 1


class _ThreadBackend:
    def __init__(self, workers: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blocks")

    def prepare(self, fn, arrays, args):
        return (fn, tuple(arrays), tuple(args))

    def submit(self, payload, block: Block):
        return self.pool.submit(_run_payload, payload, block)

    def wait_one(self, pending: set):
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return done

    def result(self, fut):
        return fut.result()

    def close(self, pending: set) -> None:
        for fut in pending:
            fut.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


class _EngineBackend:
    """Through the Engine's public API only: scatter, submit, as_completed."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._ac = None
        self._seq = 0

    def prepare(self, fn, arrays, args):
        return self.engine.scatter((fn, tuple(arrays), tuple(args)))

    def submit(self, payload, block: Block):
        self._seq += 1
        key = f"block-{'_'.join(map(str, block.index))}-{os.getpid()}-{id(self)}-{self._seq}"
        fut = self.engine.submit(_run_payload, payload, block, priority=-self._seq, key=key)
        if self._ac is None:
            self._ac = self.engine.as_completed([fut])
        else:
            self._ac.add(fut)
        return fut

    def wait_one(self, pending: set):
        return {next(self._ac)}

    def result(self, fut):
        return self.engine.result(fut)

    def close(self, pending: set) -> None:
        for fut in pending:
            fut.cancel()


def _windowed(backend, fn, arrays, args, todo: list[Block], window: int, ordered: bool):
    window = max(1, int(window))
    payload = backend.prepare(fn, arrays, args)
    pending: dict[Any, int] = {}
    ready: dict[int, Any] = {}
    queue = deque(range(len(todo)))
    next_out = 0
    try:
        while queue or pending:
            while queue and len(pending) < window and (not ordered or queue[0] < next_out + window):
                i = queue.popleft()
                pending[backend.submit(payload, todo[i])] = i
            for fut in backend.wait_one(set(pending)):
                i = pending.pop(fut)
                result = backend.result(fut)
                if not ordered:
                    yield todo[i], result
                else:
                    ready[i] = result
            while ordered and next_out in ready:
                yield todo[next_out], ready.pop(next_out)
                next_out += 1
    finally:
        backend.close(set(pending))


__all__ = [
    "Block",
    "BlockGrid",
    "DEFAULT_MAX_BLOCK_VOXELS",
    "default_block_shape",
    "grid_for",
    "map_blocks",
    "read_region",
    "reduce_blocks",
    "run_block",
]
