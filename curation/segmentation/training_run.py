"""``curate train``: a model trained on an acquisition's ground truth, stored as
``MODEL@vN`` in the archive's ``models`` dataset.

:func:`train_model` reads the image (level 0) and a label version of an acquisition,
trains the pipeline's network (:func:`curation.segmentation.train.train`, only annotated
voxels count), writes the bioimage.io package with its model card (validated by
bioimage.io's own library) into the transaction's staging, and stores it in one journaled
write: the package to ``models/MODEL/vN/`` (binary files annexed), the run record to
``models/provenance/MODEL_vN.json``, a commit and the tag ``models/MODEL/vN`` in the models
dataset and in the archive.

A run killed while training trains again (same seed, same thread count, the same result
when the iterations are fixed); a run killed after the package was written reuses it; a
run killed while committing is finished by the next curate command. The same request
again is ``notneeded`` (its job fingerprint is in the run record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import SegmentationError
from ..provenance import ImageRef, OutputRef, RunRecord, ToolInfo, write_record
from ..provenance.base import ModelRef
from ..provenance.journal import AnnexAdd
from ..provenance.segmentation import TrainDetails
from ..records import Result, Status
from ..repository import datalad_ops as dlo
from ..repository.archive import now_iso, open_archive
from ..repository.ingest import current_agent, library_versions
from ..repository.transaction import Changes, checkpoint, job_fingerprint, transaction
from . import models as M


def _pipeline(pipeline: Any, *, seed: int | None, max_minutes: float | None, overrides: Mapping[str, Any] | None):
    from .pipeline import SegmentationPipeline, load_pipeline, with_overrides

    p = pipeline if isinstance(pipeline, SegmentationPipeline) else load_pipeline(pipeline)
    changes: dict[str, Any] = dict(overrides or {})
    if seed is not None:
        changes["training.seed"] = int(seed)
    if max_minutes is not None:
        changes["training.max_minutes"] = float(max_minutes)
    return with_overrides(p, changes) if changes else p


def train_model(archive_path: Path | str, pipeline: Any, acquisition: str, labels: str, *, name: str | None = None,
                device: str = "cpu", seed: int | None = None, max_minutes: float | None = None,
                init: str | None = None, overrides: Mapping[str, Any] | None = None, threads: int | None = None,
                command: list[str] | None = None, lock_timeout: float = 0,
                on_progress: Callable | None = None) -> list[Result]:
    """Train ``pipeline`` (a shipped name, a YAML path or a pipeline) on label version
    ``labels`` of ``acquisition`` and store it as the next version of model ``name``
    (default: the pipeline's name). ``init``: fine-tune from ``MODEL@vN`` of this archive.
    ``overrides``: dotted pipeline fields (``{"training.iterations": 50}``)."""
    t0 = time.monotonic()
    started = now_iso()
    archive = open_archive(archive_path)
    view = archive.acquisition(acquisition)
    lv = view.label(labels, field="--labels")
    p = _pipeline(pipeline, seed=seed, max_minutes=max_minutes, overrides=overrides)
    name = name or p.name
    M.parse_model_address(name, field="--name")
    parent = M.resolve(archive, init, field="--init") if init else None
    label_tree = lv.record().storage.tree_sha256 if lv.record_path.exists() else None
    job = job_fingerprint("train", pipeline=p.model_dump(mode="json"), acquisition=acquisition, labels=lv.address,
                          labels_tree=label_tree, image=view.ingest.image.tree_sha256, name=name, device=device,
                          init=parent.address if parent else None, threads=threads)
    with transaction(archive, "train", job=job, lock_timeout=lock_timeout, purpose=f"train {name}") as tx:
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        done = _same_job(archive, name, tx.job)
        if done is not None:
            return [*tx.recovered, done]
        created = M.ensure_models_dataset(tx)
        recovered = [*tx.recovered, *([created] if created else [])]
        view = archive.acquisition(acquisition)
        view.require_clean(f"train on {acquisition}")
        lv = view.label(lv.address)
        version = M.next_version(archive, name)
        M.require_new(archive, name, version)
        stage = tx.staging(f"train-{name}-{tx.job[:16]}")
        pkg = stage / "package"
        from .card import DataSource

        source = DataSource(
            archive=_dataset_id(archive.root), archive_commit=dlo.head(archive.root), acquisition=acquisition,
            acquisition_commit=view.commit, image_tree_checksum=view.ingest.image.tree_sha256,
            label_layer=lv.layer, label_version=lv.version, label_commit=view.commit, label_tree_checksum=label_tree)
        if not (pkg / "rdf.yaml").exists():
            _build(p, view, lv, pkg, name=name, version=version, source=source, device=device, threads=threads,
                   parent=parent, on_progress=on_progress, creator=dlo.git_identity(archive.root))
        checkpoint("train-package")
        from .package import read_card

        _, card = read_card(pkg)
        if card.version != version:
            raise SegmentationError("a staged package was made for another version", path=pkg, field="version",
                                    expected=version, found=card.version, hint="remove the staging folder")
        mv = M.ModelVersion(archive, name, version)
        address, rel = mv.address, mv.rel
        details = TrainDetails(
            model=address, package=rel, pipeline=p.name, acquisition=acquisition, labels=lv.address,
            parent=card.parent.address if card.parent else None, weights_sha256=card.files.weights_sha256,
            best_dice=card.validation.best_dice, iterations=card.training.iterations, seed=card.training.seed,
            device=card.training.device, threads=card.training.threads, max_minutes=card.training.max_minutes,
            bioimageio_valid=True)
        inputs: list[Any] = [
            ImageRef(acquisition=acquisition, path=view.image_path.name, tree_sha256=view.ingest.image.tree_sha256),
            _label_ref(acquisition, lv, label_tree)]
        if parent is not None:
            inputs.append(ModelRef(address=parent.address, weights_sha256=parent.card().files.weights_sha256,
                                   path=parent.rel, role="parent"))
        record = RunRecord(
            id=f"models/{name}_v{version}", action="train", acquisition=acquisition, started=started,
            finished=now_iso(), agent=current_agent(archive.root), tool=ToolInfo(version=__version__),
            libraries=library_versions(), command=command, job=tx.job, inputs=inputs,
            outputs=[OutputRef(kind="model", path=rel, address=address,
                               bytes=sum(f.stat().st_size for f in pkg.iterdir()))],
            details=details, seconds=round(time.monotonic() - t0, 3))
        write_record(stage / "record.json", record)
        checkpoint("train-record")
        dice = "-" if card.validation.best_dice is None else f"{card.validation.best_dice:.3f}"
        message = (f"Train {address}: {p.name} on {acquisition} {lv.address}, {card.training.iterations} "
                   f"iterations on {card.training.device}, validation Dice {dice}"
                   + (f", fine-tuned from {details.parent}" if details.parent else ""))
        st = tx.rel(stage)
        tag = M.model_tag(name, version)
        record_rel = f"{M.RECORDS_DIR}/{name}_v{version}.json"
        changes = Changes(dataset=M.MODELS_DIR, message=message, paths=[f"{name}/v{version}", record_rel],
                          tags=[tag], cleanup=[st])
        changes.move(f"{st}/package", rel)
        changes.move(f"{st}/record.json", f"{M.MODELS_DIR}/{record_rel}")
        changes.annex.append(AnnexAdd(repo=M.MODELS_DIR, paths=[f"{name}/v{version}"]))
        from ..records import ok

        result = ok("train", rel, message, model=address, name=name, version=version, package=rel,
                    card=f"{rel}/rdf.yaml", record=f"{M.MODELS_DIR}/{record_rel}", tag=tag, pipeline=p.name,
                    acquisition=acquisition, labels=lv.address, parent=details.parent,
                    weights_sha256=details.weights_sha256, best_dice=card.validation.best_dice,
                    validation_slices=card.validation.slices, iterations=card.training.iterations,
                    threads=card.training.threads, device=card.training.device,
                    training_seconds=card.training.seconds, seconds=round(time.monotonic() - t0, 3))
        tx.apply(changes.steps(), result)
    return [*recovered, result]


def _build(p, view, lv, pkg: Path, *, name: str, version: int, source, device: str, threads: int | None,
           parent, on_progress, creator: str | None) -> None:
    """Train and write the package into ``pkg`` (written beside it, then renamed)."""
    import zarr

    from .package import load_model, write_package
    from .train import train

    image = zarr.open_array(str(view.image_path / view.geometry.levels[0].path), mode="r")
    labels = lv.array(0)
    annotated = lv.lineage.annotated.model_dump(mode="json")
    init = load_model(parent.path).init() if parent is not None else None
    result = train(p, image, labels, annotated, view.geometry.voxel_size_nm, init=init, device=device,
                   threads=threads, on_progress=on_progress)
    slices = lv.lineage.annotated.z_planes()
    write_package(pkg, result, name=name, source=source, annotated_slices=slices, shape=view.geometry.shape,
                  creator=creator, version=version)


def _label_ref(acquisition: str, lv, tree: str | None):
    from ..provenance import LabelRef

    return LabelRef(address=lv.address, acquisition=acquisition, role="ground-truth", tree_sha256=tree)


def _dataset_id(root: Path) -> str:
    ds_id = dlo.git(root, "config", "-f", ".datalad/config", "datalad.dataset.id", check=False).strip()
    return ds_id or str(root)


def _same_job(archive, name: str, job: str) -> Result | None:
    """``notneeded`` when a stored version of ``name`` was made by this very job."""
    for mv in reversed(M.versions(archive, name)):
        if mv.record_path.exists() and mv.record().job == job:
            return Result(action="train", status=Status.notneeded, path=mv.rel,
                          message=f"{mv.address} was already trained by this same command",
                          data={"model": mv.address, "name": name, "version": mv.version, "package": mv.rel,
                                "tag": M.model_tag(name, mv.version),
                                "record": f"{M.MODELS_DIR}/{M.RECORDS_DIR}/{name}_v{mv.version}.json"})
    return None


__all__ = ["train_model"]
