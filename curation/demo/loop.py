"""The whole curation loop on a generated phantom, as `curate demo` runs it.

The steps come from a declarative pipeline (``pipelines/demo.yaml`` by default):

1. generate an 8 nm FIB-SEM-like phantom as a folder of TIFF slices with its metadata;
2. check the metadata, create an archive, ingest the phantom as OME-Zarr;
3. import the nuclear-envelope ground truth of a few slices as ``envelope@v1``, then two
   more slices as ``envelope@v2`` (lineage: v2's parent is v1), and diff the versions;
4. verify the archive (checksums, NGFF, git-annex);
5. package the acquisition for EMPIAR and as an RO-Crate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import AlreadyExistsError
from ..records import Result, ok
from .phantom import Phantom, PhantomSpec, write_phantom
from .pipeline import Pipeline, PipelineError, Step, load_pipeline


def _gt_subset(phantom: Phantom, which: str, slices: list[int], dest: Path) -> Path:
    """A folder holding the ground-truth masks of ``slices`` (indices from file names)."""
    files = sorted((phantom.ground_truth_dir / which).glob("*.tif"))
    bad = [z for z in slices if not 0 <= z < len(files)]
    if bad:
        raise PipelineError("ground-truth slices outside the phantom", field="labels-import.slices",
                            expected=f"0..{len(files) - 1}", found=bad)
    dest.mkdir(parents=True)
    for z in slices:
        shutil.copy2(files[z], dest / files[z].name)
    return dest


def run_demo(directory: Path | str, spec: PhantomSpec | None = None, *, pipeline: Path | str | None = None,
             progress: Callable | None = None) -> list[Result]:
    from ..metadata import check_metadata
    from ..repository.archive import init_archive

    plan = load_pipeline(pipeline)
    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise AlreadyExistsError("the demo folder is not empty", path=root,
                                 expected="a new or empty folder", hint="remove it or choose another folder")
    spec = spec or PhantomSpec(shape=tuple(plan.phantom.shape), voxel_size_nm=plan.phantom.voxel_size_nm,
                               seed=plan.phantom.seed)
    out: list[Result] = []
    if subprocess.run(["git", "var", "GIT_AUTHOR_IDENT"], capture_output=True).returncode != 0:
        # a fresh machine without a git identity: the throwaway demo archive commits as the demo
        for var, value in (("GIT_AUTHOR_NAME", "Curation Demo"), ("GIT_COMMITTER_NAME", "Curation Demo"),
                           ("GIT_AUTHOR_EMAIL", "demo@curation.invalid"),
                           ("GIT_COMMITTER_EMAIL", "demo@curation.invalid")):
            os.environ.setdefault(var, value)
        out.append(ok("demo-identity", None, "no git identity is configured; the demo commits as "
                      "'Curation Demo <demo@curation.invalid>' (set yours with git config --global user.name/.email)"))
    phantom = write_phantom(root / "acquisition", spec)
    out.append(ok("demo-phantom", phantom.images_dir,
                  f"generated a {spec.shape} phantom at {spec.voxel_size_nm:g} nm: {phantom.n_pores} nuclear pores "
                  f"on {phantom.envelope_area_um2:.2f} um2 of envelope", n_pores=phantom.n_pores))
    out += check_metadata(phantom.metadata_path)
    archive = root / "archive"
    out += init_archive(archive, title="Demo archive: phantom FIB-SEM of a mouse neuron")
    for i, step in enumerate(plan.steps):
        out += run_step(step, i, plan, archive, root, phantom, progress)
    out.append(ok("demo", root, f"demo complete: archive in {archive}, deposits in {root}", archive=str(archive),
                  pipeline=plan.pipeline))
    return out


def run_step(step: Step, i: int, plan: Pipeline, archive: Path, root: Path, phantom: Phantom,
             progress: Callable | None) -> list[Result]:
    """One pipeline step: one library call."""
    p = step.params
    name = plan.acquisition
    if step.kind == "ingest":
        from ..repository.ingest import IngestOptions, ingest

        return ingest(archive, [phantom.images_dir], phantom.metadata_path, name=name,
                      options=IngestOptions(progress=progress))
    if step.kind == "labels-import":
        from ..labels.importer import import_labels

        folder = _gt_subset(phantom, p.get("ground_truth", "envelope"), list(p["slices"]), root / f"gt-step{i}")
        names = {int(k): str(v) for k, v in (p.get("names") or {}).items()}
        return import_labels(archive, name, p["layer"], folder, kind=p.get("kind", "ground-truth"),
                             names=names or None, note=p.get("note", ""))
    if step.kind == "labels-diff":
        from ..labels.diff import diff_labels

        return diff_labels(archive, name, p["a"], p["b"])
    if step.kind == "verify":
        from ..repository.verify import verify

        return verify(archive, name)
    if step.kind == "package":
        from ..packaging import package

        fmt = p.get("format", "empiar")
        return package(archive, name, fmt, root / p.get("out", f"deposit-{fmt}"))
    raise PipelineError(f"unknown step kind {step.kind!r}", field=f"steps.{i}")  # pragma: no cover
