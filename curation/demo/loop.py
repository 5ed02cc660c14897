"""The whole curation loop on a generated phantom, as `curate demo` runs it.

1. generate an 8 nm FIB-SEM-like phantom as a folder of TIFF slices with its metadata;
2. check the metadata; create an archive; ingest the phantom as OME-Zarr;
3. import the nuclear-envelope ground truth of a few slices as ``envelope@v1``, then two
   more slices as ``envelope@v2`` (lineage: v2's parent is v1), and diff the versions;
4. verify the archive (checksums, NGFF, git-annex);
5. package the acquisition for EMPIAR and as an RO-Crate.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import AlreadyExistsError
from ..records import Result, ok
from .phantom import Phantom, PhantomSpec, write_phantom

NAME = "phantom"
LAYER = "envelope"
#: slices annotated first, then the two "tiny slices" added in version 2
FIRST_SLICES = (8, 24, 40)
EXTRA_SLICES = (16, 32)


def _gt_subset(phantom: Phantom, slices: tuple[int, ...], dest: Path) -> Path:
    """A folder holding the ground-truth masks of ``slices`` (indices from file names)."""
    dest.mkdir(parents=True)
    src = phantom.ground_truth_dir / LAYER
    files = sorted(src.glob("*.tif"))
    for z in slices:
        shutil.copy2(files[z], dest / files[z].name)
    return dest


def run_demo(directory: Path | str, spec: PhantomSpec | None = None, *,
             progress: Callable | None = None) -> list[Result]:
    from ..archive import package
    from ..labels.diff import diff_labels
    from ..labels.importer import import_labels
    from ..metadata import check_metadata
    from ..repository.archive import init_archive
    from ..repository.ingest import IngestOptions, ingest
    from ..repository.verify import verify

    root = Path(directory).resolve()
    if root.exists() and any(root.iterdir()):
        raise AlreadyExistsError("the demo folder is not empty", path=root,
                                 expected="a new or empty folder", hint="remove it or choose another folder")
    spec = spec or PhantomSpec(shape=(48, 256, 256))
    max_z = max(FIRST_SLICES + EXTRA_SLICES)
    if spec.shape[0] <= max_z:
        spec = PhantomSpec(**{**spec.__dict__, "shape": (max_z + 8, *spec.shape[1:])})
    out: list[Result] = []

    phantom = write_phantom(root / "acquisition", spec)
    out.append(ok("demo-phantom", phantom.images_dir,
                  f"generated a {spec.shape} phantom at {spec.voxel_size_nm:g} nm: {phantom.n_pores} nuclear pores "
                  f"on {phantom.envelope_area_um2:.2f} um2 of envelope", n_pores=phantom.n_pores))
    out += check_metadata(phantom.metadata_path)

    archive = root / "archive"
    out += init_archive(archive, title="Demo archive: phantom FIB-SEM of a mouse neuron")
    out += ingest(archive, [phantom.images_dir], phantom.metadata_path, name=NAME,
                  options=IngestOptions(progress=progress))

    first = _gt_subset(phantom, FIRST_SLICES, root / "gt-v1")
    out += import_labels(archive, NAME, LAYER, first, kind="ground-truth", names={1: "nuclear envelope"},
                         note=f"nuclear envelope traced on slices {list(FIRST_SLICES)}")
    second = _gt_subset(phantom, FIRST_SLICES + EXTRA_SLICES, root / "gt-v2")
    out += import_labels(archive, NAME, LAYER, second, kind="ground-truth", names={1: "nuclear envelope"},
                         note=f"two more slices: {list(EXTRA_SLICES)}")
    out += diff_labels(archive, NAME, f"{LAYER}@v1", f"{LAYER}@v2")

    out += verify(archive, NAME)
    out += package(archive, NAME, "empiar", root / "deposit-empiar")
    out += package(archive, NAME, "ro-crate", root / "deposit-ro-crate")
    out.append(ok("demo", root, f"demo complete: archive in {archive}, deposits in {root}", archive=str(archive)))
    return out
