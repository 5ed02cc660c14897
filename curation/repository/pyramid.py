"""Writing one OME-Zarr multiscale group into staging: the build phase every write shares.

:func:`write_pyramid` takes a lazy :class:`~curation.readers.base.Source`, a pyramid
plan and the group's attributes, and writes the group under the transaction's staging
folder with the Dask engine, resuming a crashed run of the same job from its manifest
(the manifest's fingerprint says which job it belongs to). It validates the result as
NGFF 0.5 (image or label) and returns the checksum entries of every file written.
Ingest, label import, aggregation, painting and prediction call it; what they differ
in (records, where the group goes, commits) is theirs.

The engine is chosen per job (:class:`curation.engine.Engine`, from the bytes of level 0):
a thread pool for small jobs, so a small command starts no Dask cluster; the in-process
Dask cluster for large ones; ``--scheduler ADDRESS`` or ``processes`` when asked. Its
kind is recorded in the run record's :class:`~curation.provenance.EngineInfo`.

A stall watchdog (``WriteOptions.stall_timeout``) fails the job with one line saying
what it waited for when no block finishes for that long; the staging is kept, so running
the same command again resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import Engine, default_memory_limit, parse_bytes, plan_concurrency
from ..errors import CurationError, IngestInterrupted, OptionError
from ..omezarr import checksum as cks
from ..omezarr.layout import PyramidPlan
from ..omezarr.ngff import validate_image, validate_label
from ..omezarr.writer import (
    ArraySpec,
    Manifest,
    ProgressCallback,
    PyramidResult,
    build_pyramid,
    create_arrays,
    forget_stores,
    remove_tree,
    sweep_partials,
)
from ..provenance import EngineInfo, FileRef
from .transaction import checkpoint


#: seconds without a finished block before a write fails (a 128 MiB shard takes ~1 s)
DEFAULT_STALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class WriteOptions:
    """How a write runs (not what it writes): engine, memory, lock, resume, progress."""

    #: Dask scheduler address, "processes", "cluster", "threads", or None: threads for a
    #: small job, the in-process Dask cluster for a large one (curation.engine)
    scheduler: str | None = None
    #: an existing distributed.Client (tests, notebooks)
    client: Any = None
    #: memory cap for the whole job, e.g. "4GiB" (default: see engine.default_memory_limit)
    memory_limit: int | str | None = None
    #: seconds to wait for another writer's lock (0: refuse at once)
    lock_timeout: float = 0
    #: start over instead of resuming an interrupted run of the same job
    restart: bool = False
    progress: ProgressCallback | None = None
    #: seconds without a finished block before the job fails (None: wait for ever)
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory_limit) or default_memory_limit()

    def checked_stall_timeout(self) -> float | None:
        t = self.stall_timeout
        if t is None:
            return None
        if not isinstance(t, (int, float)) or not 0 < float(t) < float("inf"):
            raise OptionError("not a usable stall timeout", field="--stall-timeout",
                              expected="a positive number of seconds", found=t)
        return float(t)


@dataclass(frozen=True)
class Written:
    """What :func:`write_pyramid` wrote."""

    result: PyramidResult
    entries: list[cks.Entry]
    tree_sha256: str
    engine: EngineInfo
    #: the files hashed on the way, by path
    files: dict[str, dict]

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def stored_shards(self) -> int:
        return sum(1 for s in self.result.shards if s.nbytes)

    def file_ref(self, path: str | Path, role: str = "source", name: str | None = None,
                 resolved: str | None = None) -> FileRef:
        rec = self.files[str(path)]
        return FileRef(path=str(path), name=name or Path(path).name, size=rec["size"], sha256=rec["sha256"],
                       role=role, resolved=resolved)


def write_pyramid(
    *,
    stage: Path,
    zroot: Path,
    plan: PyramidPlan,
    source: Any,
    kind: str,
    group_attrs: dict,
    fingerprint: dict,
    options: WriteOptions,
    fill_value: int | float = 0,
    hash_paths: list[str] | None = None,
    source_label: str = "",
) -> Written:
    """Write ``source`` as a multiscale group at ``zroot`` (inside ``stage``) and validate it.

    ``kind``: "image" (mean pyramid) or "label" (mode pyramid). A manifest in ``stage``
    with the same ``fingerprint`` is resumed unless ``options.restart``. On bad input
    (a CurationError from the source) the staging is removed; on anything else (a lost
    worker, an I/O error) it is kept and :class:`IngestInterrupted` says to re-run.
    """
    manifest = Manifest(stage / "manifest.jsonl", fingerprint)
    resumable = not options.restart and manifest.load() and (zroot / "zarr.json").exists()
    forget_stores(str(zroot))
    if resumable:
        sweep_partials(stage)
    else:
        remove_tree(zroot)
        remove_tree(stage / "pieces")
        manifest = Manifest(stage / "manifest.jsonl", fingerprint)
    spec = ArraySpec(str(zroot), plan, str(stage), source, kind=kind, fill_value=fill_value)
    if not resumable:
        create_arrays(spec, group_attrs)
    checkpoint(f"{kind}-arrays")
    manifest.start()
    memory_limit = options.memory_bytes
    stall_timeout = options.checked_stall_timeout()
    job_bytes = _level0_bytes(plan)
    engine = Engine(options.scheduler, client=options.client, memory_limit=memory_limit,
                    concurrency=plan_concurrency(memory_limit, plan.shard_bytes()), job_bytes=job_bytes)
    try:
        with engine:
            result = build_pyramid(spec, engine, manifest, hash_paths=hash_paths, progress=options.progress,
                                   stall_timeout=stall_timeout)
            threads = engine.n_threads()
    except IngestInterrupted:
        raise  # a stall: the staging is kept for a resume
    except CurationError:
        manifest.close()
        forget_stores(str(zroot))
        remove_tree(stage)  # bad input: nothing worth resuming
        raise
    except Exception as exc:
        done = len(manifest.shards)
        raise IngestInterrupted(
            f"writing stopped after {done} of {plan.n_shards()} shards: {type(exc).__name__}: {exc}",
            path=source_label or None, hint="fix the cause and re-run the same command: it resumes where it stopped",
        ) from exc
    finally:
        manifest.close()
        forget_stores(str(zroot))
    checkpoint(f"{kind}-written")
    info = EngineInfo(scheduler=options.scheduler or engine.scheduler, threads=threads,
                      memory_limit=memory_limit, kind=engine.kind, stall_timeout=stall_timeout)
    return Written(result=result, entries=[], tree_sha256="", engine=info,
                   files={f["path"]: f for f in result.files})


def _level0_bytes(plan: PyramidPlan) -> int:
    import numpy as np

    return int(np.prod(plan.levels[0].shape, dtype=np.int64)) * np.dtype(plan.dtype).itemsize


def finish_group(written: Written, zroot: Path, *, kind: str, checksum_prefix: str = "") -> Written:
    """Validate the group (its attributes final) and compute its checksum entries."""
    if kind == "label":
        validate_label(zroot, "")
    else:
        validate_image(zroot)
    entries = cks.entries_from_records(zroot, written.result.shards, prefix=checksum_prefix)
    return Written(result=written.result, entries=entries, tree_sha256=cks.tree_checksum(entries),
                   engine=written.engine, files=written.files)
