"""bioimage.io model packages (format 0.5): writing, verifying, loading safely.

A package is a folder::

    rdf.yaml          the bioimage.io description; config.curation holds the ModelCard
    weights.pt        pytorch_state_dict: tensors only
    unet_v1.py        the architecture, imports only torch (sha256 in rdf.yaml)
    test_input.npy    a raw input tile on the model grid, and the network's output for it
    test_output.npy
    README.md         what it is for, how it was trained, and a "Validation" section
    cover.png         input beside its prediction

Loading (:func:`load_model`) trusts nothing in the folder: it checks the sha256 of the
weights and of the architecture file against the RDF *and* the card before reading either,
builds the network from curation's own copy of a known architecture file (the bundled file
is never executed), and reads the weights with ``torch.load(weights_only=True)``, so a
pickle that would run code is refused, not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from ..errors import ModelIntegrityError, ModelPackageError
from ..safeyaml import read_yaml
from .architectures import KNOWN, current, network_for
from .card import DataSource, ModelCard, PackageFiles, ParentModel, card_from_training, now_iso
from .inference import Predictor, predict_model_region
from .pipeline import SegmentationPipeline

RDF = "rdf.yaml"
WEIGHTS = "weights.pt"
TEST_INPUT = "test_input.npy"
TEST_OUTPUT = "test_output.npy"
README = "README.md"
COVER = "cover.png"
#: the largest test tile edge (model-grid voxels)
TEST_TILE = 256
DEFAULT_LICENSE = "CC-BY-4.0"
UNET_CITATION = {"text": "Ronneberger, Fischer and Brox, U-Net: Convolutional Networks for Biomedical Image "
                         "Segmentation, MICCAI 2015", "doi": "10.1007/978-3-319-24574-4_28"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenPackage:
    path: Path
    card: ModelCard
    weights_sha256: str


def write_package(directory: str | Path, result: Any, *, name: str, source: DataSource, annotated_slices: list[int],
                  shape: tuple[int, int, int], started: str | None = None, description: str | None = None,
                  creator: str | None = None, version: int | None = None, parent: ParentModel | None = None,
                  license: str = DEFAULT_LICENSE, validate: bool = True) -> WrittenPackage:
    """Write a :class:`~curation.segmentation.train.TrainingResult` as a package in the new
    folder ``directory`` (never overwritten; written beside it, then renamed into place).

    ``source`` names the training data as the archive recorded it; ``parent`` defaults to
    the model a fine-tuning started from (``result.parent``). The package is validated by
    bioimage.io's own library before it is moved into place."""
    target = Path(directory)
    if target.exists():
        raise ModelPackageError("the package folder already exists and is never overwritten", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        arch_path, arch_sha, call = current()
        shutil.copyfile(arch_path, stage / arch_path.name)
        state = {k: v.detach().cpu().contiguous() for k, v in result.state_dict.items()}
        torch.save(state, stage / WEIGHTS)
        test_in, test_out = _test_tensors(result)
        np.save(stage / TEST_INPUT, test_in)
        np.save(stage / TEST_OUTPUT, test_out)
        files = PackageFiles(weights=WEIGHTS, weights_sha256=sha256_file(stage / WEIGHTS),
                             architecture=arch_path.name, architecture_sha256=arch_sha,
                             test_input=TEST_INPUT, test_input_sha256=sha256_file(stage / TEST_INPUT),
                             test_output=TEST_OUTPUT, test_output_sha256=sha256_file(stage / TEST_OUTPUT))
        if sha256_file(stage / arch_path.name) != arch_sha:
            raise ModelIntegrityError("the architecture file differs from its registered sha256", path=arch_path,
                                      hint="architecture files are frozen: add a new one instead of editing")
        if parent is None and getattr(result, "parent", None):
            parent = ParentModel.model_validate(result.parent)
        card = card_from_training(result, name=name, source=source, files=files, annotated_slices=annotated_slices,
                                  shape=shape, started=started or result.started_at,
                                  finished=getattr(result, "finished_at", "") or now_iso(), description=description,
                                  creator=creator, version=version, parent=parent)
        _write_cover(stage / COVER, test_in, test_out)
        (stage / README).write_text(readme(card), encoding="utf-8")
        rdf = rdf_dict(card, call, test_in.shape, license=license,
                       extra_files={README: sha256_file(stage / README), COVER: sha256_file(stage / COVER)})
        import yaml

        (stage / RDF).write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True), encoding="utf-8")
        if validate:
            problems = validate_package(stage)
            if problems:
                raise ModelPackageError("bioimage.io validation refused the package: " + problems[0], path=target)
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return WrittenPackage(target, card, files.weights_sha256)


def _test_tensors(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """A raw model-grid tile from the training data (batch and channel axes first) and the
    network's output probability for it, computed as bioimage.io will: scale_linear, forward,
    sigmoid."""
    p: SegmentationPipeline = result.pipeline
    sample = np.asarray(result.sample, dtype=np.float32)  # (C, Y, X) or (Z, Y, X), raw values
    m = p.architecture.multiple
    lo_min = min_size(p)
    if p.architecture.dims == "3d":
        edge = [max(lo_min, min(TEST_TILE // 2, (n // m) * m)) for n in sample.shape]
        sl = tuple(slice(max(0, (n - e) // 2), max(0, (n - e) // 2) + e) for n, e in zip(sample.shape, edge))
        crop = _pad_to(sample[sl], edge)
        x = crop[None, None]
    else:
        edge = [max(lo_min, min(TEST_TILE, (n // m) * m)) for n in sample.shape[1:]]
        sl = (slice(None),) + tuple(slice(max(0, (n - e) // 2), max(0, (n - e) // 2) + e)
                                    for n, e in zip(sample.shape[1:], edge))
        crop = _pad_to(sample[sl], [sample.shape[0]] + edge)
        x = crop[None]
    gain, offset = _scale_linear(p, result.normalization)
    normed = (x * np.float32(gain) + np.float32(offset)).astype(np.float32)
    model = result.model.eval()
    with torch.inference_mode():
        y = torch.sigmoid(model(torch.from_numpy(normed)).float()).numpy()
    return x.astype(np.float32), y.astype(np.float32)


def _pad_to(a: np.ndarray, shape: list[int]) -> np.ndarray:
    pads = [(0, max(0, s - n)) for n, s in zip(a.shape, shape)]
    return np.pad(a, pads, mode="symmetric") if any(p[1] for p in pads) else a


def _scale_linear(p: SegmentationPipeline, values: tuple[float, float] | None) -> tuple[float, float]:
    if values is None:
        return 1.0, 0.0
    lo, hi = values
    return 1.0 / (hi - lo), -lo / (hi - lo)


def min_size(p: SegmentationPipeline) -> int:
    """The smallest spatial input edge the package declares: twice the halo plus one step."""
    return 2 * p.halo + p.architecture.multiple


def rdf_dict(card: ModelCard, call: str, test_shape: tuple[int, ...], *, license: str,
             extra_files: dict[str, str]) -> dict[str, Any]:
    """The bioimage.io model description (format 0.5) of a card."""
    from bioimageio.spec.model.v0_5 import ModelDescr

    p = card.pipeline
    nd = p.architecture.spatial_dims
    names = ("z", "y", "x")[3 - nd:]
    vs = dict(zip(("z", "y", "x"), card.model_voxel_size_nm))
    m = p.architecture.multiple
    channels = ["raw"] if p.architecture.in_channels == 1 else \
        [f"slice{j:+d}" for j in range(-p.architecture.context_slices, p.architecture.context_slices + 1)]
    in_axes: list[dict[str, Any]] = [{"type": "batch"}, {"type": "channel", "channel_names": channels}]
    out_axes: list[dict[str, Any]] = [{"type": "batch"}, {"type": "channel", "channel_names": [p.target.name[:32] or "foreground"]}]
    for a in names:
        in_axes.append({"type": "space", "id": a, "size": {"min": min_size(p), "step": m}, "unit": "nanometer",
                        "scale": round(vs[a], 6)})
        out_axes.append({"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}, "unit": "nanometer",
                         "scale": round(vs[a], 6), "halo": p.halo})
    gain, offset = _scale_linear(p, card.training_data.normalization_values)
    pre: list[dict[str, Any]] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if card.training_data.normalization_values is not None:
        pre.append({"id": "scale_linear", "kwargs": {"gain": gain, "offset": offset}})
    files = card.files
    authors = [{"name": (card.creator or "curation").split("<")[0].strip() or "curation"}]
    return {
        "format_version": ModelDescr.implemented_format_version,
        "type": "model",
        # bioimage.io asks for 5 to 128 characters; an archive name may be shorter ("mito")
        "name": (card.name if len(card.name) >= 5 else f"{card.name} model")[:128],
        "description": card.description[:1024],
        "authors": authors,
        "cite": [UNET_CITATION],
        "license": license,
        "documentation": {"source": README, "sha256": extra_files[README]},
        "covers": [{"source": COVER, "sha256": extra_files[COVER]}],
        "tags": ["segmentation", "electron-microscopy", f"unet-{p.architecture.dims}", p.target.name.lower()[:64],
                 "curation"],
        "version": f"{card.version}.0.0" if card.version else "0.1.0",
        "timestamp": card.created,
        "inputs": [{
            "id": "raw", "description": "raw intensities on the model grid", "axes": in_axes,
            "test_tensor": {"source": files.test_input, "sha256": files.test_input_sha256},
            "data": {"type": "float32"}, "preprocessing": pre,
        }],
        "outputs": [{
            "id": "probability", "description": f"probability of {p.target.name}"[:128], "axes": out_axes,
            "test_tensor": {"source": files.test_output, "sha256": files.test_output_sha256},
            "data": {"type": "float32", "range": [0.0, 1.0]},
            "postprocessing": [{"id": "sigmoid"}],
        }],
        "weights": {"pytorch_state_dict": {
            "source": files.weights, "sha256": files.weights_sha256,
            "architecture": {"source": files.architecture, "sha256": files.architecture_sha256, "callable": call,
                             "kwargs": p.architecture.kwargs()},
            "pytorch_version": torch.__version__.split("+")[0],
        }},
        "config": {"curation": card.model_dump(mode="json")},
    }


def _write_cover(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Input (middle channel or slice) beside it with the foreground in magenta (opaque as
    the probability rises from 0.5 to 1)."""
    import imageio.v3 as iio

    img = x[0, x.shape[1] // 2] if x.ndim == 4 else x[0, 0, x.shape[2] // 2]
    prob = y[0, 0] if y.ndim == 4 else y[0, 0, y.shape[2] // 2]
    lo, hi = np.percentile(img, [1, 99.5])
    g = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    left = np.stack([g, g, g], axis=-1)
    a = np.clip(2 * prob[..., None] - 1, 0, 1) * 0.7
    right = left * (1 - a) + a * np.array([1.0, 0.0, 1.0])
    iio.imwrite(path, (np.concatenate([left, right], axis=1) * 255).round().astype(np.uint8))


def readme(card: ModelCard) -> str:
    """The package's README: purpose, data, training, and the Validation section."""
    p, td, tr, v = card.pipeline, card.training_data, card.training, card.validation
    src = td.source
    vs = " x ".join(f"{s:g}" for s in card.model_voxel_size_nm)
    lines = [f"# {card.name}" + (f" v{card.version}" if card.version else ""), "", card.description, "",
             "## Intended use", "", card.intended_use, "", "## Limitations", "", card.limitations, "",
             "## Training data", "",
             f"- archive `{src.archive}`, acquisition `{src.acquisition}`, labels `{src.label_address}`",
             f"- image {td.shape[0]} x {td.shape[1]} x {td.shape[2]} voxels (z, y, x) at "
             f"{' x '.join(f'{s:g}' for s in td.voxel_size_nm)} nm; the network works at {vs} nm",
             f"- annotated slices {td.annotated_slices}; trained on {td.training_slices}",
             f"- target: {p.target.name} (label values {p.target.foreground})", "",
             "## Training", "",
             f"- pipeline `{p.name}`: {p.architecture.dims} U-Net, width {p.architecture.width}, depth "
             f"{p.architecture.depth}; patch {p.training.patch}, batch {p.training.batch}; loss BCE x{p.loss.bce} + "
             f"Dice x{p.loss.dice} on annotated voxels only; {p.optimizer.name} lr {p.optimizer.lr:g} "
             f"({p.optimizer.schedule})",
             f"- {tr.iterations} iterations in {tr.seconds / 60:.1f} min on {tr.device} ({tr.device_name}), "
             f"{tr.threads} threads, {tr.precision}, seed {tr.seed}; stopped by {tr.stopped_by}",
             ]
    if card.parent is not None:
        lines.append(f"- fine-tuned from `{card.parent.address}` (weights sha256 {card.parent.weights_sha256[:16]}...)")
    lines += ["", "## Validation", ""]
    if not v.slices:
        lines.append("No slices were held out: the last weights were kept.")
    else:
        lines.append(f"Held-out annotated slices {v.slices} (chosen: {v.selection}); Dice at threshold "
                     f"{v.threshold:g} over their annotated voxels, after each epoch. Best: "
                     f"{_fmt(v.best_dice)} at iteration {v.best_iteration} (these weights).")
        lines += ["", "| epoch | iteration | training loss | validation Dice |", "|---:|---:|---:|---:|"]
        lines += [f"| {e.epoch} | {e.iteration} | {e.loss:.4f} | {_fmt(e.dice)} |" for e in v.epochs]
    lines += ["", "Held-out slices lie next to training slices only as far as the annotation allows; Dice on "
              "slices far from any training slice is the better measure of what to expect on new data.", "",
              "## Use", "",
              "Inputs are raw intensities on the model grid, scaled by `scale_linear` with the training volume's "
              f"{p.normalization.low:g} and {p.normalization.high:g} percentiles. curation itself scales each "
              f"volume by {'its own' if p.normalization.reference == 'input' else 'the training'} percentiles and "
              "predicts blockwise with a halo (see `config.curation.pipeline.inference`).", "",
              f"Made by curation {card.software.curation} ({card.software.code_commit or 'no git commit'}), "
              f"torch {card.software.torch}.", ""]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


# --- checking and loading ------------------------------------------------------------------------------


def validate_package(directory: str | Path) -> list[str]:
    """bioimage.io's own format validation (offline, files and sha256 checked): the problems
    found, empty when the package is valid."""
    from bioimageio.spec import load_description

    descr = load_description(Path(directory) / RDF, perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status == "valid-format" or summary.status == "passed":
        return []
    return [" ".join(f"{'.'.join(str(x) for x in d.loc)}: {d.msg}".split()) for d in summary.details[0].errors] \
        if summary.details and summary.details[0].errors else [summary.status]


def bioimageio_test(directory: str | Path) -> tuple[bool, list[str]]:
    """bioimage.io's model test (CPU): the package reproduces its test output. (passed, problems)"""
    from bioimageio.core import test_model

    summary = test_model(Path(directory) / RDF, devices=["cpu"])
    problems = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
    return summary.status == "passed", problems


@dataclass
class LoadedModel:
    """A verified model: the network in evaluation mode and its card."""

    path: Path
    card: ModelCard
    network: torch.nn.Module
    state_dict: dict[str, torch.Tensor]
    weights_sha256: str

    @property
    def pipeline(self) -> SegmentationPipeline:
        return self.card.pipeline

    def predictor(self, *, device: str = "cpu", precision: str | None = None, threads: int | None = None,
                  batch: int | None = None) -> Predictor:
        inf = self.pipeline.inference
        return Predictor(self.network, batch=batch or inf.batch, device=device, precision=precision or inf.precision,
                         threads=threads)

    def init(self) -> dict[str, Any]:
        """What :func:`curation.segmentation.train.train` takes as ``init`` to fine-tune this model."""
        return {"state_dict": self.state_dict,
                "parent": {"name": self.card.name, "version": self.card.version, "weights_sha256": self.weights_sha256}}


def _inside(root: Path, name: Any, field: str) -> Path:
    """A file named by the RDF, which must be a plain relative path inside the package."""
    if not isinstance(name, str) or not name or "://" in name:
        raise ModelPackageError("a package file must be a relative path inside the package", path=root / RDF,
                                field=field, found=name)
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts:
        raise ModelIntegrityError("a package file points outside the package", path=root / RDF, field=field,
                                  found=name)
    path = root / pure
    if not path.is_file():
        raise ModelPackageError("a file named in the package is missing", path=path, field=field)
    return path


def read_card(directory: str | Path) -> tuple[dict[str, Any], ModelCard]:
    """``(rdf, card)`` of a package, the card validated (no file is checked here)."""
    root = Path(directory)
    rdf = read_yaml(root / RDF, error=ModelPackageError)
    if not isinstance(rdf, dict) or rdf.get("type") != "model" or not str(rdf.get("format_version", "")).startswith("0.5"):
        raise ModelPackageError("not a bioimage.io model description of format 0.5", path=root / RDF,
                                expected="type: model, format_version: 0.5.x",
                                found=f"type {rdf.get('type') if isinstance(rdf, dict) else None!r}")
    config = rdf.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("curation"), dict):
        raise ModelPackageError("the package has no curation model card", path=root / RDF, field="config.curation",
                                hint="only packages written by curation can be loaded")
    try:
        card = ModelCard.model_validate(config["curation"])
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ModelPackageError(f"the model card is invalid: {err['msg']}", path=root / RDF,
                                field="config.curation." + ".".join(str(x) for x in err["loc"])) from None
    return rdf, card


def verify_package(directory: str | Path) -> tuple[dict[str, Any], ModelCard, Path, str]:
    """Check that the RDF, the card and the files agree, by sha256, before anything is read.
    Returns (rdf, card, weights path, weights sha256)."""
    root = Path(directory)
    rdf, card = read_card(root)
    try:
        entry = rdf["weights"]["pytorch_state_dict"]
        arch = entry["architecture"]
    except (KeyError, TypeError):
        raise ModelPackageError("the package has no pytorch_state_dict weights", path=root / RDF,
                                field="weights.pytorch_state_dict") from None
    weights = _inside(root, entry.get("source"), "weights.pytorch_state_dict.source")
    arch_file = _inside(root, arch.get("source"), "weights.pytorch_state_dict.architecture.source")
    files = card.files
    checks = [
        (weights, entry.get("sha256"), files.weights_sha256, "weights.pytorch_state_dict.sha256"),
        (arch_file, arch.get("sha256"), files.architecture_sha256, "weights.pytorch_state_dict.architecture.sha256"),
    ]
    for path, recorded, carded, field in checks:
        if recorded != carded:
            raise ModelIntegrityError("the RDF and the model card record different sha256", path=root / RDF,
                                      field=field, expected=carded, found=recorded)
        actual = sha256_file(path)
        if actual != recorded:
            raise ModelIntegrityError("a model file does not match its recorded sha256: it was changed", path=path,
                                      expected=recorded, found=actual, hint="restore the package from the archive")
    if Path(arch["source"]).name != files.architecture or PurePosixPath(entry["source"]).name != files.weights:
        raise ModelIntegrityError("the RDF and the model card name different files", path=root / RDF,
                                  field="weights.pytorch_state_dict")
    if files.architecture_sha256 not in KNOWN:
        raise ModelIntegrityError("the architecture file is not one curation knows", path=arch_file,
                                  expected="a curation architecture (unet_v1.py ...)", found=files.architecture_sha256,
                                  hint="curation never runs code from a package")
    if arch.get("callable") != KNOWN[files.architecture_sha256][2] or \
            arch.get("kwargs") != card.pipeline.architecture.kwargs():
        raise ModelIntegrityError("the architecture in the RDF differs from the card's pipeline", path=root / RDF,
                                  field="weights.pytorch_state_dict.architecture.kwargs",
                                  expected=card.pipeline.architecture.kwargs(), found=arch.get("kwargs"))
    return rdf, card, weights, files.weights_sha256


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a weights file, never unpickling anything else (``weights_only=True``)."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        raise ModelIntegrityError("the weights file holds more than tensors (or is damaged) and is refused",
                                  path=path, found=" ".join(str(exc).split())[:160],
                                  hint="curation loads tensors only; never unpickle a model file") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ModelIntegrityError("the weights file is not a state dict of tensors", path=path,
                                  found=type(state).__name__)
    return state


def load_model(directory: str | Path) -> LoadedModel:
    """A verified model ready to predict (see the module doc for what is checked)."""
    root = Path(directory)
    rdf, card, weights, sha = verify_package(root)
    state = read_state_dict(weights)
    network = network_for(card.files.architecture_sha256, card.pipeline.architecture.kwargs())
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelPackageError("the weights do not fit the architecture the card describes", path=weights,
                                found=" ".join(str(exc).split())[:200]) from None
    return LoadedModel(root, card, network.eval(), state, sha)


def card_json(card: ModelCard) -> str:
    return json.dumps(card.model_dump(mode="json"), indent=2, sort_keys=True)


__all__ = ["LoadedModel", "WrittenPackage", "load_model", "predict_model_region", "read_card", "read_state_dict",
           "bioimageio_test", "validate_package", "verify_package", "write_package"]
