"""Verification of stored acquisitions: fixity, completeness, NGFF conformance.

For each acquisition, and each label version in it:

* every file recorded at write time (``provenance/checksums.tsv`` for the image,
  ``provenance/labels/*.checksums.tsv`` for label versions) is present, with its size
  and sha256; a torn shard (truncated or overwritten) or a missing one is named;
* no stray files: leftovers of a killed writer (``*.partial``) or unrecorded files;
* the tree checksum recomputed from disk equals the one recorded in the provenance;
* the image and label groups validate as OME-Zarr 0.5 (ome-zarr-models);
* ``git annex fsck`` agrees that the annexed content is present and well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VerificationError
from ..omezarr import checksum as cks
from ..omezarr.ngff import validate_image, validate_label
from ..records import Result, error, ok
from . import datalad_ops as dlo
from .archive import Archive, open_archive

LABEL_LISTING = "labels/zarr.json"  # grows with every label version; versioned by git


def checksum_sets(acq: Path, name: str) -> list[dict[str, Any]]:
    """What was recorded: one set for the image, one per label version."""
    sets = []
    prov = json.loads((acq / "provenance" / "ingest.json").read_text())
    sets.append({"what": "image", "tsv": acq / "provenance" / "checksums.tsv",
                 "tree": prov["image"]["tree_sha256"], "group": ""})
    for tsv in sorted((acq / "provenance" / "labels").glob("*.checksums.tsv")):
        rec_path = tsv.with_name(tsv.name.replace(".checksums.tsv", ".json"))
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        sets.append({"what": f"label {rec.get('address', tsv.stem)}", "tsv": tsv,
                     "tree": rec.get("tree_sha256"), "group": rec.get("group", "")})
    return sets


def verify_acquisition(archive: Archive, name: str, *, fast: bool = False, annex: bool = True) -> Result:
    acq = archive.require_acquisition(name)
    zroot = archive.image_path(name)
    problems: list[str] = []
    missing: list[str] = []
    corrupt: list[str] = []
    absent: list[str] = []
    unexpected: list[str] = []
    recorded: dict[str, cks.Entry] = {}
    trees: dict[str, str] = {}

    for cs in checksum_sets(acq, name):
        try:
            entries = cks.read_tsv(cs["tsv"])
        except (OSError, ValueError) as exc:
            problems.append(f"{cs['what']}: checksum list unreadable ({exc})")
            continue
        tree = cks.tree_checksum(entries)
        trees[cs["what"]] = tree
        if cs["tree"] and tree != cs["tree"]:
            problems.append(f"{cs['what']}: checksum list was altered (tree {tree[:12]} != recorded {cs['tree'][:12]})")
        for e in entries:
            recorded[e.path] = e

    on_disk = {e.path: e for e in cks.scan(zroot, hash_content=not fast)}
    for path, e in sorted(recorded.items()):
        d = on_disk.get(path)
        if d is None:
            missing.append(path)
        elif d.size == -1:
            absent.append(path)  # annexed, content not here (a clone without `datalad get`)
        elif d.size != e.size or (not fast and d.sha256 != e.sha256):
            corrupt.append(path)
    for path in sorted(set(on_disk) - set(recorded)):
        if path != LABEL_LISTING:
            unexpected.append(path)

    ngff = "ok"
    try:
        validate_image(zroot)
        for lab in _label_groups(zroot):
            validate_label(zroot, f"labels/{lab}")
    except VerificationError as exc:
        ngff = exc.message
        problems.append(f"NGFF: {exc.message}")

    fsck = None
    if annex and not absent:
        fsck = _annex_fsck(acq, fast=True)
        if fsck:
            problems.append(f"git annex fsck: {fsck}")

    if missing:
        problems.append(f"{len(missing)} missing file(s): {', '.join(missing[:5])}")
    if corrupt:
        problems.append(f"{len(corrupt)} torn or altered file(s): {', '.join(corrupt[:5])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected file(s): {', '.join(unexpected[:5])}")
    data = {"name": name, "checked_files": len(recorded), "missing": missing, "corrupt": corrupt,
            "unexpected": unexpected, "content_absent": absent, "tree_sha256": trees, "ngff": ngff,
            "annex_fsck": fsck or "ok", "mode": "sizes" if fast else "sha256"}
    rel = archive.relative(acq)
    if problems:
        return error("verify", rel, f"{name}: " + "; ".join(problems), **data)
    note = f", {len(absent)} annexed file(s) not present locally" if absent else ""
    return ok("verify", rel, f"{name}: {len(recorded)} files intact, NGFF 0.5 valid{note}", **data)


def _label_groups(zroot: Path) -> list[str]:
    p = zroot / LABEL_LISTING
    if not p.exists():
        return []
    return json.loads(p.read_text()).get("attributes", {}).get("ome", {}).get("labels", [])


def _annex_fsck(acq: Path, *, fast: bool) -> str | None:
    args = ["fsck", "--quiet"] + (["--fast"] if fast else [])
    try:
        dlo.annex(acq, *args)
    except Exception as exc:  # ToolError: report as a finding, not a crash
        return " ".join(str(exc).split())[:300]
    return None


def verify(path: Path | str, name: str | None = None, *, fast: bool = False, annex: bool = True) -> list[Result]:
    archive = open_archive(path)
    names = [name] if name else archive.acquisition_names()
    return [verify_acquisition(archive, n, fast=fast, annex=annex) for n in names]
