"""Verification of stored acquisitions: fixity, completeness, NGFF conformance, and that
every tracked file is what git recorded.

For each acquisition:

* every file recorded at write time (``provenance/checksums.tsv`` for the image,
  ``provenance/labels/*.checksums.tsv`` for label versions) is present, with its size
  and sha256; a torn shard (truncated or overwritten) or a missing one is named;
* annexed content not present here is an **error** when git-annex knows no copy
  anywhere (lost), and a **warning** naming where it is when another repository has it
  (``datalad get`` fetches it);
* no stray files: leftovers of a killed writer (``*.partial``) or unrecorded files;
* the tree checksum recomputed from the list equals the one its record states;
* every file git tracks in the acquisition (metadata, records, checksum lists, zarr.json)
  hashes to the blob git recorded, nothing is untracked, and the archive records the
  acquisition's current commit; a hand-edited ``metadata.json`` is an error;
* the image and label groups validate as OME-Zarr 0.5 (ome-zarr-models);
* ``git annex fsck`` agrees that the annexed content present is well;
* no interrupted write is pending (a journal) for the archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import CurationError, VerificationError
from ..omezarr import checksum as cks
from ..omezarr.ngff import validate_image, validate_label
from ..records import Result, error, ok
from . import datalad_ops as dlo
from .archive import Archive, open_archive
from .transaction import pending
from .view import CHECKSUMS, AcquisitionView

LABEL_LISTING = "labels/zarr.json"  # grows with every label version; versioned by git


@dataclass(frozen=True)
class ChecksumSet:
    what: str  # "image" or "label mito@v1"
    tsv: Path
    tree: str | None  # the tree checksum its record states


def checksum_sets(view: AcquisitionView) -> list[ChecksumSet]:
    """What was recorded: one set for the image, one per label version. A metadata update
    that rewrote scales states newer trees; the latest statement wins."""
    newer: dict[str, str] = {}
    for run in view.runs():
        if run.details is not None and run.details.kind == "metadata-update":
            newer.update(run.details.trees)
    sets = [ChecksumSet("image", view.path / CHECKSUMS, newer.get("image", view.ingest.image.tree_sha256))]
    for lv in view.labels:
        tree = None
        if lv.record_path.exists():
            tree = lv.record().storage.tree_sha256
        sets.append(ChecksumSet(f"label {lv.address}", lv.checksums_path, newer.get(f"labels/{lv.group}", tree)))
    return sets


def verify_acquisition(archive: Archive, name: str, *, fast: bool = False, annex: bool = True) -> Result:
    view = archive.acquisition(name)
    zroot = view.image_path
    problems: list[str] = []
    warnings: list[str] = []
    missing: list[str] = []
    corrupt: list[str] = []
    absent: list[str] = []
    unexpected: list[str] = []
    recorded: dict[str, cks.Entry] = {}
    trees: dict[str, str] = {}

    try:
        sets = checksum_sets(view)
    except CurationError as exc:
        sets = []
        problems.append(f"records: {exc.one_line()}")
    for cs in sets:
        try:
            entries = cks.read_tsv(cs.tsv)
        except (OSError, ValueError) as exc:
            problems.append(f"{cs.what}: checksum list unreadable ({exc})")
            continue
        tree = cks.tree_checksum(entries)
        trees[cs.what] = tree
        if cs.tree and tree != cs.tree:
            problems.append(f"{cs.what}: checksum list was altered (tree {tree[:12]} != recorded {cs.tree[:12]})")
        for e in entries:
            recorded[e.path] = e

    on_disk = {e.path: e for e in cks.scan(zroot, hash_content=not fast)}
    for path, e in sorted(recorded.items()):
        d = on_disk.get(path)
        if d is None:
            missing.append(path)
        elif d.size == -1:
            absent.append(path)  # annexed, content not here
        elif d.size != e.size or (not fast and d.sha256 != e.sha256):
            corrupt.append(path)
    for path in sorted(set(on_disk) - set(recorded)):
        if path != LABEL_LISTING:
            unexpected.append(path)

    lost, elsewhere = _where(view.path, [f"{zroot.name}/{p}" for p in absent]) if absent else ([], {})
    if lost:
        problems.append(f"{len(lost)} annexed file(s) have no copy anywhere: {', '.join(lost[:5])}")
    if elsewhere:
        remotes = sorted({r for rs in elsewhere.values() for r in rs})
        warnings.append(f"{len(elsewhere)} annexed file(s) are not here but in {', '.join(remotes)} "
                        f"(`datalad get {archive.relative(zroot)}` fetches them)")

    tracked = tracked_changes(view.path)
    if tracked:
        problems.append(f"{len(tracked)} tracked file(s) differ from what git recorded: {', '.join(tracked[:5])}"
                        f" (commit metadata with `curate metadata update`, or undo with git checkout)")
    state = view.dirty()
    if state:
        problems.append("uncommitted changes: " + "; ".join(s.strip() for s in state[:5]))

    ngff = "ok"
    try:
        validate_image(zroot)
        for lab in view.label_listing():
            validate_label(zroot, f"labels/{lab}")
    except VerificationError as exc:
        ngff = exc.message
        problems.append(f"NGFF: {exc.message}")

    fsck = None
    if annex:
        fsck = _annex_fsck(view.path, fast=True)
        if fsck:
            problems.append(f"git annex fsck: {fsck}")

    if missing:
        problems.append(f"{len(missing)} missing file(s): {', '.join(missing[:5])}")
    if corrupt:
        problems.append(f"{len(corrupt)} torn or altered file(s): {', '.join(corrupt[:5])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected file(s): {', '.join(unexpected[:5])}")
    data = {"name": name, "checked_files": len(recorded), "missing": missing, "corrupt": corrupt,
            "unexpected": unexpected, "content_absent": absent, "content_lost": lost,
            "content_elsewhere": {k: v for k, v in elsewhere.items()}, "tracked_changed": tracked,
            "uncommitted": state, "tree_sha256": trees, "ngff": ngff, "annex_fsck": fsck or "ok",
            "mode": "sizes" if fast else "sha256", "warnings": warnings}
    rel = archive.relative(view.path)
    if problems:
        return error("verify", rel, f"{name}: " + "; ".join(problems), **data)
    note = f"; warning: {'; '.join(warnings)}" if warnings else ""
    return ok("verify", rel, f"{name}: {len(recorded)} files intact, NGFF 0.5 valid{note}", **data)


def tracked_changes(repo: Path) -> list[str]:
    """Files git tracks in ``repo`` whose content (or link target) is not the recorded blob.

    Content is hashed, not compared by size and time as ``git status`` does, so an edit
    that keeps the size and the modification time is found too. Annexed files are links:
    their target is checked here, their content by the checksum lists and fsck."""
    out = dlo.git(repo, "ls-files", "-s", "-z")
    changed = []
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, blob, _stage = meta.split()
        p = Path(repo) / path
        if mode == "160000":  # a subdataset: its own verify
            continue
        try:
            if mode == "120000":
                data = os.readlink(p).encode()
            else:
                if p.is_symlink():
                    changed.append(path)
                    continue
                data = p.read_bytes()
        except FileNotFoundError:
            changed.append(path)
            continue
        except OSError:
            changed.append(path)
            continue
        digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if digest != blob:
            changed.append(path)
    return changed


def _where(repo: Path, paths: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Absent annexed files: those with no copy anywhere, and where the others are."""
    from ..tools import git_annex

    proc = subprocess.run([git_annex(), "whereis", "--json", "--", *paths], cwd=str(repo), capture_output=True,
                          text=True)
    lost: list[str] = []
    elsewhere: dict[str, list[str]] = {}
    seen = set()
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        f = rec.get("file")
        seen.add(f)
        here = [w for w in rec.get("whereis", []) if not w.get("here")]
        if here:
            elsewhere[f] = sorted({w.get("description") or w.get("uuid", "?") for w in here})
        else:
            lost.append(f)
    lost += [p for p in paths if p not in seen]  # not even known to git-annex
    return sorted(lost), elsewhere


def _annex_fsck(acq: Path, *, fast: bool) -> str | None:
    args = ["fsck", "--quiet"] + (["--fast"] if fast else [])
    try:
        dlo.annex(acq, *args)
    except Exception as exc:  # ToolError: report as a finding, not a crash
        text = " ".join(str(exc).split())
        if "not present" in text or "not available" in text:
            return None  # absent content is judged above, with where it is
        return text[:300]
    return None


def verify(path: Path | str, name: str | None = None, *, fast: bool = False, annex: bool = True) -> list[Result]:
    archive = open_archive(path)
    names = [name] if name else archive.acquisition_names()
    out = [verify_acquisition(archive, n, fast=fast, annex=annex) for n in names]
    for j in pending(archive):
        out.append(error("verify", archive.relative(archive.staging_root), f"an interrupted {j.action}"
                         + (f" of {j.acquisition}" if j.acquisition else "")
                         + f" is pending (step {j.completed + 1} of {len(j.steps)}): any command that writes to the "
                         "archive finishes it, e.g. the same command again", journal=j.id))
    return out
