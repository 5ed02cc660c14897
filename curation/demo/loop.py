"""The whole curation loop on a generated phantom, as `curate demo` runs it.

The steps come from a declarative pipeline (``pipelines/demo.yaml`` by default), run by
:mod:`curation.pipelines`:

1. generate an 8 nm FIB-SEM-like phantom as a folder of TIFF slices with its metadata;
2. check the metadata, create an archive, ingest the phantom as OME-Zarr;
3. import the nuclear-envelope ground truth of a few slices as ``envelope@v1``, then two
   more slices as ``envelope@v2`` (which keeps v1's slices), and diff the versions;
   measure a tiny learning curve on ``envelope@v2`` (what two more slices would buy);
4. verify the archive (checksums, tracked files, NGFF, git-annex);
5. package the acquisition for EMPIAR and as an RO-Crate;
6. write ``README.md`` and ``index.html`` at the top of the folder, with previews, to show
   what was made.

All or nothing: the folder is marked incomplete while the demo runs and removed when a
step fails; a folder left marked by a killed demo is cleared by the next one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import AlreadyExistsError
from ..omezarr.writer import remove_tree
from ..pipelines import RunContext, load_pipeline, run_pipeline
from ..records import Result, ok
from .phantom import PhantomSpec, write_phantom

#: present while a demo is being written into the folder
INCOMPLETE = ".curation-demo-incomplete"


def run_demo(directory: Path | str, spec: PhantomSpec | None = None, *, pipeline: Path | str | None = None,
             progress: Callable | None = None) -> list[Result]:
    from ..metadata import check_metadata
    from ..repository.archive import init_archive

    plan = load_pipeline(pipeline)
    root = Path(directory).resolve()
    out: list[Result] = []
    if root.exists() and any(root.iterdir()):
        if not (root / INCOMPLETE).exists():
            raise AlreadyExistsError("the demo folder is not empty", path=root, expected="a new or empty folder",
                                     hint="remove it or choose another folder")
        remove_tree(root)
        out.append(ok("demo-cleanup", root, "removed an incomplete demo left by an interrupted run"))
    cfg = plan.phantom
    spec = spec or PhantomSpec(shape=tuple(cfg.shape), voxel_size_nm=cfg.voxel_size_nm, seed=cfg.seed) if cfg \
        else spec or PhantomSpec()
    root.mkdir(parents=True, exist_ok=True)
    (root / INCOMPLETE).write_text("a curate demo is being written here; a new `curate demo` clears it\n")
    try:
        if subprocess.run(["git", "var", "GIT_AUTHOR_IDENT"], capture_output=True).returncode != 0:
            # a fresh machine without a git identity: the throwaway demo archive commits as the demo
            for var, value in (("GIT_AUTHOR_NAME", "Curation Demo"), ("GIT_COMMITTER_NAME", "Curation Demo"),
                               ("GIT_AUTHOR_EMAIL", "demo@curation.invalid"),
                               ("GIT_COMMITTER_EMAIL", "demo@curation.invalid")):
                os.environ.setdefault(var, value)
            out.append(ok("demo-identity", None, "no git identity is configured; the demo commits as 'Curation "
                          "Demo <demo@curation.invalid>' (set yours with git config --global user.name/.email)"))
        phantom = write_phantom(root / "acquisition", spec)
        out.append(ok("demo-phantom", phantom.images_dir,
                      f"generated a {spec.shape} phantom at {spec.voxel_size_nm:g} nm: {phantom.n_pores} nuclear "
                      f"pores on {phantom.envelope_area_um2:.2f} um2 of envelope", n_pores=phantom.n_pores))
        out += check_metadata(phantom.metadata_path)
        archive = root / "archive"
        out += init_archive(archive, title="Demo archive: phantom FIB-SEM of a mouse neuron")
        ctx = RunContext(archive=archive, acquisition=plan.acquisition, workdir=root,
                         base=Path(pipeline).resolve().parent if pipeline else root, phantom=phantom,
                         progress=progress)
        out += run_pipeline(plan, ctx)
        if any(r.failed for r in out):
            raise _Failed(out)
        from ..web.preview import demo_report

        out += demo_report(root, archive)
    except _Failed:
        remove_tree(root)
        return out
    except BaseException:
        remove_tree(root)
        raise
    (root / INCOMPLETE).unlink()
    out.append(ok("demo", root, f"demo complete: archive in {archive}, deposits in {root}", archive=str(archive),
                  pipeline=plan.pipeline))
    return out


class _Failed(Exception):
    def __init__(self, records: list[Result]) -> None:
        self.records = records
