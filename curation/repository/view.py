"""The read model: one typed view of an acquisition, for every command that reads one.

``archive.acquisition(name)`` (an :class:`AcquisitionView`) gives the image and its
current geometry, the validated metadata, the ingest record, every label version with
its lineage and run record, every run, the commits, and whether the acquisition's files
are what git recorded. ``show``, label import, packaging, verify and the viewer all read
through it, so a record is parsed (and migrated from an older schema) in one place.

Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import DirtyError, MetadataError, NotFoundError, RecordError
from ..provenance import IngestRecord, LabelLineage, LabelVersionRecord, RunRecord, parse_record, read_json, read_record
from ..provenance.ingest import LevelRecord, PlanRecord
from . import datalad_ops as dlo

LABELS = "labels"
LABEL_PROVENANCE = "provenance/labels"
RUNS = "provenance/runs"
INGEST_RECORD = "provenance/ingest.json"
CHECKSUMS = "provenance/checksums.tsv"


@dataclass(frozen=True)
class Geometry:
    """The image as stored now: shape, dtype, chunks and shards, and per level its path,
    shape and (current) scale and translation in nanometres."""

    plan: PlanRecord

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.plan.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> str:
        return self.plan.dtype

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        return self.plan.voxel_size_nm

    @property
    def chunk(self) -> tuple[int, int, int]:
        return tuple(self.plan.chunk)  # type: ignore[return-value]

    @property
    def shard(self) -> tuple[int, int, int]:
        return tuple(self.plan.shard)  # type: ignore[return-value]

    @property
    def levels(self) -> list[LevelRecord]:
        return list(self.plan.levels)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "voxel_size_nm": list(self.voxel_size_nm),
                "chunk": list(self.chunk), "shard": list(self.shard), "levels": len(self.levels)}


@dataclass(frozen=True)
class LabelVersion:
    """One stored label version: its group, attributes and lineage."""

    acquisition: str
    group: str  # folder under labels/, e.g. mito_v1
    path: Path  # the label group folder
    lineage: LabelLineage
    attrs: dict[str, Any] = field(repr=False, compare=False)  # the group's attributes as stored
    acq_path: Path = field(repr=False, compare=False)

    @property
    def layer(self) -> str:
        return self.lineage.layer

    @property
    def version(self) -> int:
        return self.lineage.version

    @property
    def address(self) -> str:
        return self.lineage.address

    @property
    def kind(self) -> str:
        return self.lineage.kind

    @property
    def parents(self) -> list[str]:
        return list(self.lineage.parents)

    @property
    def unlabeled_value(self) -> int:
        return self.lineage.unlabeled_value

    @property
    def image_label(self) -> dict[str, Any]:
        return dict(self.attrs.get("ome", {}).get("image-label", {}))

    @property
    def names(self) -> dict[int, str]:
        """Label value -> name, from the image-label properties (background and unlabeled included)."""
        out = {}
        for p in self.image_label.get("properties", []):
            if isinstance(p, dict) and isinstance(p.get("label-value"), int):
                out[int(p["label-value"])] = str(p.get("name", ""))
        return out

    @property
    def record_path(self) -> Path:
        return self.acq_path / LABEL_PROVENANCE / f"{self.group}.json"

    @property
    def checksums_path(self) -> Path:
        return self.acq_path / LABEL_PROVENANCE / f"{self.group}.checksums.tsv"

    @property
    def rel(self) -> str:
        """The group's path relative to the acquisition root."""
        return f"{self.path.parent.parent.name}/{LABELS}/{self.group}"

    def record(self) -> LabelVersionRecord:
        return read_record(self.record_path, LabelVersionRecord)

    def level_path(self, level: int = 0) -> str:
        return str(self.attrs["ome"]["multiscales"][0]["datasets"][level]["path"])

    def array(self, level: int = 0):
        """The level's zarr array (read-only)."""
        import zarr

        return zarr.open_array(str(self.path / self.level_path(level)), mode="r")


class AcquisitionView:
    """What is stored for one acquisition (see the module docstring)."""

    def __init__(self, archive, name: str) -> None:
        self.archive = archive
        self.name = name
        self.path = archive.require_acquisition(name)
        self.image_path = archive.image_path(name)

    def __repr__(self) -> str:
        return f"AcquisitionView({self.name!r})"

    # --- records --------------------------------------------------------------------------------

    @cached_property
    def ingest(self) -> IngestRecord:
        return read_record(self.path / INGEST_RECORD, IngestRecord)

    @cached_property
    def image_attrs(self) -> dict[str, Any]:
        doc = read_json(self.image_path / "zarr.json")
        return dict(doc.get("attributes", {})) if isinstance(doc, dict) else {}

    @cached_property
    def geometry(self) -> Geometry:
        """The ingest plan with each level's scale and translation as the image now states
        them (a metadata update may have corrected the voxel size)."""
        plan = self.ingest.image.plan
        try:
            datasets = self.image_attrs["ome"]["multiscales"][0]["datasets"]
            levels = []
            for lv, ds in zip(plan.levels, datasets):
                scale, trans = lv.scale_nm, lv.translation_nm
                for t in ds.get("coordinateTransformations", []):
                    if t.get("type") == "scale":
                        scale = tuple(float(v) for v in t["scale"])
                    elif t.get("type") == "translation":
                        trans = tuple(float(v) for v in t["translation"])
                levels.append(lv.model_copy(update={"scale_nm": scale, "translation_nm": trans}))
            plan = plan.model_copy(update={"levels": levels})
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # not NGFF as written: `verify` says so; the plan as recorded stands
        return Geometry(plan)

    @cached_property
    def document(self) -> dict[str, Any]:
        """``metadata.json`` as stored (a dict, for exports that keep every field)."""
        doc = read_json(self.path / "metadata.json")
        if not isinstance(doc, dict):
            raise RecordError("the acquisition metadata is not a JSON object", path=self.path / "metadata.json")
        return doc

    @cached_property
    def metadata(self):
        """The metadata as a validated :class:`~curation.metadata.AcquisitionMetadata`."""
        from ..metadata import parse_metadata

        return parse_metadata(self.document, path=self.path / "metadata.json")

    # --- label versions ----------------------------------------------------------------------------

    @property
    def labels_dir(self) -> Path:
        return self.image_path / LABELS

    def label_listing(self) -> list[str]:
        """The entries of ``labels/zarr.json`` (``ome.labels``), in order."""
        p = self.labels_dir / "zarr.json"
        if not p.exists():
            return []
        doc = read_json(p)
        try:
            return [str(e) for e in doc["attributes"]["ome"]["labels"]]
        except (KeyError, TypeError):
            return []

    @cached_property
    def labels(self) -> list[LabelVersion]:
        """Every label version curation wrote, by layer and version. Label groups written
        by other tools (no ``curation`` lineage) are left out; unsafe names are refused."""
        from .names import check_name

        out = []
        for entry in self.label_listing():
            check_name(entry, what="label group name", field=f"{self.image_path.name}/labels")
            gpath = self.labels_dir / entry
            try:
                attrs = read_json(gpath / "zarr.json").get("attributes", {})
            except RecordError:
                continue
            cur = attrs.get("curation")
            if not isinstance(cur, dict):
                continue
            lineage = parse_record(cur, LabelLineage, path=gpath / "zarr.json", acquisition=self.name)
            out.append(LabelVersion(self.name, entry, gpath, lineage, attrs, self.path))
        return sorted(out, key=lambda v: (v.layer, v.version))

    def layer(self, layer: str) -> list[LabelVersion]:
        return [v for v in self.labels if v.layer == layer]

    def label(self, address: str, field: str = "LAYER") -> LabelVersion:
        """The version ``address`` names (``LAYER`` alone: the latest); NotFoundError lists
        what exists."""
        from ..labels.layers import parse_address

        layer, version = parse_address(address, field)
        found = self.layer(layer)
        if not found:
            raise NotFoundError(f"no label layer {layer!r} in acquisition {self.name!r}", field=field,
                                expected=self.known_labels(), found=address)
        if version is None:
            return found[-1]
        for v in found:
            if v.version == version:
                return v
        raise NotFoundError(f"layer {layer!r} has no version {version}", field=field,
                            expected=self.known_labels(), found=address)

    def known_labels(self) -> str:
        by: dict[str, list[int]] = {}
        for v in self.labels:
            by.setdefault(v.layer, []).append(v.version)
        if not by:
            return "no label layers yet"
        return "; ".join(f"{layer}@v{', v'.join(map(str, vs))}" for layer, vs in sorted(by.items()))

    # --- runs --------------------------------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        """Every run record: the ingest, each label version's, and ``provenance/runs/``."""
        out: list[RunRecord] = [self.ingest]
        for lv in self.labels:
            if lv.record_path.exists():
                out.append(lv.record())
        folder = self.path / RUNS
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            out.append(read_record(p, RunRecord))
        return sorted(out, key=lambda r: (r.started, r.id))

    # --- the image's sources ---------------------------------------------------------------------------

    def source_names(self) -> list[str] | None:
        """The source file of each z slice, when the image was read one file per slice."""
        src = self.ingest.sources
        if len(src) == self.geometry.shape[0] and len(src) > 1:
            return [s.name for s in src]
        return None

    # --- history and state ----------------------------------------------------------------------------

    @property
    def commit(self) -> str | None:
        """The acquisition dataset's HEAD."""
        return dlo.head(self.path)

    @property
    def archive_commit(self) -> str | None:
        return dlo.head(self.archive.root)

    def dirty(self) -> list[str]:
        """Changed or untracked files of the acquisition (``git status`` lines), and the
        archive's record of it when that lags behind."""
        out = [line for line in dlo.git(self.path, "status", "--porcelain", "--untracked-files=all",
                                        check=False).splitlines() if line.strip()]
        rel = self.archive.relative(self.path)
        sup = dlo.git(self.archive.root, "status", "--porcelain", "--ignore-submodules=dirty", "--", rel,
                      check=False).strip()
        if sup and not out:
            out.append(f" M {rel} (the archive records another commit of it)")
        return out

    def require_clean(self, purpose: str) -> None:
        """Refuse to read an acquisition whose files differ from what is committed."""
        changes = self.dirty()
        if changes:
            first = changes[0][3:] if len(changes[0]) > 3 else changes[0]
            raise DirtyError(f"cannot {purpose}: the acquisition has uncommitted changes",
                             path=self.archive.relative(self.path), found=f"{len(changes)} changed file(s), e.g. {first}",
                             hint=f"commit them with `curate metadata update` (metadata) or undo them with "
                                  f"`git -C {self.path} checkout -- . && git -C {self.path} clean -fd`")

    # --- summary ------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What `curate show` prints; stable keys for --json."""
        rec = self.ingest
        geo = self.geometry
        try:
            md = self.metadata
            about = {"technique": md.acquisition.technique.value, "title": md.study.title,
                     "organism": md.biosample.organism.scientific_name, "metadata_problem": None}
        except (MetadataError, RecordError) as exc:
            about = {"technique": None, "title": None, "organism": None, "metadata_problem": exc.one_line()}
        return {
            "name": self.name,
            "path": self.archive.relative(self.path),
            "image": self.archive.relative(self.image_path),
            **geo.to_dict(),
            **about,
            "reader": rec.reader,
            "n_sources": len(rec.sources),
            "sources": [s.name for s in rec.sources[:5]],
            "tree_sha256": rec.image.tree_sha256,
            "n_files": rec.image.n_files,
            "stored_bytes": rec.image.bytes,
            "ingested": rec.finished,
            "labels": [{"name": v.layer, "version": v.version, "address": v.address, "kind": v.kind,
                        "path": self.archive.relative(v.path)} for v in self.labels],
            "dataset_commit": self.commit,
            "archive_commit": self.archive_commit,
        }


def open_acquisition(archive_path, name: str) -> AcquisitionView:
    from .archive import open_archive

    return open_archive(archive_path).acquisition(name)


__all__ = ["AcquisitionView", "Geometry", "LabelVersion", "open_acquisition"]
