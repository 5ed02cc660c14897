"""``curate segment`` and ``curate reproduce``: predictions as label versions of the archive.

:func:`segment_acquisition` loads ``MODEL@vN`` from the models dataset (every sha256 checked
before anything is read), predicts the acquisition's image blockwise (optionally along the
three axes) into scratch arrays in the transaction's staging (a killed run resumes at the
first block not written), and stores, in **one write transaction**:

* ``LAYER-probability@vN`` (kind ``probability``, uint8 0-255, every voxel predicted; 255
  is probability 1, as no voxel of a probability layer is unlabeled);
* ``LAYER@vN`` (kind ``prediction``, 0/1);
* with ``keep_views``, ``LAYER-probability-z|y|x@vN``, each view of a tri-axis prediction;
* ``provenance/runs/segmentation-N.json``: a RunRecord whose details
  (:class:`~curation.provenance.segmentation.SegmentDetails`) hold the model, its weights
  sha256 and every parameter fixing the bytes (:class:`PredictionParameters`).

Each label version's lineage names the run (``lineage.run``); its record's inputs name the
model (with sha256) and the image (with its tree checksum). The archive's commit message
carries a DataLad run record, so ``datalad rerun`` in the archive repeats the prediction
(the recorded command has ``--again``: a new version, which ``curate reproduce`` or a
comparison of bytes shows to be identical on CPU).

:func:`reproduce_prediction` recomputes a stored prediction from its record into scratch
space and compares every output: bit-identical, or how many voxels differ and where.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import SegmentationError
from ..provenance import ImageRef, RunRecord, ToolInfo, read_record, record_json, write_record, write_text_atomic
from ..provenance.base import ModelRef
from ..provenance.segmentation import ReproductionResult, SegmentDetails, SegmentOutputs
from ..readers.base import HeaderMetadata, Source
from ..records import Result, Status, error, ok
from ..repository import datalad_ops as dlo
from ..repository.archive import now_iso, open_archive
from ..repository.pyramid import WriteOptions
from ..repository.transaction import checkpoint
from ..repository.view import RUNS
from . import models as M

RUN_PREFIX = "segmentation"


class ArraySource(Source):
    """A finished scratch array (zarr) as the source of a label version: every voxel is
    predicted, so no shard is fill."""

    reader = "prediction"

    def __init__(self, array: Any, path: Path) -> None:
        self.array = array
        self._path = Path(path)

    @property
    def paths(self) -> list[Path]:
        return [self._path]

    @property
    def header(self) -> HeaderMetadata:
        return HeaderMetadata(shape=tuple(int(n) for n in self.array.shape), dtype=str(self.array.dtype))

    def read(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        return np.asarray(self.array[region])

    def is_fill(self, region: tuple[slice, slice, slice]) -> bool:
        return False


def next_run_id(view) -> str:
    import re

    taken = [0]
    folder = view.path / RUNS
    for p in folder.iterdir() if folder.is_dir() else []:
        m = re.fullmatch(rf"{RUN_PREFIX}-(\d+)\.json", p.name)
        if m:
            taken.append(int(m.group(1)))
    return f"{RUN_PREFIX}-{max(taken) + 1}"


def datalad_run_message(summary: str, cmd: Sequence[str], dsid: str | None) -> str:
    """A commit message `datalad rerun` understands (the format of `datalad run`)."""
    import shlex

    info = {"chain": [], "cmd": shlex.join(cmd), "dsid": dsid, "exit": 0, "extra_inputs": [], "inputs": [],
            "outputs": [], "pwd": "."}
    return (f"[DATALAD RUNCMD] {summary}\n\n=== Do not change lines below ===\n"
            f"{json.dumps(info, indent=1, sort_keys=True, ensure_ascii=False)}\n^^^ Do not change lines above ^^^")


def rerun_command(name: str, model: str, *, layer: str, tri_axis: bool, keep_views: bool, device: str,
                  threads: int, block_shape: Sequence[int] | None) -> list[str]:
    """The command the DataLad run record holds (run in the archive's root)."""
    cmd = ["curate", "segment", ".", name, "--model", model, "--layer", layer, "--device", device,
           "--threads", str(threads), "--again"]
    cmd += ["--tri-axis"] if tri_axis else []
    cmd += ["--keep-views"] if keep_views else []
    if block_shape:
        cmd += ["--block-shape", ",".join(str(int(b)) for b in block_shape)]
    return cmd


def _scratch(stage: Path, key: str, shape, chunks):
    import zarr

    path = stage / "scratch" / f"{key}.zarr"
    if (path / "zarr.json").exists():
        return zarr.open_array(str(path), mode="r+")
    path.parent.mkdir(parents=True, exist_ok=True)
    return zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="uint8", fill_value=0, overwrite=True)


def segment_acquisition(archive_path: Path | str, name: str, model: str, *, tri_axis: bool | None = None,
                        keep_views: bool = False, device: str = "cpu", layer: str | None = None,
                        threads: int | None = None, block_shape: Sequence[int] | None = None, again: bool = False,
                        note: str = "", options: WriteOptions | None = None) -> list[Result]:
    """Predict acquisition ``name`` with ``model`` (``MODEL@vN``) and store the probability and
    prediction layers (see the module docstring). ``again``: compute a new version even when
    this same request was done before (what `datalad rerun` asks)."""
    import torch

    from ..labels import layers as L
    from ..labels.store import LabelWrite, label_transaction, stage_label_version
    from .package import load_model
    from .segment import plan_for, segment

    t0 = time.monotonic()
    started = now_iso()
    opts = options or WriteOptions()
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    mv = M.resolve(archive, model)
    loaded = load_model(mv.path)  # sha256 of weights and architecture checked first
    out = L.check_layer(layer or mv.name, field="--layer")
    prob_layer = f"{out}-probability"
    threads = int(threads or torch.get_num_threads() or 1)
    tri = bool(loaded.pipeline.inference.tri_axis if tri_axis is None else tri_axis)
    if keep_views and not tri:
        raise SegmentationError("per-axis views exist only with tri-axis prediction", field="--keep-views",
                                hint="add --tri-axis")
    bs = tuple(int(b) for b in block_shape) if block_shape else None
    image_tree = view.ingest.image.tree_sha256
    if again:
        _relock(view.path)
    job = {"model": mv.address, "weights": loaded.weights_sha256, "image": image_tree, "tri_axis": tri,
           "keep_views": keep_views, "device": device, "layer": out, "threads": threads,
           "block_shape": list(bs) if bs else None,
           "again": L.next_version(view, out) if again else None}
    with label_transaction(archive, name, "segment", job=job, options=opts) as (tx, view):
        if tx.finished is not None:
            return [*tx.recovered, tx.finished]
        if not again:
            done = _same_job(view, tx.job)
            if done is not None:
                return [*tx.recovered, done]
        import zarr

        geo = view.geometry
        image = zarr.open_array(str(view.image_path / geo.levels[0].path), mode="r")
        run_id = next_run_id(view)
        stage = tx.staging(f"segment-{name}-{tx.job[:16]}")
        names = ["probability", "prediction"] + (["z", "y", "x"] if keep_views else [])
        arrays = {k: _scratch(stage, k, geo.shape, geo.chunk) for k in names}
        plan = plan_for(loaded, image, geo.voxel_size_nm, tri_axis=tri, block_shape=bs)
        blocks = plan.blocks()
        progress = stage / "blocks-done.json"
        done_n = json.loads(progress.read_text())["done"] if progress.exists() else 0

        def on_block(n: int, total: int, block) -> None:
            write_text_atomic(progress, json.dumps({"done": done_n + n, "total": len(blocks)}))
            checkpoint("segment-block")

        params, summary = segment(loaded, image, geo.voxel_size_nm, arrays["probability"], arrays["prediction"],
                                  views={k: arrays[k] for k in ("z", "y", "x") if k in arrays}, device=device,
                                  threads=threads, blocks=blocks[done_n:], on_block=on_block, plan=plan)
        checkpoint("segment-predicted")
        versions = {"probability": L.address_of(prob_layer, L.next_version(view, prob_layer)),
                    "prediction": L.address_of(out, L.next_version(view, out))}
        for ax in ("z", "y", "x") if keep_views else ():
            lay = f"{prob_layer}-{ax}"
            versions[ax] = L.address_of(lay, L.next_version(view, lay))
        cmd = rerun_command(name, mv.address, layer=out, tri_axis=tri, keep_views=keep_views, device=device,
                            threads=threads, block_shape=bs)
        seconds = time.monotonic() - t0
        details = SegmentDetails(
            model=mv.address, parameters=params, keep_views=keep_views,
            outputs=SegmentOutputs(probability=versions["probability"], prediction=versions["prediction"],
                                   views={k: versions[k] for k in ("z", "y", "x") if k in versions}),
            blocks=len(blocks), voxels=int(np.prod(geo.shape)), seconds=round(seconds, 3),
            voxels_per_second=round(summary.voxels_per_second, 1), command=cmd)
        model_ref = ModelRef(address=mv.address, weights_sha256=loaded.weights_sha256,
                             architecture_sha256=loaded.card.files.architecture_sha256, path=mv.rel)
        image_ref = ImageRef(acquisition=name, path=view.image_path.name, tree_sha256=image_tree)
        whole = {"regions": [{"z": [0, geo.shape[0]], "y": [0, geo.shape[1]], "x": [0, geo.shape[2]]}]}
        target = loaded.pipeline.target.name
        staged = []
        for key, address in versions.items():
            lay, _ = L.parse_address(address)
            kind = "prediction" if key == "prediction" else "probability"
            what = {"probability": f"probability of {target}", "prediction": f"{target} predicted"}.get(
                key, f"probability of {target} along {key} (one view of the tri-axis prediction)")
            staged.append(stage_label_version(tx, view, LabelWrite(
                layer=lay, source=ArraySource(arrays[key], stage / "scratch" / f"{key}.zarr"), annotated=whole,
                kind=kind, parents=[], names={1: target[:64]} if kind == "prediction" else None,
                label_values=[0, 1] if kind == "prediction" else None, action="segment", details=details,
                inputs=[model_ref, image_ref], note=note or f"{what} by {mv.address} ({run_id})",
                run=f"runs/{run_id}", started=started, content_key={"run": run_id, "key": key}),
                opts, stage_key=f"{stage.name}-{key}"))
        record = RunRecord(
            id=f"runs/{run_id}", action="segment", acquisition=name, started=started, finished=now_iso(),
            agent=staged[0].record.agent, tool=ToolInfo(version=__version__), libraries=_libraries(),
            command=cmd, job=tx.job, inputs=[model_ref, image_ref],
            outputs=[s.record.outputs[0] for s in staged], details=details, engine=staged[0].record.engine,
            seconds=round(time.monotonic() - t0, 3), note=note)
        write_record(stage / "run.json", record)
        checkpoint("segment-record")
        changes = staged[0].changes
        for s in staged[1:]:
            changes = changes.merge(s.changes)
        changes = _one_listing(tx, changes)
        acq, st = tx.rel(view.path), tx.rel(stage)
        changes.move(f"{st}/run.json", f"{acq}/{RUNS}/{run_id}.json")
        changes.paths = sorted(set(changes.paths) | {f"{RUNS}/{run_id}.json"})
        changes.cleanup.append(st)
        views_text = " (tri-axis" + (", views kept" if keep_views else "") + ")" if tri else ""
        summary_line = (f"Segment {name} with {mv.address}{views_text}: {versions['prediction']}, "
                        f"{versions['probability']} ({run_id})")
        changes.message = summary_line + "\n\n" + "\n".join(s.changes.message for s in staged) + "\n"
        changes.archive_message = datalad_run_message(summary_line, cmd, _dsid(archive.root))
        tags = [s.result.data["tag"] for s in staged]
        result = ok("segment", f"{acq}/{RUNS}/{run_id}.json", summary_line.removeprefix("Segment "),
                    acquisition=name, model=mv.address, run=f"runs/{run_id}", record=f"{acq}/{RUNS}/{run_id}.json",
                    probability=versions["probability"], prediction=versions["prediction"],
                    views={k: versions[k] for k in ("z", "y", "x") if k in versions}, tags=tags, tri_axis=tri,
                    device=device, threads=threads, blocks=len(blocks),
                    voxels_per_second=details.voxels_per_second, weights_sha256=loaded.weights_sha256,
                    command=cmd, seconds=round(time.monotonic() - t0, 3))
        tx.apply(changes.steps(), result)
    data = dict(result.data)
    data.update(archive_commit=dlo.head(archive.root), dataset_commit=dlo.head(view.path))
    return [*tx.recovered, result.model_copy(update={"data": data})]


def _relock(dataset: Path) -> None:
    """`datalad rerun` unlocks the files the repeated commit changed before it runs the
    command; lock those back (git-annex refuses any whose content changed, and the
    acquisition then stays dirty and the write is refused)."""
    changed = [line[3:] for line in dlo.git(dataset, "status", "--porcelain", check=False).splitlines()
               if line[:2].strip() == "T"]
    if changed:
        dlo.annex(dataset, "lock", "--quiet", "--", *changed, check=False)


def _one_listing(tx, changes):
    """Several label versions staged at once each staged ``labels/zarr.json`` listing only
    itself beside what was there: write the union into the first and move only that one."""
    from ..provenance import write_text_atomic as write

    listing_moves = [m for m in changes.moves if m.target.endswith("/labels/zarr.json")]
    if len(listing_moves) < 2:
        return changes
    docs = [json.loads((tx.root / m.source).read_text()) for m in listing_moves]
    groups: list[str] = []
    for doc in docs:
        for g in doc["attributes"]["ome"]["labels"]:
            if g not in groups:
                groups.append(g)
    docs[0]["attributes"]["ome"]["labels"] = groups
    write(tx.root / listing_moves[0].source, json.dumps(docs[0], indent=2) + "\n")
    drop = {id(m) for m in listing_moves[1:]}
    changes.moves = [m for m in changes.moves if id(m) not in drop]
    return changes


def _libraries() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from ..repository.ingest import library_versions

    out = library_versions()
    for pkg in ("torch", "bioimageio.spec", "bioimageio.core"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _dsid(root: Path) -> str | None:
    return dlo.git(root, "config", "-f", ".datalad/config", "datalad.dataset.id", check=False).strip() or None


def _same_job(view, job: str) -> Result | None:
    for r in reversed(view.runs()):
        if r.action == "segment" and r.job == job and isinstance(r.details, SegmentDetails):
            d = r.details
            acq = view.archive.relative(view.path)
            return Result(action="segment", status=Status.notneeded, path=f"{acq}/provenance/{r.id}.json",
                          message=f"{view.name} was already segmented so: {r.id.removeprefix('runs/')} "
                                  f"({d.outputs.prediction}, {d.outputs.probability})",
                          data={"acquisition": view.name, "model": d.model, "run": r.id,
                                "prediction": d.outputs.prediction, "probability": d.outputs.probability,
                                "views": dict(d.outputs.views)})
    return None


# --- reproduce ---------------------------------------------------------------------------------------


def segmentation_record(view, address: str) -> tuple[Any, RunRecord]:
    """The label version ``address`` and the segmentation run that made it."""
    lv = view.label(address)
    run = lv.lineage.run
    path = view.path / "provenance" / f"{run}.json" if run else None
    if not run or not path.exists():
        raise SegmentationError("this label version was not made by `curate segment`", path=lv.path,
                                field="lineage.run", expected="runs/segmentation-N", found=run)
    record = read_record(path, RunRecord)
    if not isinstance(record.details, SegmentDetails):
        raise SegmentationError("the run that made this label version is not a segmentation", path=path,
                                field="details.kind", expected="segment",
                                found=getattr(record.details, "kind", None))
    return lv, record


def reproduce_prediction(archive_path: Path | str, name: str, address: str, *, device: str | None = None,
                         scratch: Path | str | None = None) -> list[Result]:
    """Recompute the segmentation run that made ``address`` (and its other outputs) into
    scratch space, and compare: ``ok`` when bit-identical (or, on a GPU, within
    bioimage.io's tolerance), ``error`` with how many voxels differ and where otherwise."""
    import zarr

    from .package import load_model
    from .segment import reproduce

    t0 = time.monotonic()
    archive = open_archive(archive_path)
    view = archive.acquisition(name)
    lv, record = segmentation_record(view, address)
    d: SegmentDetails = record.details  # type: ignore[assignment]
    mv = M.resolve(archive, d.model)
    loaded = load_model(mv.path)
    geo = view.geometry
    image = zarr.open_array(str(view.image_path / geo.levels[0].path), mode="r")
    outputs = {"probability": d.outputs.probability, "prediction": d.outputs.prediction, **d.outputs.views}
    stored = {k: view.label(a).array(0) for k, a in outputs.items()}
    folder = Path(tempfile.mkdtemp(prefix="curation-reproduce-", dir=scratch))
    try:
        arrays = {k: zarr.create_array(str(folder / f"{k}.zarr"), shape=geo.shape, chunks=geo.chunk, dtype="uint8",
                                       fill_value=0) for k in outputs}
        report = reproduce(loaded, image, d.parameters, stored, arrays, device=device)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    identical = all(c.identical for c in report.values())
    passed = all(c.passed for c in report.values())
    res = ReproductionResult(acquisition=name, address=lv.address, run=record.id, comparisons=report,
                             identical=identical, passed=passed)
    text = "; ".join(f"{outputs[k]}: {c.summary()}" for k, c in report.items())
    verdict = "bit-identical" if identical else ("within bioimage.io's tolerance" if passed else "DIFFERENT")
    message = f"{record.id.removeprefix('runs/')} recomputed with {d.model}: {verdict} ({text})"
    make = ok if passed else error
    acq = archive.relative(view.path)
    return [make("reproduce", f"{acq}/provenance/{record.id}.json", message, **record_json(res),
                 seconds=round(time.monotonic() - t0, 3))]


__all__ = ["ArraySource", "datalad_run_message", "reproduce_prediction", "segment_acquisition"]
