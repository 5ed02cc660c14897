"""Streaming, resumable writer of sharded OME-Zarr pyramids.

How a volume is written:

1. The group and every level's array metadata are created up front (``zarr.json`` only).
2. One task per level-0 shard reads exactly that region of the source, writes the shard
   (zarr's LocalStore writes each key to a temporary file and renames it, so a shard is
   either whole or absent) and saves its downsampled *piece* for the next level.
3. A shard of level k runs as soon as all its child shards of level k-1 are done: it
   assembles their pieces, writes itself and downsamples again. So the pyramid is built
   from a single pass over level 0 and every shard at every level has exactly one writer.
4. The driver appends each finished shard (key, size, sha256 of the bytes written) to a
   progress manifest, fsynced. After a crash, ``kill -9`` included, a re-run skips
   finished shards, sweeps temporary files and redoes only the rest; the result is
   bit-identical because every step is deterministic.

Memory: a task holds one shard and its codec buffers; the engine bounds concurrency.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptSourceError, CurationError, SourceError, StallError
from .downsample import mean_downsample, mode_downsample
from .layout import Index, PyramidPlan
from .shardcodec import ZSTD_LEVEL, ShardWriter

PARTIAL_SUFFIX = ".partial"
MANIFEST_NAME = "manifest.jsonl"
PIECES_DIR = "pieces"


# --- what a task needs -----------------------------------------------------------------


@dataclass(frozen=True)
class ArraySpec:
    """Everything a worker needs to write one pyramid: small and picklable."""

    root: str  # the OME-Zarr group folder
    plan: PyramidPlan
    work: str  # the staging folder holding pieces and the manifest
    source: Any = None  # a curation.readers.base.Source (for level 0)
    kind: str = "image"  # "image" (mean pyramid) or "label" (mode pyramid)
    prefix: str = ""  # path of the multiscale group inside root ("" or "labels/x")
    fill_value: int | float = 0  # value of unwritten regions (labels: the unlabeled value)

    def array_path(self, level: int) -> str:
        path = self.plan.levels[level].path
        return f"{self.prefix}/{path}" if self.prefix else path

    def shard_key(self, level: int, idx: Index) -> str:
        return f"{self.array_path(level)}/c/" + "/".join(str(i) for i in idx)

    def piece_path(self, level: int, idx: Index) -> Path:
        return Path(self.work) / PIECES_DIR / str(level) / ("_".join(str(i) for i in idx) + ".npy")


@dataclass
class ShardRecord:
    level: int
    index: Index
    key: str
    nbytes: int  # bytes on disk (0 when the shard is all fill value and not stored)
    sha256: str | None
    raw_bytes: int  # uncompressed bytes of the region

    def to_json(self) -> dict:
        return {"level": self.level, "index": list(self.index), "key": self.key,
                "nbytes": self.nbytes, "sha256": self.sha256, "raw_bytes": self.raw_bytes}

    @classmethod
    def from_json(cls, d: dict) -> "ShardRecord":
        return cls(d["level"], tuple(d["index"]), d["key"], d["nbytes"], d["sha256"], d["raw_bytes"])


# --- the store (array metadata only; shards are encoded by shardcodec) -----------------

_STORES: dict[str, Any] = {}
_LOCK = threading.Lock()


def _store(root: str):
    from zarr.storage import LocalStore

    with _LOCK:
        st = _STORES.get(root)
        if st is None:
            st = LocalStore(root)
            _STORES[root] = st
        return st


def forget_stores(root: str | None = None) -> None:
    """Drop cached handles (after a staging folder is moved or deleted)."""
    with _LOCK:
        for key in [k for k in _STORES if root is None or k == root]:
            _STORES.pop(key, None)


# --- creating the arrays -----------------------------------------------------------------


def codecs_for(kind: str) -> dict:
    """The codecs declared in zarr.json; shardcodec.encode_shard writes exactly these."""
    from zarr.codecs import ZstdCodec

    # zstd: ~1 GB/s each way on EM data, read natively by neuroglancer and napari
    return {"compressors": [ZstdCodec(level=ZSTD_LEVEL)]}


def create_arrays(spec: ArraySpec, group_attrs: dict) -> None:
    """Create the multiscale group and its (empty) level arrays; metadata only."""
    import zarr

    store = _store(spec.root)
    if spec.prefix:
        group = zarr.open_group(store=store, path=spec.prefix, mode="w", zarr_format=3)
        group.attrs.update(group_attrs)
    else:
        zarr.create_group(store=store, attributes=group_attrs, zarr_format=3, overwrite=True)
    plan = spec.plan
    for level in range(len(plan.levels)):
        zarr.create_array(
            store=store,
            name=spec.array_path(level),
            shape=plan.levels[level].shape,
            dtype=plan.dtype,
            chunks=plan.chunk_shape(level),
            shards=plan.shard_shape(level),
            fill_value=spec.fill_value,
            dimension_names=["z", "y", "x"],
            chunk_key_encoding={"name": "default", "separator": "/"},
            overwrite=True,
            **codecs_for(spec.kind),
        )


# --- the task --------------------------------------------------------------------------


def _read_level0(spec: ArraySpec, region: tuple[slice, slice, slice]) -> np.ndarray:
    try:
        block = spec.source.read(region)
    except (CurationError, OSError, MemoryError):
        raise  # typed errors and I/O errors (transient: a re-run resumes) pass unchanged
    except Exception as exc:  # a reader bug on malformed content: name the source
        names = ", ".join(p.name for p in spec.source.paths[:3])
        raise CorruptSourceError(f"reading z {region[0].start}..{region[0].stop - 1} failed: {exc}",
                                 path=names) from exc
    expect = tuple(s.stop - s.start for s in region)
    if tuple(block.shape) != expect or block.dtype != np.dtype(spec.plan.dtype):
        raise SourceError("a region read back with the wrong shape or dtype",
                          path=", ".join(p.name for p in spec.source.paths[:3]),
                          expected=f"{expect} {spec.plan.dtype}", found=f"{block.shape} {block.dtype}")
    return block


def _assemble(spec: ArraySpec, level: int, idx: Index, sub: tuple[slice, slice, slice]) -> np.ndarray:
    """The part ``sub`` (level coordinates) of shard ``idx``, from its children's pieces."""
    plan = spec.plan
    block = np.full(tuple(s.stop - s.start for s in sub), spec.fill_value, dtype=plan.dtype)
    for child in plan.children(level, idx):
        pr = plan.piece_region(level - 1, child)
        lo = [max(p.start, s.start) for p, s in zip(pr, sub)]
        hi = [min(p.stop, s.stop) for p, s in zip(pr, sub)]
        if any(a >= b for a, b in zip(lo, hi)):
            continue
        path = spec.piece_path(level - 1, child)
        if not path.exists():
            continue  # an empty child (all fill value) leaves no piece
        piece = np.load(path, mmap_mode="r")
        src = tuple(slice(a - p.start, b - p.start) for a, b, p in zip(lo, hi, pr))
        dst = tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sub))
        block[dst] = piece[src]
    return block


def _save_piece(spec: ArraySpec, level: int, idx: Index, piece: np.ndarray) -> None:
    path = spec.piece_path(level, idx)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(piece))
    os.replace(tmp, path)


def _is_empty(spec: ArraySpec, level: int, idx: Index, region) -> bool:
    if level == 0:
        probe = getattr(spec.source, "is_fill", None)
        return bool(probe and probe(region))
    return not any(spec.piece_path(level - 1, c).exists() for c in spec.plan.children(level, idx))


def write_shard(spec: ArraySpec, level: int, idx: Index) -> dict:
    """Write shard ``idx`` of ``level`` and its piece for the next level (worker side).

    Streams the shard one slab of chunk rows at a time: read (or assemble from the
    children's pieces), encode into the shard file, downsample into the piece. A task
    holds one slab and the piece (a quarter of the shard at most), never the shard.
    """
    plan = spec.plan
    region = plan.region(level, idx)
    key = spec.shard_key(level, idx)
    nbytes_raw = int(np.prod(plan.region_shape(level, idx))) * np.dtype(plan.dtype).itemsize
    if _is_empty(spec, level, idx, region):
        # nothing but fill value: nothing to store, no piece (the parent fills it in)
        return ShardRecord(level, tuple(idx), key, 0, None, nbytes_raw).to_json()
    chunk = plan.chunk_shape(level)
    writer = ShardWriter(Path(spec.root) / key, plan.shard_shape(level), chunk, plan.dtype, spec.fill_value,
                         partial_suffix=PARTIAL_SUFFIX)
    has_next = level + 1 < len(plan.levels)
    if has_next:
        factor = plan.levels[level + 1].factor
        down = mode_downsample if spec.kind == "label" else mean_downsample
        pr = plan.piece_region(level, idx)
        piece = np.empty(tuple(s.stop - s.start for s in pr), dtype=plan.dtype)
    z0, z1 = region[0].start, region[0].stop
    # whole chunk rows, and an even number of planes when the next level halves Z
    step = chunk[0] * (factor[0] if has_next and chunk[0] % factor[0] else 1)
    try:
        for zs in range(z0, z1, step):
            sub = (slice(zs, min(zs + step, z1)), region[1], region[2])
            slab = _read_level0(spec, sub) if level == 0 else _assemble(spec, level, idx, sub)
            writer.add(zs - z0, slab)
            if has_next:
                dz = (zs - z0) // factor[0]
                small = down(slab, factor)
                piece[dz:dz + small.shape[0]] = small
            del slab
        done = writer.close()
    except BaseException:
        writer.abort()
        raise
    if has_next:
        _save_piece(spec, level, idx, piece)
    digest, nbytes = done if done else (None, 0)
    return ShardRecord(level, tuple(idx), key, nbytes, digest, nbytes_raw).to_json()


# --- the manifest ----------------------------------------------------------------------


class Manifest:
    """An append-only JSON-lines record of finished work, fsynced line by line.

    The first line is a header with a fingerprint of the job; a manifest whose
    fingerprint differs belongs to another job and is not resumed.
    """

    def __init__(self, path: Path, fingerprint: dict) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.shards: dict[tuple[int, Index], ShardRecord] = {}
        self.files: dict[str, dict] = {}
        self.resumed = False
        self._fh = None

    def load(self) -> bool:
        """Read an existing manifest; True when it matches the fingerprint."""
        if not self.path.exists():
            return False
        lines = self.path.read_text().splitlines()
        if not lines:
            return False
        try:
            head = json.loads(lines[0])
        except json.JSONDecodeError:
            return False
        if head.get("fingerprint") != self.fingerprint:
            return False
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line after a crash
            if rec.get("type") == "shard":
                sr = ShardRecord.from_json(rec)
                self.shards[(sr.level, sr.index)] = sr
            elif rec.get("type") == "file":
                self.files[rec["path"]] = rec
        self.resumed = True
        return True

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.resumed:
            # rewrite cleanly (drops a torn tail line), then append
            tmp = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
            with open(tmp, "w") as fh:
                fh.write(json.dumps({"type": "header", "fingerprint": self.fingerprint}) + "\n")
                for rec in self.files.values():
                    fh.write(json.dumps(rec) + "\n")
                for sr in self.shards.values():
                    fh.write(json.dumps({"type": "shard", **sr.to_json()}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        else:
            with open(self.path, "w") as fh:
                fh.write(json.dumps({"type": "header", "fingerprint": self.fingerprint}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        self._fh = open(self.path, "a")

    def _append(self, rec: dict) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def add_shard(self, rec: dict) -> ShardRecord:
        sr = ShardRecord.from_json(rec)
        self.shards[(sr.level, sr.index)] = sr
        self._append({"type": "shard", **rec})
        return sr

    def add_file(self, rec: dict) -> None:
        self.files[rec["path"]] = rec
        self._append({"type": "file", **rec})

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


def sweep_partials(folder: Path) -> int:
    """Remove temporary files left by a killed writer; returns how many."""
    n = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(PARTIAL_SUFFIX):
                os.unlink(os.path.join(dirpath, name))
                n += 1
    return n


# --- progress --------------------------------------------------------------------------


@dataclass
class Progress:
    """Passed to the caller's callback after every finished unit of work."""

    stage: str
    done_bytes: int
    total_bytes: int
    done_units: int
    total_units: int
    started: float = field(default_factory=time.monotonic)
    #: bytes already done by an earlier, interrupted run (not counted in the rate)
    resumed_bytes: int = 0
    #: seconds since the last unit of work finished (the bar shows a stall past a few)
    idle_s: float = 0.0

    @property
    def rate(self) -> float:
        dt = time.monotonic() - self.started
        return (self.done_bytes - self.resumed_bytes) / dt if dt > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        r = self.rate
        return (self.total_bytes - self.done_bytes) / r if r > 0 else None


ProgressCallback = Callable[[Progress], None]


# --- hashing source files --------------------------------------------------------------


def hash_files(paths: list[str]) -> list[dict]:
    """sha256 and size of each file (worker side); 8 MiB reads."""
    out = []
    for p in paths:
        h = hashlib.sha256()
        size = 0
        try:
            with open(p, "rb") as fh:
                while chunk := fh.read(8 * 1024 * 1024):
                    h.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise CorruptSourceError(f"cannot read: {exc.strerror or exc}", path=p) from exc
        out.append({"type": "file", "path": p, "size": size, "sha256": h.hexdigest()})
    return out


def _batches(paths: list[str], target: int = 256 * 1024**2) -> list[list[str]]:
    batches: list[list[str]] = []
    cur: list[str] = []
    acc = 0
    for p in paths:
        cur.append(p)
        acc += os.path.getsize(p)
        if acc >= target:
            batches.append(cur)
            cur, acc = [], 0
    if cur:
        batches.append(cur)
    return batches


# --- the driver ------------------------------------------------------------------------


@dataclass
class PyramidResult:
    shards: list[ShardRecord]
    files: list[dict]
    resumed_shards: int
    written_shards: int
    seconds: float


def build_pyramid(
    spec: ArraySpec,
    engine,
    manifest: Manifest,
    *,
    hash_paths: list[str] | None = None,
    progress: ProgressCallback | None = None,
    stall_timeout: float | None = None,
) -> PyramidResult:
    """Write every shard of every level not yet in the manifest; hash the sources.

    Runs on ``engine`` (a :class:`curation.engine.Engine`). Returns when all is written;
    raises the first task error (the manifest keeps what finished, for a resume).
    ``stall_timeout``: when no task finishes for that many seconds while work remains,
    raise :class:`~curation.errors.StallError` saying what it waited for. While waiting,
    ``progress`` is called about once a second with ``idle_s`` set.
    """
    plan = spec.plan
    t0 = time.monotonic()
    nlevels = len(plan.levels)
    done = manifest.shards
    resumed = len(done)

    level0_total = sum(plan.region_shape(0, i)[0] * plan.region_shape(0, i)[1] * plan.region_shape(0, i)[2]
                       for i in plan.shards(0)) * np.dtype(plan.dtype).itemsize
    total_units = plan.n_shards()
    prog = Progress("write", 0, level0_total, len(done), total_units)
    for (lv, _i), sr in done.items():
        if lv == 0:
            prog.done_bytes += sr.raw_bytes
    prog.started = time.monotonic()
    prog.resumed_bytes = prog.done_bytes

    # children still missing per parent
    missing: dict[tuple[int, Index], int] = {}
    for lv in range(1, nlevels):
        for idx in plan.shards(lv):
            missing[(lv, idx)] = sum(1 for c in plan.children(lv, idx) if (lv - 1, c) not in done)

    spec_f = engine.scatter(spec)
    futures: dict[Any, tuple[str, Any]] = {}
    seq = 0

    def submit_shard(lv: int, idx: Index):
        nonlocal seq
        seq += 1
        fut = engine.submit(write_shard, spec_f, lv, idx, priority=lv * 10_000_000 - seq,
                            key=f"shard-{lv}-{'_'.join(map(str, idx))}-{os.getpid()}-{seq}")
        futures[fut] = ("shard", (lv, idx))
        return fut

    # hash batches ride along with the level-0 shards (same priority band, interleaved),
    # so hashing overlaps the writes and reads files while they are in the page cache
    todo = [p for p in (hash_paths or []) if p not in manifest.files]
    batches = _batches(todo)
    pending0 = [idx for idx in plan.shards(0) if (0, idx) not in done]
    per = max(1, len(pending0) // max(len(batches), 1))

    def submit_hash(batch: list[str]):
        nonlocal seq
        seq += 1
        fut = engine.submit(hash_files, batch, priority=-seq)
        futures[fut] = ("hash", batch)

    for i, idx in enumerate(pending0):
        if batches and i % per == 0:
            submit_hash(batches.pop(0))
        submit_shard(0, idx)
    for batch in batches:
        submit_hash(batch)
    for (lv, idx), n in missing.items():
        if n == 0 and (lv, idx) not in done:
            submit_shard(lv, idx)

    ac = engine.as_completed(futures.keys())
    tick = 1.0 if progress or stall_timeout else None
    if stall_timeout and tick:
        tick = min(tick, stall_timeout)
    last = time.monotonic()
    try:
        while futures:
            fut = ac.next(timeout=tick)
            if fut is None:  # nothing finished within a tick
                prog.idle_s = time.monotonic() - last
                if progress:
                    progress(prog)
                if stall_timeout and prog.idle_s >= stall_timeout + _hash_allowance(futures):
                    raise _stalled(spec, engine, futures, prog, stall_timeout)
                continue
            last = time.monotonic()
            prog.idle_s = 0.0
            what, info = futures.pop(fut)
            result = engine.result(fut)
            if what == "hash":
                for rec in result:
                    manifest.add_file(rec)
                continue
            sr = manifest.add_shard(result)
            lv, idx = sr.level, sr.index
            if lv == 0:
                prog.done_bytes += sr.raw_bytes
            prog.done_units += 1
            if progress:
                progress(prog)
            # the children's pieces are no longer needed once this shard is recorded
            if lv > 0:
                for child in plan.children(lv, idx):
                    spec.piece_path(lv - 1, child).unlink(missing_ok=True)
            parent = plan.parent(lv, idx)
            if parent is not None:
                key = (lv + 1, parent)
                missing[key] -= 1
                if missing[key] == 0 and key not in done:
                    ac.add(submit_shard(lv + 1, parent))
    except BaseException:
        for fut in list(futures):
            fut.cancel()
        raise
    shards = sorted(manifest.shards.values(), key=lambda s: (s.level, s.index))
    return PyramidResult(shards, list(manifest.files.values()), resumed,
                         len(shards) - resumed, time.monotonic() - t0)


#: the slowest read rate assumed for hashing a source file: a checksum task of one huge
#: file (a single 100 GB BigTIFF) finishes nothing until it is done, and is not a stall
HASH_MIN_RATE = 10e6


def _hash_allowance(futures: dict) -> float:
    """Extra seconds the watchdog grants while checksum tasks run: the largest one's bytes
    at :data:`HASH_MIN_RATE`."""
    sizes = []
    for what, info in futures.values():
        if what == "hash":
            try:
                sizes.append(sum(os.path.getsize(p) for p in info))
            except OSError:
                pass
    return max(sizes, default=0) / HASH_MIN_RATE


def _stalled(spec: ArraySpec, engine, futures: dict, prog: Progress, timeout: float) -> StallError:
    """The one-line error for a job where nothing finished for ``timeout`` seconds."""
    shards = sorted(info for what, info in futures.values() if what == "shard")
    hashes = sum(1 for what, _ in futures.values() if what == "hash")
    waiting = []
    if shards:
        lv, idx = shards[0]
        region = spec.plan.region(lv, idx)
        first = (f"level {lv} shard {'/'.join(map(str, idx))}, z {region[0].start}..{region[0].stop - 1}"
                 + (f" of {spec.source.paths[0].name}" if lv == 0 and getattr(spec.source, "paths", None) else ""))
        waiting.append(f"{len(shards)} shard(s) (first: {first})")
    if hashes:
        waiting.append(f"{hashes} checksum batch(es) of the source files")
    return StallError(
        f"no block finished for {timeout:g} s while work remains: waited for {' and '.join(waiting)} "
        f"on {engine.describe_waiting()}; {prog.done_units} of {prog.total_units} shards are written",
        hint="check that the source's file system and the Dask workers respond, then re-run the same "
             "command: it resumes where it stopped (--stall-timeout sets the wait)",
    )


def remove_tree(path: Path) -> None:
    """Remove a staging folder, also when git-annex made its files read-only."""
    if not path.exists():
        return

    def onerror(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o755)
        try:
            os.chmod(p, 0o644)
        except OSError:
            pass
        func(p)

    shutil.rmtree(path, onerror=onerror)
