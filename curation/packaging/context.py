"""What a package is made from: one acquisition of an archive and the label versions chosen.

:func:`load_source` opens the archive, reads ``metadata.json`` (validated again with the
metadata models), ``provenance/ingest.json`` and every label version that
:func:`~curation.repository.archive.label_versions` lists, with its ``curation``
attributes and run record. :func:`select_labels` turns ``--labels`` selectors
(``mito`` for the latest version of a layer, ``mito@v2`` for one version) into label
versions; unknown layers or versions are refused with the list of what exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidNameError, MetadataError, NotFoundError, PackagingError
from ..omezarr import checksum as cks
from ..repository import datalad_ops as dlo
from ..repository.archive import Archive, label_versions, open_archive
from ..repository.names import check_name
from .export_common import CopyStats, Problem, copy_tree, read_json, write_json

_SELECTOR = re.compile(r"^(?P<layer>[^@]+?)(?:@v?(?P<version>[0-9]+))?$")


@dataclass(frozen=True)
class LabelVersion:
    """One stored version of a label layer."""

    layer: str
    version: int | None
    group: str  # folder name under NAME.ome.zarr/labels/
    path: Path  # absolute path of the label image group
    attrs: dict[str, Any]  # the ``curation`` attributes of the group
    record_path: Path | None  # provenance/labels/<group>.json
    record: dict[str, Any]
    checksums_path: Path | None

    @property
    def address(self) -> str:
        return self.attrs.get("address") or (f"{self.layer}@v{self.version}" if self.version is not None
                                              else self.layer)

    @property
    def kind(self) -> str | None:
        return self.attrs.get("kind") or self.record.get("kind")

    @property
    def parents(self) -> list[str]:
        p = self.attrs.get("parents", self.record.get("parents", []))
        return [str(x) for x in (p if isinstance(p, list) else [p]) if x]

    def rel(self, name: str) -> str:
        """Path relative to the acquisition root."""
        return f"{name}.ome.zarr/labels/{self.group}"


@dataclass(frozen=True)
class PackageSource:
    archive: Archive
    name: str
    acq: Path
    zroot: Path
    metadata: Any  # curation.metadata.AcquisitionMetadata
    document: dict[str, Any]
    prov: dict[str, Any]
    labels: list[LabelVersion] = field(default_factory=list)  # the chosen versions
    all_labels: list[LabelVersion] = field(default_factory=list)
    commit: str | None = None
    archive_commit: str | None = None

    @property
    def voxel_size_nm(self) -> list[float]:
        plan = self.prov.get("image", {}).get("plan", {})
        levels = plan.get("levels") or [{}]
        scale = levels[0].get("scale_nm")
        if scale:
            return [float(v) for v in scale]
        return [float(v) for v in self.prov.get("header", {}).get("voxel_size_nm", [])]

    @property
    def shape(self) -> list[int]:
        plan = self.prov.get("image", {}).get("plan", {})
        return [int(v) for v in plan.get("shape") or self.prov.get("header", {}).get("shape", [])]

    @property
    def dtype(self) -> str:
        return str(self.prov.get("image", {}).get("plan", {}).get("dtype") or self.prov.get("header", {}).get("dtype"))


def load_source(archive_path: Path | str, name: str) -> PackageSource:
    from ..metadata import parse_metadata

    archive = open_archive(archive_path)
    check_name(name, what="acquisition name", field="NAME")
    acq = archive.require_acquisition(name)
    md_path = acq / "metadata.json"
    try:
        document = json.loads(md_path.read_text())
    except (OSError, ValueError) as exc:
        raise PackagingError("the acquisition metadata cannot be read", path=md_path,
                             found=type(exc).__name__) from exc
    try:
        md = parse_metadata(document, path=md_path)
    except MetadataError as exc:
        raise PackagingError(f"the stored metadata is not valid: {exc.message}", path=md_path,
                             hint="fix it with a new metadata commit before packaging") from exc
    prov_path = acq / "provenance" / "ingest.json"
    prov = read_json(prov_path)
    if not prov:
        raise PackagingError("the ingest record is missing or unreadable", path=prov_path,
                             expected="provenance/ingest.json", found="nothing")
    labels = _label_versions(archive, name, acq)
    return PackageSource(archive=archive, name=name, acq=acq, zroot=archive.image_path(name), metadata=md,
                         document=document, prov=prov, labels=[], all_labels=labels, commit=dlo.head(acq),
                         archive_commit=dlo.head(archive.root))


def _label_versions(archive: Archive, name: str, acq: Path) -> list[LabelVersion]:
    out = []
    for entry in label_versions(archive, name):
        path = (archive.root / entry["path"]).resolve()
        group = path.name
        check_name(group, what="label group name", field=f"{name}.ome.zarr/labels")
        if path.parent != archive.image_path(name).resolve() / "labels":
            raise InvalidNameError("a label group lies outside the image's labels/ folder",
                                   field="labels", found=entry["path"])
        attrs = read_json(path / "zarr.json").get("attributes", {}).get("curation", {})
        layer = str(attrs.get("layer") or entry.get("name") or group)
        check_name(layer, what="label layer name", field=f"labels/{group}")
        version = attrs.get("version", entry.get("version"))
        try:
            version = int(version) if version is not None else None
        except (TypeError, ValueError):
            version = None
        rec_path = acq / "provenance" / "labels" / f"{group}.json"
        tsv = acq / "provenance" / "labels" / f"{group}.checksums.tsv"
        out.append(LabelVersion(layer=layer, version=version, group=group, path=path, attrs=attrs,
                                record_path=rec_path if rec_path.is_file() else None,
                                record=read_json(rec_path), checksums_path=tsv if tsv.is_file() else None))
    return out


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
    chosen: list[LabelVersion] = []
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
    return max(cands, key=lambda v: (v.version if v.version is not None else -1, v.group))


# --- presence of the stored data --------------------------------------------------------------


def recorded_entries(src: PackageSource, labels: list[LabelVersion] | None = None) -> dict[str, tuple[int, str]]:
    """Recorded files of the image and of ``labels`` (default: all label versions).

    Keys are paths from the zarr root, values (size, sha256).
    """
    out: dict[str, tuple[int, str]] = {}
    chosen = src.all_labels if labels is None else labels
    tsvs = [src.acq / "provenance" / "checksums.tsv"] + [v.checksums_path for v in chosen if v.checksums_path]
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
    raw_copy = str(src.prov.get("raw_copy") or "").rstrip("/")
    if raw_copy:
        for s in src.prov.get("sources", []):
            if s.get("name") and s.get("sha256"):
                recorded[f"{raw_copy}/{s['name']}"] = (s.get("size"), s["sha256"])

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
        contents=contents, check=check, provenance=provenance, commit=src.commit or "unknown",
        archive_commit=src.archive_commit or "unknown",
    )
