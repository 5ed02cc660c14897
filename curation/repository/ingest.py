"""Ingest: an acquisition goes in once, checked against its metadata, and comes out as
OME-Zarr 0.5 in a new DataLad subdataset of the archive.

Order of work, chosen so that bad input never touches the archive:

1. validate the name, the metadata and every file header (no writes at all);
2. cross-check headers against the metadata: shape, dtype, voxel size (units converted);
3. take the archive's write lock; write into ``.curation/staging/NAME/`` (ignored by git),
   resuming a crashed run of the same job from its manifest;
4. validate the OME-Zarr, record provenance and checksums, save the staged dataset;
5. move it into ``acquisitions/NAME`` (one rename) and register it in the archive with one
   commit; if that fails the archive is reset to where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..engine import Engine, default_memory_limit, parse_bytes, plan_concurrency, shard_bytes_for
from ..errors import (
    AlreadyExistsError,
    CurationError,
    IngestInterrupted,
    MetadataError,
    MismatchError,
    OptionError,
    SourceError,
)
from ..omezarr import checksum as cks
from ..omezarr.layout import DEFAULT_SHARD_BYTES, plan_pyramid
from ..omezarr.ngff import multiscales, validate_image
from ..omezarr.writer import (
    ArraySpec,
    Manifest,
    ProgressCallback,
    build_pyramid,
    create_arrays,
    forget_stores,
    remove_tree,
    sweep_partials,
)
from ..records import Result, ok
from ..templates import render
from . import datalad_ops as dlo
from .archive import Archive, now_iso, open_archive
from .names import check_name, derive_name

#: relative tolerance when comparing voxel sizes from headers and metadata
VOXEL_RTOL = 5e-3
AXES = ("z", "y", "x")


@dataclass(frozen=True)
class IngestOptions:
    scheduler: str | None = None
    client: Any = None
    memory_limit: int | str | None = None
    lock_timeout: float = 0
    restart: bool = False
    keep_raw: bool = False
    chunk: tuple[int, int, int] | None = None
    shard: tuple[int, int, int] | None = None
    shard_bytes: int | None = None
    progress: ProgressCallback | None = None


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


def _fingerprint(source, plan, md_json: str, keep_raw: bool) -> dict:
    files = []
    for p in source.paths:
        st = os.stat(p)
        files.append([str(p), st.st_size, int(st.st_mtime)])
    return {
        "tool": __version__,
        "reader": source.reader,
        "files": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
        "n_files": len(files),
        "plan": plan.to_dict(),
        "metadata": hashlib.sha256(md_json.encode()).hexdigest(),
        "keep_raw": keep_raw,
    }


# --- the ingest ------------------------------------------------------------------------


def ingest(
    archive_path: Path | str,
    sources: list[Path | str],
    metadata_path: Path | str,
    *,
    name: str | None = None,
    options: IngestOptions | None = None,
) -> list[Result]:
    from ..metadata import load_metadata
    from ..readers import open_source

    opts = options or IngestOptions()
    t_start = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    paths = [Path(s).resolve() for s in sources]
    if not paths:
        raise SourceError("no source given", field="SOURCE", expected="a file or a folder of slices")
    if name is None:
        name = derive_name(paths[0].name if len(paths) == 1 else paths[0].parent.name)
    check_name(name)
    if archive.acquisition_path(name).exists():
        raise AlreadyExistsError("an acquisition with this name already exists", path=archive.root,
                                 field="--name", found=name,
                                 hint="acquisitions are never overwritten; choose another --name")

    metadata_path = Path(metadata_path)
    md = load_metadata(metadata_path)
    source = open_source(paths)
    header = source.header
    label = _source_label(list(source.paths))
    md, voxel_nm, filled, warnings = reconcile(md, header, label, metadata_path)
    warnings += list(header.notes)

    memory_limit = parse_bytes(opts.memory_limit) or default_memory_limit()
    shard_bytes = opts.shard_bytes or shard_bytes_for(memory_limit, DEFAULT_SHARD_BYTES)
    try:
        plan = plan_pyramid(header.shape, voxel_nm, header.dtype, chunk=opts.chunk, shard=opts.shard,
                            shard_bytes=shard_bytes)
    except ValueError as exc:
        raise OptionError(str(exc), field="--chunk/--shard",
                          found=f"chunk {opts.chunk}, shard {opts.shard}") from exc
    md_json = md.model_dump_json(indent=2, exclude_none=True)

    with archive.lock(opts.lock_timeout, purpose=f"ingest {name}"):
        if archive.acquisition_path(name).exists():  # someone got there while we waited
            raise AlreadyExistsError("an acquisition with this name already exists", path=archive.root,
                                     field="--name", found=name)
        stage = archive.staging_root / name
        dataset = stage / "dataset"
        zroot = dataset / f"{name}.ome.zarr"
        manifest = Manifest(stage / "manifest.jsonl", _fingerprint(source, plan, md_json, opts.keep_raw))
        resumable = not opts.restart and manifest.load() and (dataset / ".datalad").is_dir()
        if not resumable:
            forget_stores(str(zroot))
            remove_tree(stage)
            manifest = Manifest(stage / "manifest.jsonl", manifest.fingerprint)
            stage.mkdir(parents=True)
            dlo.create_dataset(dataset, description=f"acquisition {name}")
        else:
            sweep_partials(stage)
        spec = ArraySpec(str(zroot), plan, str(stage), source, kind="image")
        if not resumable or not (zroot / "zarr.json").exists():
            create_arrays(spec, multiscales(plan, name))
        manifest.start()
        concurrency = plan_concurrency(memory_limit, plan.shard_bytes())
        try:
            with Engine(opts.scheduler, client=opts.client, memory_limit=memory_limit,
                        concurrency=concurrency) as engine:
                result = build_pyramid(spec, engine, manifest,
                                       hash_paths=[str(p) for p in source.paths], progress=opts.progress)
                n_threads = engine.n_threads()
        except CurationError:
            manifest.close()
            forget_stores(str(zroot))
            remove_tree(stage)  # bad input: nothing worth resuming
            raise
        except Exception as exc:
            done = len(manifest.shards)
            raise IngestInterrupted(
                f"ingest stopped after {done} of {plan.n_shards()} shards: {type(exc).__name__}: {exc}",
                path=label, hint="fix the cause and re-run the same command: it resumes where it stopped",
            ) from exc
        finally:
            manifest.close()
        t_written = time.monotonic()

        validate_image(zroot)
        entries = cks.entries_from_records(zroot, result.shards)
        tree = cks.tree_checksum(entries)
        (dataset / "provenance").mkdir(exist_ok=True)
        cks.write_tsv(dataset / "provenance" / "checksums.tsv", entries)
        (dataset / "metadata.json").write_text(md_json + "\n")
        if opts.keep_raw:
            _copy_raw(list(source.paths), dataset / "raw")
        files = {f["path"]: f for f in result.files}
        level0_bytes = sum(s.raw_bytes for s in result.shards if s.level == 0)
        prov = {
            "schema_version": "1.0.0",
            "schemaKey": "IngestProvenance",
            "action": "ingest",
            "acquisition": name,
            "started": started,
            "finished": now_iso(),
            "tool": {"name": "curation", "version": __version__},
            "libraries": _library_versions(),
            "reader": source.reader,
            "sources": [
                {"path": str(p), "name": p.name, "size": files[str(p)]["size"],
                 "sha256": files[str(p)]["sha256"]}
                for p in source.paths
            ],
            "raw_copy": "raw/" if opts.keep_raw else None,
            "header": {
                "shape": list(header.shape), "dtype": header.dtype,
                "voxel_size_nm": list(header.voxel_size_nm), "vendor": header.vendor,
                "fields": header.fields, "raw": header.raw, "notes": list(header.notes),
            },
            "metadata": {
                "file": str(metadata_path.resolve()),
                "sha256": cks.sha256_file(metadata_path),
                "filled_from_header": filled,
                "warnings": warnings,
            },
            "image": {
                "path": f"{name}.ome.zarr", "ngff_version": "0.5", "zarr_format": 3,
                "codec": "zstd level 3, sharding_indexed with crc32c index",
                "plan": plan.to_dict(), "tree_sha256": tree, "n_files": len(entries),
                "bytes": sum(e.size for e in entries), "n_shards": len(result.shards),
            },
            "engine": {"scheduler": opts.scheduler or ("client" if opts.client else "local"),
                       "threads": n_threads, "memory_limit": memory_limit},
            "resumed_shards": result.resumed_shards,
            "write_seconds": round(t_written - t_start, 3),
        }
        (dataset / "provenance" / "ingest.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
        (dataset / "README.md").write_text(_readme(name, md, plan, prov))

        message = (f"Ingest {name}: {' x '.join(map(str, header.shape))} {header.dtype} "
                   f"at {' x '.join(f'{v:g}' for v in voxel_nm)} nm from {label} ({source.reader})")
        _progress(opts, "save")
        t_save = time.monotonic()
        dlo.annex_known(dataset, [(f"{name}.ome.zarr/{e.path}", e.size, e.sha256) for e in entries])
        if opts.keep_raw:
            dlo.save(dataset, message)  # the raw files still need annexing
        else:
            dlo.commit_all(dataset, message)  # everything large is annexed already
        commit = _register(archive, name, dataset, message)
        save_seconds = time.monotonic() - t_save
        forget_stores(str(zroot))
        remove_tree(stage)

    seconds = time.monotonic() - t_start
    acq = archive.acquisition_path(name)
    return [ok(
        "ingest", archive.relative(acq),
        f"ingested {label} as {name}: {plan.levels[0].shape} {plan.dtype}, {len(plan.levels)} levels, "
        f"{len(entries)} files, {level0_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s",
        name=name, image=archive.relative(archive.image_path(name)), shape=list(header.shape),
        dtype=header.dtype, voxel_size_nm=list(voxel_nm), levels=len(plan.levels),
        n_shards=len(result.shards), n_files=len(entries), bytes_in=level0_bytes,
        bytes_stored=prov["image"]["bytes"], tree_sha256=tree, seconds=round(seconds, 3),
        save_seconds=round(save_seconds, 3), mb_per_s=round(level0_bytes / 1e6 / max(seconds, 1e-9), 2),
        resumed_shards=result.resumed_shards, filled=filled, warnings=warnings, commit=commit,
        dataset_commit=dlo.head(acq),
    )]


def _progress(opts: IngestOptions, stage: str) -> None:
    if opts.progress:
        from ..omezarr.writer import Progress

        opts.progress(Progress(stage, 0, 0, 0, 0))


def _register(archive: Archive, name: str, dataset: Path, message: str) -> str | None:
    """Move the finished dataset into place and commit it in the archive, atomically."""
    target = archive.acquisition_path(name)
    target.parent.mkdir(exist_ok=True)
    before = dlo.head(archive.root)
    os.rename(dataset, target)
    try:
        dlo.register_subdataset(archive.root, target, message)
    except BaseException:
        # put everything back as it was: no half-registered acquisition
        if target.exists():
            os.rename(target, dataset)
        if before:
            dlo.reset_hard(archive.root, before)
        raise
    return dlo.head(archive.root)


def _copy_raw(paths: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        shutil.copy2(p, dest / p.name)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("zarr", "numpy", "dask", "distributed", "tifffile", "rosettasciio", "bioio",
                "ome-zarr-models", "datalad", "git-annex", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _readme(name: str, md, plan, prov: dict) -> str:
    d = json.loads(md.model_dump_json())
    return render(
        "acquisition_README.md",
        name=name,
        title=d.get("study", {}).get("title", ""),
        description=d.get("study", {}).get("description", ""),
        technique=d.get("acquisition", {}).get("technique", ""),
        organism=d.get("biosample", {}).get("organism", {}).get("scientific_name", ""),
        shape=" x ".join(map(str, plan.shape)),
        dtype=plan.dtype,
        voxel=" x ".join(f"{v:g}" for v in plan.levels[0].scale_nm),
        levels=len(plan.levels),
        license=d.get("study", {}).get("license", ""),
        image=f"{name}.ome.zarr",
        schema_version=d.get("schema_version", ""),
        finished=prov["finished"],
        version=__version__,
    )
