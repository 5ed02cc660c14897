"""The archive's ``models`` dataset: trained models as immutable, tagged versions.

Layout (a DataLad subdataset of the archive, created by the first ``curate train``)::

    ARCHIVE/models/
      MODEL/vN/                      the bioimage.io package (rdf.yaml with the model card in
                                     config.curation, weights.pt, unet_v1.py, test tensors,
                                     README.md, cover.png); binary files annexed
      provenance/MODEL_vN.json       the training run's RunRecord (TrainDetails)

Each version is tagged ``models/MODEL/vN`` in the models dataset and in the archive. A
version is never rewritten: the next training of the same name is ``vN+1``, and a folder or
tag already there is never written into.

Writes go through the write transaction (:mod:`curation.repository.transaction`): the
dataset itself is created in staging and registered by a journaled transaction of its
own (job ``models-dataset``), and each version is moved in, annexed, committed and tagged
by the training's transaction. This module does not import torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImmutableError, NotFoundError, SegmentationError
from ..omezarr.writer import remove_tree
from ..provenance import read_record
from ..provenance.journal import Commit, Move, Register, Remove
from ..provenance.runs import RunRecord
from ..records import Result, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, open_archive
from ..repository.transaction import Transaction, checkpoint, job_fingerprint
from .card import ModelCard

MODELS_DIR = "models"
RECORDS_DIR = "provenance"
_ADDRESS = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:@v(\d+))?$")


def parse_model_address(text: str, field: str = "--model") -> tuple[str, int | None]:
    """``MODEL@vN`` -> (MODEL, N); ``MODEL`` -> (MODEL, None)."""
    m = _ADDRESS.match(str(text or "").strip())
    if not m:
        raise SegmentationError("not a model address", field=field, expected="MODEL@vN, e.g. pores-3d@v1",
                                found=text)
    return m.group(1), int(m.group(2)) if m.group(2) else None


def model_tag(name: str, version: int) -> str:
    return f"{MODELS_DIR}/{name}/v{version}"


@dataclass(frozen=True)
class ModelVersion:
    """One stored model version (read model; nothing here writes)."""

    archive: Archive
    name: str
    version: int

    @property
    def address(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def path(self) -> Path:
        return self.archive.root / MODELS_DIR / self.name / f"v{self.version}"

    @property
    def rel(self) -> str:
        return f"{MODELS_DIR}/{self.name}/v{self.version}"

    @property
    def record_path(self) -> Path:
        return self.archive.root / MODELS_DIR / RECORDS_DIR / f"{self.name}_v{self.version}.json"

    def card(self) -> ModelCard:
        from .package import read_card

        return read_card(self.path)[1]

    def record(self) -> RunRecord:
        return read_record(self.record_path, RunRecord)


def models_path(archive: Archive) -> Path:
    return archive.root / MODELS_DIR


def versions(archive: Archive, name: str | None = None) -> list[ModelVersion]:
    """Stored model versions (of ``name``), by name then version."""
    root = models_path(archive)
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or folder.name == RECORDS_DIR:
            continue
        if name is not None and folder.name != name:
            continue
        for v in folder.iterdir():
            m = re.fullmatch(r"v(\d+)", v.name)
            if m and (v / "rdf.yaml").exists():
                out.append(ModelVersion(archive, folder.name, int(m.group(1))))
    return sorted(out, key=lambda mv: (mv.name, mv.version))


def resolve(archive: Archive, address: str, field: str = "--model") -> ModelVersion:
    """The stored version ``MODEL@vN`` (``MODEL`` alone: its latest)."""
    name, version = parse_model_address(address, field)
    found = versions(archive, name)
    if version is None and found:
        return found[-1]
    for mv in found:
        if mv.version == version:
            return mv
    known = ", ".join(mv.address for mv in versions(archive)) or "none yet"
    raise NotFoundError(f"no model {address} in this archive", path=models_path(archive), field=field,
                        expected=f"one of: {known}", found=address,
                        hint="train one with `curate train`, list them with `curate models list`")


def next_version(archive: Archive, name: str) -> int:
    """One more than any version stored, tagged or left as a folder."""
    taken = [mv.version for mv in versions(archive, name)]
    folder = models_path(archive) / name
    if folder.is_dir():
        taken += [int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name)]
    if (archive.root / ".git").exists():
        for t in dlo.git(archive.root, "tag", "-l", f"{MODELS_DIR}/{name}/v*", check=False).split():
            m = re.fullmatch(rf"{MODELS_DIR}/{re.escape(name)}/v(\d+)", t)
            if m:
                taken.append(int(m.group(1)))
    return max(taken, default=0) + 1


def require_new(archive: Archive, name: str, version: int) -> None:
    mv = ModelVersion(archive, name, version)
    if mv.path.exists() or dlo.has_tag(archive.root, model_tag(name, version)):
        raise ImmutableError(f"{mv.address} exists and model versions are immutable", path=mv.path,
                             expected=f"a new version, {name}@v{next_version(archive, name)}", found=mv.address)


def ensure_models_dataset(tx: Transaction) -> Result | None:
    """Create and register ``models/`` when the archive has none (inside ``tx``'s lock),
    journaled under its own job so a kill at any step converges; None when it exists."""
    archive = tx.archive
    target = models_path(archive)
    if (target / ".datalad").is_dir() and (archive.root / ".gitmodules").exists() and \
            f"path = {MODELS_DIR}" in (archive.root / ".gitmodules").read_text():
        return None
    stage = tx.staging("models-dataset")
    dataset = stage / "dataset"
    if not (dataset / ".datalad").is_dir():
        remove_tree(dataset)
        dlo.create_dataset(dataset, description="models: trained segmentation models of this archive")
        (dataset / RECORDS_DIR).mkdir(exist_ok=True)
        (dataset / "README.md").write_text(
            "# Models\n\nTrained segmentation models of this archive, one folder per model and version\n"
            "(`MODEL/vN/`: a bioimage.io model package whose `rdf.yaml` carries the curation model card in\n"
            "`config.curation`), and the run record of each training in `provenance/MODEL_vN.json`.\n"
            "Versions are immutable and tagged `models/MODEL/vN`. Read them with `curate models list|show`.\n")
    checkpoint("models-dataset")
    message = "Create the models dataset"
    ds_rel = tx.rel(dataset)
    steps = [Commit(repo=ds_rel, message=message), Move(source=ds_rel, target=MODELS_DIR),
             Register(repo=".", sub=MODELS_DIR, message=message), Remove(path=tx.rel(stage))]
    result = ok("models-init", MODELS_DIR, "created the models dataset")
    creator = Transaction(archive, "models-init", job_fingerprint("models-dataset", archive=str(archive.root)))
    return creator.apply(steps, result)


# --- reading ------------------------------------------------------------------------------------------


def _summary(mv: ModelVersion) -> dict:
    card = mv.card()
    td = card.training_data
    return {"model": mv.address, "name": mv.name, "version": mv.version, "path": mv.rel,
            "pipeline": card.pipeline.name, "dims": card.pipeline.architecture.dims,
            "target": card.pipeline.target.name, "acquisition": td.source.acquisition,
            "labels": td.source.label_address, "parent": card.parent.address if card.parent else None,
            "best_dice": card.validation.best_dice, "validation_slices": card.validation.slices,
            "iterations": card.training.iterations, "device": card.training.device, "created": card.created,
            "weights_sha256": card.files.weights_sha256, "tag": model_tag(mv.name, mv.version)}


def list_models(archive_path: Path | str) -> list[Result]:
    archive = open_archive(archive_path)
    out = []
    for mv in versions(archive):
        d = _summary(mv)
        dice = "-" if d["best_dice"] is None else f"{d['best_dice']:.3f}"
        parent = f", fine-tuned from {d['parent']}" if d["parent"] else ""
        out.append(ok("models-list", mv.rel, f"{mv.address}: {d['pipeline']} ({d['target']}), trained on "
                      f"{d['acquisition']} {d['labels']}, validation Dice {dice}{parent}", **d))
    return out


def lineage(archive: Archive, mv: ModelVersion) -> list[str]:
    """Lines drawing the model's ancestry beside the label lineage each was trained on."""
    lines = []
    chain: list[ModelVersion] = []
    cur: ModelVersion | None = mv
    while cur is not None and len(chain) < 50:
        chain.append(cur)
        parent = cur.card().parent
        cur = None
        if parent is not None and parent.version is not None:
            try:
                cur = resolve(archive, parent.address)
            except NotFoundError:
                lines.append(f"  (parent {parent.address} is not in this archive)")
    for i, m in enumerate(chain):
        td = m.card().training_data.source
        labels = td.label_address
        ancestry = []
        try:
            view = archive.acquisition(td.acquisition)
            lv = view.label(labels)
            seen = {lv.address}
            todo = list(lv.parents)
            while todo and len(ancestry) < 20:
                a = todo.pop(0)
                if a in seen:
                    continue
                seen.add(a)
                ancestry.append(a)
                try:
                    todo += view.label(a).parents
                except Exception:  # noqa: BLE001 - a parent outside this acquisition
                    pass
        except Exception:  # noqa: BLE001 - the acquisition is not in this archive
            pass
        labels_text = f"{td.acquisition}/{labels}" + (f" <- {' <- '.join(ancestry)}" if ancestry else "")
        arrow = "  " * i + ("" if i == 0 else "^ ")
        lines.append(f"{arrow}{m.address:<24} trained on {labels_text}")
    return lines


def show_model(archive_path: Path | str, address: str) -> list[Result]:
    archive = open_archive(archive_path)
    mv = resolve(archive, address, field="MODEL@vN")
    card = mv.card()
    d = _summary(mv)
    d["card"] = card.model_dump(mode="json")
    d["lineage"] = lineage(archive, mv)
    d["record"] = f"{MODELS_DIR}/{RECORDS_DIR}/{mv.name}_v{mv.version}.json" if mv.record_path.exists() else None
    return [ok("models-show", mv.rel, f"{mv.address}: {card.description.strip()}", **d)]


__all__ = ["MODELS_DIR", "ModelVersion", "ensure_models_dataset", "list_models", "model_tag", "next_version",
           "parse_model_address", "resolve", "show_model", "versions"]
