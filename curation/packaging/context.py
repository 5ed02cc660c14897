"""What a package is made from: one acquisition of an archive (its read model,
:class:`~curation.repository.view.AcquisitionView`) and the label versions chosen.

:func:`load_source` opens the acquisition, refuses it when its files differ from what is
committed (a hand-edited ``metadata.json`` would otherwise be deposited while the
records name an older commit), and validates its metadata again.
:func:`select_labels` turns ``--labels`` selectors (``mito`` for the latest version of a
layer, ``mito@v2`` for one version) into label versions; unknown layers or versions are
refused with the list of what exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidNameError, MetadataError, NotFoundError, PackagingError
from ..omezarr import checksum as cks
from ..provenance import IngestRecord
from ..repository.archive import Archive, open_archive
from ..repository.names import check_name
from ..repository.view import AcquisitionView, LabelVersion
from .export_common import CopyStats, Problem, copy_tree, write_json

_SELECTOR = re.compile(r"^(?P<layer>[^@]+?)(?:@v?(?P<version>[0-9]+))?$")


@dataclass(frozen=True)
class PackageSource:
    """An acquisition as a package reads it, and the label versions chosen for it."""

    view: AcquisitionView
    labels: list[LabelVersion] = field(default_factory=list)
    #: the validated metadata (default: the stored document's)
    metadata: Any = None

    def __post_init__(self) -> None:
        if self.metadata is None:
            object.__setattr__(self, "metadata", self.view.metadata)

    @property
    def archive(self) -> Archive:
        return self.view.archive

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def acq(self) -> Path:
        return self.view.path

    @property
    def zroot(self) -> Path:
        return self.view.image_path

    @property
    def document(self) -> dict[str, Any]:
        return self.view.document

    @property
    def ingest(self) -> IngestRecord:
        return self.view.ingest

    @property
    def all_labels(self) -> list[LabelVersion]:
        return self.view.labels

    @property
    def commit(self) -> str | None:
        return self.view.commit

    @property
    def archive_commit(self) -> str | None:
        return self.view.archive_commit

    @property
    def voxel_size_nm(self) -> list[float]:
        return [float(v) for v in self.view.geometry.voxel_size_nm]

    @property
    def shape(self) -> list[int]:
        return list(self.view.geometry.shape)

    @property
    def dtype(self) -> str:
        return self.view.geometry.dtype


def load_source(archive_path: Path | str, name: str) -> PackageSource:
    archive = open_archive(archive_path)
    check_name(name, what="acquisition name", field="NAME")
    view = archive.acquisition(name)
    view.require_clean("package it")
    try:
        metadata = view.metadata
    except MetadataError as exc:
        raise PackagingError(f"the stored metadata is not valid: {exc.message}", path=view.path / "metadata.json",
                             hint="correct it with `curate metadata update` before packaging") from exc
    for lv in view.labels:
        if lv.path.parent != view.labels_dir:
            raise InvalidNameError("a label group lies outside the image's labels/ folder", field="labels",
                                   found=str(lv.path))
    return PackageSource(view=view, metadata=metadata)


def parse_selector(text: str) -> tuple[str, int | None]:
    """``mito`` -> ("mito", None); ``mito@v2`` -> ("mito", 2); refuses unsafe names."""
    m = _SELECTOR.match(str(text).strip())
    if not m:
        raise InvalidNameError("a label selector is LAYER or LAYER@vN", field="--labels",
                               expected="e.g. mito or mito@v2", found=text)
    layer = check_name(m.group("layer"), what="label layer name", field="--labels")
    return layer, int(m.group("version")) if m.group("version") else None


def select_labels(src: PackageSource, selectors: list[str] | None, *, default: str = "latest") -> PackageSource:
    """A copy of ``src`` with ``labels`` set.

    No selectors: ``default`` "latest" takes the newest version of every layer, "all"
    every version, "none" nothing.
    """
    from dataclasses import replace

    versions = src.all_labels
    if selectors is None:
        if default == "all":
            chosen = list(versions)
        elif default == "none":
            chosen = []
        else:
            chosen = [_latest(versions, layer) for layer in sorted({v.layer for v in versions})]
        return replace(src, labels=chosen)
    chosen = []
    for sel in selectors:
        layer, version = parse_selector(sel)
        candidates = [v for v in versions if v.layer == layer]
        if not candidates:
            known = ", ".join(sorted({v.layer for v in versions})) or "none"
            raise NotFoundError(f"no label layer named {layer!r} in {src.name}", field="--labels",
                                expected=f"one of: {known}", found=sel)
        if version is None:
            pick = _latest(versions, layer)
        else:
            match = [v for v in candidates if v.version == version]
            if not match:
                known = ", ".join(v.address for v in candidates)
                raise NotFoundError(f"label layer {layer!r} has no version {version}", field="--labels",
                                    expected=f"one of: {known}", found=sel)
            pick = match[0]
        if pick not in chosen:
            chosen.append(pick)
    return replace(src, labels=chosen)


def _latest(versions: list[LabelVersion], layer: str) -> LabelVersion:
    cands = [v for v in versions if v.layer == layer]
    return max(cands, key=lambda v: v.version)


# --- presence of the stored data --------------------------------------------------------------


def recorded_entries(src: PackageSource, labels: list[LabelVersion] | None = None) -> dict[str, tuple[int, str]]:
    """Recorded files of the image and of ``labels`` (default: all label versions).

    Keys are paths from the zarr root, values (size, sha256).
    """
    out: dict[str, tuple[int, str]] = {}
    chosen = src.all_labels if labels is None else labels
    tsvs = [src.acq / "provenance" / "checksums.tsv"] + [v.checksums_path for v in chosen]
    for tsv in tsvs:
        try:
            for e in cks.read_tsv(tsv):
                out[e.path] = (e.size, e.sha256)
        except (OSError, ValueError):
            continue
    return out


def missing_content(src: PackageSource, labels: list[LabelVersion] | None = None, limit: int = 5) -> list[Problem]:
    """Problems for recorded files that are absent or of the wrong size (cheap: stat only).

    A clone whose annexed content was not fetched fails here, before anything is written.
    """
    absent, wrong = [], []
    for rel, (size, _digest) in sorted(recorded_entries(src, labels).items()):
        p = src.zroot / rel
        try:
            got = p.stat().st_size
        except OSError:
            absent.append(rel)
            continue
        if got != size:
            wrong.append(f"{rel} ({got} bytes, recorded {size})")
    out = []
    if absent:
        out.append(Problem(f"{src.name}.ome.zarr", f"{len(absent)} stored file(s) not present here: "
                           + ", ".join(absent[:limit]) + " (run `datalad get` on the archive)"))
    if wrong:
        out.append(Problem(f"{src.name}.ome.zarr", f"{len(wrong)} stored file(s) differ from their record: "
                           + ", ".join(wrong[:limit]) + " (run `curate verify`)"))
    return out


# --- a plain copy of the acquisition ------------------------------------------------------------

#: top-level entries of an acquisition dataset that are DataLad's and git's, not the data's
_DATASET_FILES = {".git", ".datalad", ".gitattributes", ".gitmodules", ".gitignore"}


def copy_acquisition(src: PackageSource, dest: Path) -> CopyStats:
    """Copy the acquisition's files (content, not annex links) into ``dest``.

    Every image and label file is checked against its recorded sha256 on the way, and
    the raw copy against the ingest record. Label versions not in ``src.labels`` are left
    out, with their run records; the copy's ``labels/zarr.json`` then lists only those
    kept. Returns the digests of everything written (paths relative to ``dest``).
    """
    name = src.name
    zprefix = f"{name}.ome.zarr/"
    chosen = {lab.group for lab in src.labels}
    dropped = {lab.group for lab in src.all_labels} - chosen
    recorded = {zprefix + k: v for k, v in recorded_entries(src, src.labels).items()}
    raw_copy = str(src.ingest.raw_copy or "").rstrip("/")
    if raw_copy:
        for s in src.ingest.sources:
            recorded[f"{raw_copy}/{s.name}"] = (s.size, s.sha256)

    def skip(rel: str) -> bool:
        top = rel.split("/", 1)[0]
        if top in _DATASET_FILES:
            return True
        if rel.startswith(zprefix + "labels/"):
            group = rel[len(zprefix + "labels/"):].split("/", 1)[0]
            return group in dropped
        if rel.startswith("provenance/labels/"):
            fname = rel[len("provenance/labels/"):]
            for suffix in (".checksums.tsv", ".json"):
                if fname.endswith(suffix) and "/" not in fname:
                    return fname[: -len(suffix)] in dropped
        return False

    stats = copy_tree(src.acq, dest, inside=src.acq, skip=skip, recorded=recorded)
    listing = dest / zprefix / "labels" / "zarr.json"
    if dropped and listing.is_file():
        doc = json.loads(listing.read_text())
        ome = doc.setdefault("attributes", {}).setdefault("ome", {})
        ome["labels"] = [g for g in ome.get("labels", []) if g not in dropped]
        listing.unlink()
        digest = write_json(listing, doc)
        stats.digests[f"{zprefix}labels/zarr.json"] = digest
    return stats


def identifier_note(doi: str | None) -> str:
    if doi:
        return f"https://doi.org/{doi}"
    return "none yet: no DOI was given (register one with the DataCite metadata, then package again with --doi)"


def deposit_readme(src: PackageSource, *, format_title: str, contents: str, check: str,
                   provenance: str = "", doi: str | None = None) -> str:
    """The README of a RO-Crate, BagIt or DataCite package (archive_templates/deposit_README.md)."""
    from .. import __version__
    from ..repository.archive import now_iso
    from ..templates import render

    md = src.metadata
    vox = src.voxel_size_nm
    return render(
        "deposit_README.md",
        title=md.study.title, format_title=format_title, name=src.name, created=now_iso(), version=__version__,
        description=md.study.description, technique=md.acquisition.technique.value,
        organism=md.biosample.organism.scientific_name, shape=" x ".join(map(str, src.shape)),
        voxel=" x ".join(f"{v:g}" for v in vox), license=md.study.license, identifier=identifier_note(doi),
        labels=", ".join(f"`{lab.address}`" for lab in src.labels) or "none",
        contents=contents, check=check, provenance=provenance, dataset_commit=src.commit or "unknown",
        archive_commit=src.archive_commit or "unknown",
    )
