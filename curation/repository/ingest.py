"""Ingest: an acquisition goes in once, checked against its metadata, and comes out as
OME-Zarr 0.5 in a new DataLad subdataset of the archive.

Order of work, chosen so that bad input never touches the archive:

1. validate the name, the metadata and every file header (no writes at all);
2. cross-check headers against the metadata: shape, dtype, voxel size (units converted);
3. open a write transaction (:mod:`.transaction`: the archive's lock, and any interrupted
   write finished first); write a new DataLad dataset into ``.curation/staging/NAME/``
   (ignored by git), resuming a crashed run of the same job from its manifest;
4. validate the OME-Zarr, write its checksums and the typed ingest record
   (:class:`~curation.provenance.IngestRecord`);
5. apply, journaled: annex the shards under their known keys, commit the dataset, move
   it into ``acquisitions/NAME`` (one rename), register it in the archive with one
   commit. A kill at any instant is finished by the next command that writes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..engine import shard_bytes_for
from ..errors import (
    AlreadyExistsError,
    InsufficientSpaceError,
    MetadataError,
    MismatchError,
    OptionError,
    SourceError,
)
from ..omezarr import checksum as cks
from ..omezarr.layout import DEFAULT_SHARD_BYTES, plan_pyramid
from ..omezarr.ngff import multiscales
from ..omezarr.writer import forget_stores, remove_tree
from ..provenance import (
    Agent,
    HeaderRecord,
    ImageRecord,
    IngestRecord,
    MetadataSource,
    OutputRef,
    PlanRecord,
    ToolInfo,
    write_record,
    write_text_atomic,
)
from ..provenance.journal import AnnexAdd, AnnexKnown, Commit, Move, Register, Remove
from ..records import Result, notneeded, ok
from ..templates import render
from . import datalad_ops as dlo
from .archive import ACQ_DIR, Archive, now_iso, open_archive
from .names import check_case, check_name, derive_name
from .pyramid import WriteOptions, finish_group, write_pyramid
from .transaction import checkpoint, file_stamps, job_fingerprint, transaction
from .view import CHECKSUMS, INGEST_RECORD

#: relative tolerance when comparing voxel sizes from headers and metadata
VOXEL_RTOL = 5e-3
AXES = ("z", "y", "x")


# --- checks before anything is written -----------------------------------------------


def reconcile(md, header, source_label: str, metadata_path: Path):
    """Fill metadata from the header where the user left it empty; refuse disagreements.

    Returns ``(metadata, voxel_size_nm, filled, warnings)``.
    """
    from ..metadata import merge_vendor

    md, filled, conflicts = merge_vendor(md, dict(header.fields))
    warnings = [f"{field}: metadata says {ours!r}, {source_label} says {theirs!r}"
                for field, ours, theirs in conflicts]

    dims = md.shape_zyx()
    if dims is not None and tuple(dims) != tuple(header.shape):
        raise MismatchError("the image dimensions disagree with the file", path=source_label,
                            field="image_data.dimensions",
                            expected=f"(z, y, x) = {tuple(dims)} from {metadata_path.name}",
                            found=f"{tuple(header.shape)} in the file")
    dtype = getattr(md.image_data, "dtype", None) if md.image_data else None
    dtype = getattr(dtype, "value", dtype)
    if dtype and np.dtype(str(dtype)) != np.dtype(header.dtype):
        raise MismatchError("the data type disagrees with the file", path=source_label,
                            field="image_data.dtype", expected=f"{dtype} from {metadata_path.name}",
                            found=f"{header.dtype} in the file")

    ours = md.voxel_size_nm()
    final: list[float] = []
    updates: dict[str, Any] = {}
    for ax, mine, theirs in zip(AXES, ours, header.voxel_size_nm):
        if mine is not None and theirs is not None:
            if abs(mine - theirs) > VOXEL_RTOL * max(abs(mine), abs(theirs)):
                raise MismatchError("the voxel size disagrees with the file", path=source_label,
                                    field=f"image_data.voxel_size.{ax}",
                                    expected=f"{mine:g} nm from {metadata_path.name}",
                                    found=f"{theirs:g} nm in the file header")
            final.append(float(mine))
        elif mine is not None:
            final.append(float(mine))
        elif theirs is not None:
            final.append(float(theirs))
            updates[f"image_data.voxel_size.{ax}"] = {"value": float(theirs), "unit": "nm"}
            filled.append(f"image_data.voxel_size.{ax}")
        else:
            raise MetadataError(
                f"the voxel size along {ax} is missing, and {source_label} does not record it either",
                path=metadata_path, field=f"image_data.voxel_size.{ax}",
                expected="a value with a unit, e.g. {value: 8, unit: nm}", found="nothing",
            )
    if updates:
        md = md.with_fields(updates)
    return md, tuple(final), filled, warnings


def _source_label(paths: list[Path]) -> str:
    if len(paths) == 1:
        return paths[0].name
    return f"{paths[0].parent.name}/ ({len(paths)} files)"


def _fingerprint(name: str, source, plan, md_json: str, keep_raw: bool) -> dict:
    """What identifies this ingest job: resuming or finishing needs the same inputs."""
    return {
        "tool": __version__,
        "name": name,
        "reader": source.reader,
        "files": hashlib.sha256(json.dumps(file_stamps(source.paths)).encode()).hexdigest(),
        "n_files": len(source.paths),
        "plan": plan.to_dict(),
        "metadata": hashlib.sha256(md_json.encode()).hexdigest(),
        "keep_raw": keep_raw,
    }


#: the output is assumed to compress at most this well (EM data: 1.1-2x with zstd); a
#: volume that would not fit even so is refused before anything is written
BEST_COMPRESSION = 4.0


def check_space(root: Path, shape: tuple[int, ...], dtype: str, label: str) -> None:
    """Refuse a volume whose pyramid cannot fit in the archive's free space (a header that
    claims huge dimensions, or simply too little disk), before any shard is submitted."""
    raw = float(np.prod([float(n) for n in shape])) * np.dtype(dtype).itemsize
    need = raw * 8 / 7 / BEST_COMPRESSION  # a full pyramid adds at most a seventh
    free = shutil.disk_usage(root).free
    if need > free:
        raise InsufficientSpaceError(
            f"the volume cannot fit in the archive's free space "
            f"({' x '.join(map(str, shape))} {dtype}, {raw / 1e9:.3g} GB uncompressed)",
            path=label, expected=f"at least {need / 1e9:.3g} GB free (at {BEST_COMPRESSION:g}:1 compression)",
            found=f"{free / 1e9:.3g} GB free at {root}",
            hint="free space, or check that the file's header claims the right dimensions",
        )


# --- the ingest ------------------------------------------------------------------------


def ingest(
    archive_path: Path | str,
    sources: list[Path | str],
    metadata_path: Path | str,
    *,
    name: str | None = None,
    keep_raw: bool = False,
    chunk: tuple[int, int, int] | None = None,
    shard: tuple[int, int, int] | None = None,
    shard_bytes: int | None = None,
    options: WriteOptions | None = None,
    follow_symlinks: bool = False,
) -> list[Result]:
    """Ingest ``sources`` as acquisition ``name`` (see the module docstring).

    ``follow_symlinks``: read slice files that are symbolic links out of their folder
    (refused otherwise), recording each link's target in the ingest record.

    ``chunk``/``shard``: the OME-Zarr inner chunk and shard shapes (z, y, x); default
    64^3 chunks in shards of about 128 MiB (smaller when the memory cap needs it).
    ``keep_raw``: also store the raw files, annexed, under ``raw/``.
    """
    from ..metadata import load_metadata
    from ..readers import open_source
    from ..readers.stack import outside_links

    opts = options or WriteOptions()
    t_start = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    paths = [Path(s).resolve() for s in sources]
    if not paths:
        raise SourceError("no source given", field="SOURCE", expected="a file or a folder of slices")
    if name is None:
        name = derive_name(paths[0].name if len(paths) == 1 else paths[0].parent.name)
    check_name(name)
    check_case(name, archive.acquisition_names())
    metadata_path = Path(metadata_path)
    md = load_metadata(metadata_path)
    links: dict[str, str] = {}
    for p in paths:
        links.update(outside_links(p, follow=follow_symlinks))
    source = open_source(paths)
    header = source.header
    label = _source_label(list(source.paths))
    md, voxel_nm, filled, warnings = reconcile(md, header, label, metadata_path)
    from ..metadata.lint import plausibility

    warnings += [w.one_line() for w in plausibility(md)]  # implausible values: recorded, not refused
    warnings += list(header.notes)

    check_space(archive.root, header.shape, header.dtype, label)
    memory_limit = opts.memory_bytes
    shard_bytes = shard_bytes or shard_bytes_for(memory_limit, DEFAULT_SHARD_BYTES)
    try:
        plan = plan_pyramid(header.shape, voxel_nm, header.dtype, chunk=chunk, shard=shard, shard_bytes=shard_bytes)
    except ValueError as exc:
        raise OptionError(str(exc), field="--chunk/--shard", found=f"chunk {chunk}, shard {shard}") from exc
    md_json = md.model_dump_json(indent=2, exclude_none=True)
    fingerprint = _fingerprint(name, source, plan, md_json, keep_raw)
    job = job_fingerprint("ingest", **fingerprint)

    with transaction(archive, "ingest", job=job, acquisition=name, lock_timeout=opts.lock_timeout,
                     purpose=f"ingest {name}") as tx:
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        check_case(name, archive.acquisition_names())
        if archive.acquisition_path(name).exists():
            done = _same_job(archive, name, job)
            if done is not None:
                return [*tx.recovered, done]
            raise _exists(archive, name)
        stage = archive.staging_root / name
        dataset = stage / "dataset"
        zroot = dataset / f"{name}.ome.zarr"
        if opts.restart or not (dataset / ".datalad").is_dir():
            forget_stores(str(zroot))
            remove_tree(stage)
        stage = tx.staging(name)
        if not (dataset / ".datalad").is_dir():
            # created beside and renamed into place: a kill half-way through `datalad create`
            # (its .datalad/ written, its first commit not yet) must not pass for a dataset
            creating = stage / "dataset.creating"
            remove_tree(creating)
            dlo.create_dataset(creating, description=f"acquisition {name}")
            checkpoint("ingest-dataset-created")
            creating.rename(dataset)
        checkpoint("ingest-dataset")
        written = write_pyramid(stage=stage, zroot=zroot, plan=plan, source=source, kind="image",
                                group_attrs=multiscales(plan, name), fingerprint=fingerprint, options=opts,
                                hash_paths=[str(p) for p in source.paths], source_label=label)
        t_written = time.monotonic()
        written = finish_group(written, zroot, kind="image")
        (dataset / "provenance").mkdir(exist_ok=True)
        cks.write_tsv(dataset / CHECKSUMS, written.entries)
        write_text_atomic(dataset / "metadata.json", md_json + "\n")
        if keep_raw:
            _copy_raw(list(source.paths), dataset / "raw")
        image = ImageRecord(path=f"{name}.ome.zarr", codec="zstd level 3, sharding_indexed with crc32c index",
                            plan=PlanRecord.from_plan(plan), tree_sha256=written.tree_sha256,
                            n_files=len(written.entries), bytes=written.bytes, n_shards=len(written.result.shards))
        outputs = [OutputRef(kind="image", path=image.path, tree_sha256=image.tree_sha256, n_files=image.n_files,
                             bytes=image.bytes), OutputRef(kind="file", path="metadata.json")]
        if keep_raw:
            outputs.append(OutputRef(kind="raw-copy", path="raw"))
        record = IngestRecord(
            id="ingest", action="ingest", acquisition=name, started=started, finished=now_iso(), job=job,
            agent=current_agent(archive.root), tool=ToolInfo(version=__version__), libraries=library_versions(),
            inputs=[written.file_ref(p, resolved=links.get(str(p))) for p in source.paths], outputs=outputs,
            engine=written.engine,
            seconds=round(time.monotonic() - t_start, 3), reader=source.reader,
            raw_copy="raw/" if keep_raw else None,
            header=HeaderRecord(shape=header.shape, dtype=header.dtype, voxel_size_nm=header.voxel_size_nm,
                                vendor=header.vendor, fields=header.fields, raw=header.raw, notes=list(header.notes)),
            metadata=MetadataSource(file=str(metadata_path.resolve()), sha256=cks.sha256_file(metadata_path),
                                    filled_from_header=filled, warnings=warnings),
            image=image, resumed_shards=written.result.resumed_shards,
            write_seconds=round(t_written - t_start, 3),
        )
        write_record(dataset / INGEST_RECORD, record)
        write_text_atomic(dataset / "README.md", _readme(name, md, plan, record))
        checkpoint("ingest-records")

        message = (f"Ingest {name}: {' x '.join(map(str, header.shape))} {header.dtype} "
                   f"at {' x '.join(f'{v:g}' for v in voxel_nm)} nm from {label} ({source.reader})")
        _progress(opts, "save")
        acq_rel = f"{ACQ_DIR}/{name}"
        ds_rel = tx.rel(dataset)
        steps: list = [AnnexKnown(repo=ds_rel, checksums=f"{ds_rel}/{CHECKSUMS}", prefix=f"{name}.ome.zarr/")]
        if keep_raw:
            steps.append(AnnexAdd(repo=ds_rel, paths=["raw"]))
        steps += [Commit(repo=ds_rel, message=message), Move(source=ds_rel, target=acq_rel),
                  Register(repo=".", sub=acq_rel, message=message), Remove(path=tx.rel(stage))]
        seconds = time.monotonic() - t_start
        level0_bytes = sum(s.raw_bytes for s in written.result.shards if s.level == 0)
        rate = level0_bytes / 1e6 / max(seconds, 1e-9)
        result = ok(
            "ingest", acq_rel,
            f"ingested {label} as {name}: {plan.levels[0].shape} {plan.dtype}, {len(plan.levels)} levels, "
            f"{len(written.entries)} files, {format_rate(level0_bytes, seconds)}",
            name=name, image=f"{acq_rel}/{name}.ome.zarr", shape=list(header.shape), dtype=header.dtype,
            voxel_size_nm=list(voxel_nm), levels=len(plan.levels), n_shards=len(written.result.shards),
            n_files=len(written.entries), bytes_in=level0_bytes, bytes_stored=written.bytes,
            tree_sha256=written.tree_sha256, seconds=round(seconds, 3), mb_per_s=round(rate, 2),
            resumed_shards=written.result.resumed_shards, filled=filled, warnings=warnings,
        )
        t_save = time.monotonic()
        tx.apply(steps, result)
        forget_stores(str(zroot))
        acq = archive.acquisition_path(name)
        data = dict(result.data)
        data.update(save_seconds=round(time.monotonic() - t_save, 3), seconds=round(time.monotonic() - t_start, 3),
                    archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(acq))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _same_job(archive: Archive, name: str, job: str) -> Result | None:
    """A notneeded record when acquisition ``name`` was ingested by this very job (the
    same command on the same inputs, e.g. re-run after a kill that came after the commit)."""
    from ..errors import CurationError

    try:
        rec = archive.acquisition(name).ingest
    except CurationError:
        return None
    if rec.job != job:
        return None
    return notneeded("ingest", archive.relative(archive.acquisition_path(name)),
                     f"{name} was already ingested from these sources (at {rec.finished})", name=name)


def _exists(archive: Archive, name: str) -> AlreadyExistsError:
    return AlreadyExistsError("an acquisition with this name already exists", path=archive.root, field="--name",
                              found=name, hint="acquisitions are never overwritten; choose another --name")


def format_rate(nbytes: int, seconds: float) -> str:
    """"183 MB/s", or "0.9 s" when the job was too small for a rate to mean anything."""
    if nbytes < 64 * 1024**2 or seconds < 1:
        return f"{seconds:.1f} s"
    return f"{nbytes / 1e6 / seconds:.0f} MB/s"


def _progress(opts: WriteOptions, stage: str) -> None:
    if opts.progress:
        from ..omezarr.writer import Progress

        opts.progress(Progress(stage, 0, 0, 0, 0))


def _copy_raw(paths: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        if not (dest / p.name).exists():
            shutil.copy2(p, dest / p.name)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("zarr", "numpy", "dask", "distributed", "tifffile", "rosettasciio", "bioio",
                "ome-zarr-models", "datalad", "git-annex", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def current_agent(repo: Path) -> Agent:
    """Who is committing in ``repo`` (git identity, else login name) and on which host."""
    import getpass
    import socket

    from .datalad_ops import git_identity

    try:
        user = getpass.getuser()
    except Exception:  # pragma: no cover - no login name in some containers
        user = None
    return Agent(name=git_identity(repo) or user or "unknown", user=user, host=socket.gethostname())


def _readme(name: str, md, plan, record: IngestRecord) -> str:
    return render(
        "acquisition_README.md",
        name=name,
        title=md.study.title,
        description=md.study.description,
        technique=md.acquisition.technique.value,
        organism=md.biosample.organism.scientific_name,
        shape=" x ".join(map(str, plan.shape)),
        dtype=plan.dtype,
        voxel=" x ".join(f"{v:g}" for v in plan.levels[0].scale_nm),
        levels=len(plan.levels),
        license=md.study.license,
        image=f"{name}.ome.zarr",
        schema_version=md.schema_version,
        finished=record.finished,
        version=__version__,
    )
