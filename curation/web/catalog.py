"""The one adapter between the web catalog, the previews and the archive.

Everything under :mod:`curation.web` reads and writes the archive **only** through
:class:`Catalog`: listing acquisitions, their metadata, history, image geometry and
pyramid levels, label versions with lineage and colours, run records, model cards and
analyses, the files of the OME-Zarr served to neuroglancer, and storing a painted
label version. The rest of the package (routes, tiles, previews, painting) works on the
small frozen view records defined here, never on paths or on archive internals.

It reads through the archive's read model (:class:`~curation.repository.view.AcquisitionView`:
typed records, geometry, label versions with their lineage, run records) and writes a
painted version through the single write transaction (:func:`curation.labels.store.label_transaction`).

Addresses coming from URLs are validated here (``check_name``, ``parse_address``, the
zarr key grammar of :meth:`Catalog.zarr_file`): a path is always *built* from names the
archive lists, never joined from request text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CurationError, InvalidNameError, NotFoundError
from ..repository.names import check_name

#: keys of the OME-Zarr a client may fetch: [labels/[GROUP/]][LEVEL/](zarr.json | c/I/J/K)
_ZARR_KEY = re.compile(r"^(?:(?P<labels>labels)(?:/(?P<group>[^/]+))?/)?(?:(?P<level>[0-9]+)/)?"
                       r"(?P<tail>zarr\.json|c(?:/[0-9]+){1,8})$")


# --- view records ------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path, shape (z, y, x) and voxel size in nm."""

    index: int
    path: str
    shape: tuple[int, int, int]
    scale_nm: tuple[float, float, float]
    chunk: tuple[int, int, int]


@dataclass(frozen=True)
class Geometry:
    """What the viewer needs of an image: levels, dtype and an id that changes with the data."""

    shape: tuple[int, int, int]
    dtype: str
    voxel_size_nm: tuple[float, float, float]
    levels: tuple[Level, ...]
    data_id: str  # tree sha256 of the stored image (immutable once ingested)


@dataclass(frozen=True)
class Summary:
    """One row of the catalog."""

    name: str
    title: str
    description: str
    organism: str
    technique: str
    keywords: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    voxel_size_nm: tuple[float, ...]
    ingested: str
    n_label_versions: int

    def search_text(self) -> str:
        return " ".join([self.name, self.title, self.description, self.organism, self.technique,
                         *self.keywords]).lower()


@dataclass(frozen=True)
class Version:
    """One immutable label version, with what the viewer and the lineage graph show."""

    acquisition: str
    address: str
    layer: str
    version: int
    kind: str
    parents: tuple[str, ...]
    creator: str
    created: str
    note: str
    dtype: str
    unlabeled: int
    annotated: Mapping[str, Any]
    colors: Mapping[int, tuple[int, int, int, int]]  # label value -> RGBA
    names: Mapping[int, str]
    label_values: tuple[int, ...]
    data_id: str  # tree sha256 of the version (immutable)
    group: str  # folder under labels/, e.g. envelope_v1
    levels: tuple[str, ...]  # array paths, level 0 first
    extra: Mapping[str, Any] = field(default_factory=dict)  # other lineage keys (annotators, painted ...)


@dataclass(frozen=True)
class Commit:
    commit: str
    date: str
    author: str
    subject: str
    tags: tuple[str, ...]
    where: str  # "dataset" (the acquisition's) or "archive"


@dataclass(frozen=True)
class Run:
    """A computing operation that made something in the acquisition (ingest, label import ...)."""

    action: str
    output: str
    started: str
    finished: str
    tool: str
    record: str  # path of the record, relative to the acquisition
    inputs: int


@dataclass(frozen=True)
class Section:
    """A model card or an analysis: a title, key/value facts and optional images."""

    title: str
    facts: tuple[tuple[str, str], ...] = ()
    images: tuple[str, ...] = ()
    link: str = ""


# --- the adapter ---------------------------------------------------------------------------


class Catalog:
    """Read (and, for painting, write) access to one archive for the web and previews."""

    def __init__(self, archive_path: Path | str) -> None:
        from ..repository.archive import open_archive

        self.archive = open_archive(archive_path)
        self._arrays: dict[tuple[str, str, int], Any] = {}
        self._readers: dict[tuple[str, str, int], Any] = {}
        self._versions: dict[tuple[str, str], Version] = {}
        self._geometry: dict[str, Geometry] = {}
        self._lock = threading.Lock()

    @property
    def title(self) -> str:
        return self.archive.title

    @property
    def root(self) -> Path:
        return self.archive.root

    # --- acquisitions ----------------------------------------------------------------

    def names(self) -> list[str]:
        return self.archive.acquisition_names()

    def require(self, name: str) -> str:
        """``name`` if it is an acquisition of this archive, else NotFoundError/InvalidNameError."""
        check_name(name, field="NAME")
        self.archive.require_acquisition(name)
        return name

    def view(self, name: str):
        """The read model of acquisition ``name``."""
        return self.archive.acquisition(self.require(name))

    def summary(self, name: str) -> Summary:
        view = self.view(name)
        geo = view.geometry
        try:
            md = view.metadata
            study = md.study
            title, description, keywords = study.title, study.description, tuple(study.keywords)
            organism, technique = md.biosample.organism.scientific_name, md.acquisition.technique.value
        except CurationError:  # an invalid stored document: `verify` says so; the catalog still lists it
            title, description, keywords, organism, technique = name, "", (), "", ""
        return Summary(
            name=name, title=title or name, description=description or "", organism=organism or "",
            technique=technique or "", keywords=keywords, shape=geo.shape, dtype=geo.dtype,
            voxel_size_nm=geo.voxel_size_nm, ingested=view.ingest.finished, n_label_versions=len(view.labels),
        )

    def summaries(self, query: str = "") -> list[Summary]:
        """Every acquisition whose title, name, organism, technique, keywords or description
        hold all words of ``query`` (case-insensitive)."""
        words = query.lower().split()
        out = []
        for name in self.names():
            s = self.summary(name)
            text = s.search_text()
            if all(w in text for w in words):
                out.append(s)
        return out

    def metadata(self, name: str) -> dict[str, Any]:
        """The acquisition metadata document as stored (``metadata.json``)."""
        return dict(self.view(name).document)

    def history(self, name: str, limit: int = 50) -> list[Commit]:
        """The acquisition dataset's commits, newest first, with their tags."""
        from ..repository import datalad_ops as dlo

        acq = self.archive.acquisition_path(self.require(name))
        tags = dlo.tags_at(acq)
        return [Commit(c["commit"], c["date"], c["author"], c["subject"], tuple(tags.get(c["commit"], [])), "dataset")
                for c in dlo.log(acq, limit=limit)]

    # --- the image -------------------------------------------------------------------

    def geometry(self, name: str) -> Geometry:
        """Levels of the image read from its OME-Zarr (multiscales + array metadata)."""
        with self._lock:
            geo = self._geometry.get(name)
        if geo is not None:
            return geo
        view = self.view(name)
        g = view.geometry
        levels = tuple(Level(i, lv.path, tuple(lv.shape), tuple(lv.scale_nm), g.plan.chunk_of(i))
                       for i, lv in enumerate(g.levels))
        geo = Geometry(g.shape, g.dtype, g.voxel_size_nm, levels, view.ingest.image.tree_sha256)
        with self._lock:
            self._geometry[name] = geo
        return geo

    def image_array(self, name: str, level: int):
        """The read-only zarr array of pyramid ``level`` (opened once, kept)."""
        geo = self.geometry(name)
        if not 0 <= level < len(geo.levels):
            raise NotFoundError("no such pyramid level", field="level", expected=f"0..{len(geo.levels) - 1}",
                                found=level)
        return self._open(("image", name, level), self.archive.image_path(name) / geo.levels[level].path)

    def image_reader(self, name: str, level: int):
        """What tiles read ``level`` with: the direct shard reader when the array has the
        layout curation writes (see :mod:`.shards`), else the zarr array."""
        arr = self.image_array(name, level)
        return self._fast(("image", name, level), self.archive.image_path(name) / self.geometry(name).levels[level].path,
                          arr)

    # --- label versions ----------------------------------------------------------------

    def versions(self, name: str) -> list[Version]:
        """Every label version of ``name``, by layer and version."""
        return [self._version(name, lv) for lv in self.view(name).labels]

    def version(self, name: str, address: str) -> Version:
        """The version ``address`` names; a bare layer name means its latest version."""
        from ..labels import layers as L

        self.require(name)
        layer, number = L.parse_address(address, field="version")
        if number is not None:
            with self._lock:
                hit = self._versions.get((name, L.address_of(layer, number)))
            if hit is not None:
                return hit
        return self._version(name, self.view(name).label(address, field="version"))

    def label_array(self, name: str, address: str, level: int):
        v = self.version(name, address)
        if not 0 <= level < len(v.levels):
            raise NotFoundError("no such pyramid level", field="level", expected=f"0..{len(v.levels) - 1}",
                                found=level)
        path = self.archive.image_path(name) / "labels" / v.group / v.levels[level]
        return self._open(("label", f"{name}/{v.address}", level), path)

    def label_reader(self, name: str, address: str, level: int):
        arr = self.label_array(name, address, level)
        v = self.version(name, address)
        return self._fast(("label", f"{name}/{v.address}", level),
                          self.archive.image_path(name) / "labels" / v.group / v.levels[level], arr)

    def stored_label_shards(self, name: str, address: str) -> set[tuple[int, ...]]:
        """Indices of the level-0 shards a version stores (others hold only the unlabeled value)."""
        v = self.version(name, address)
        base = self.archive.image_path(name) / "labels" / v.group / v.levels[0] / "c"
        if not base.is_dir():
            return set()
        # an annexed shard whose content is not here is still stored (a dangling link)
        return {tuple(int(p) for p in f.relative_to(base).parts) for f in base.rglob("*")
                if f.is_symlink() or f.is_file()}

    def _version(self, name: str, lv: Any) -> Version:
        key = (name, lv.address)
        with self._lock:
            hit = self._versions.get(key)
        if hit is not None:
            return hit
        from ..provenance import record_json

        cur = lv.lineage
        il = lv.image_label
        colors = {int(c["label-value"]): tuple(int(x) for x in c["rgba"]) for c in il.get("colors", [])
                  if "label-value" in c and "rgba" in c}
        data_id = lv.record().storage.tree_sha256 if lv.record_path.exists() else f"{lv.group}-{cur.created}"
        datasets = lv.attrs["ome"]["multiscales"][0]["datasets"]
        extra = {k: v for k, v in record_json(cur).items() if k in ("consensus", "painted", "run")}
        v = Version(
            acquisition=name, address=lv.address, layer=lv.layer, version=lv.version, kind=cur.kind,
            parents=tuple(cur.parents), creator=cur.creator, created=cur.created, note=cur.note, dtype=cur.dtype,
            unlabeled=cur.unlabeled_value, annotated=cur.annotated.model_dump(mode="json"), colors=colors,
            names=lv.names, label_values=tuple(cur.label_values), data_id=data_id, group=lv.group,
            levels=tuple(d["path"] for d in datasets), extra=extra,
        )
        with self._lock:
            self._versions[key] = v
        return v

    # --- runs, models, analyses ----------------------------------------------------------

    def runs(self, name: str) -> list[Run]:
        """Run records of the acquisition (ingest, label versions, later runs), oldest first."""
        out = []
        for r in self.view(name).runs():
            output = next((o.address or o.path for o in r.outputs), r.id)
            out.append(Run(r.action, output, r.started, r.finished, f"{r.tool.name} {r.tool.version}",
                           f"provenance/{r.id}.json", len(r.inputs)))
        return out

    def models(self, name: str) -> list[Section]:
        """Model cards of the models trained on this acquisition or whose predictions it
        holds (from the archive's models dataset: the card in each package's rdf.yaml)."""
        from ..provenance.segmentation import SegmentDetails
        from ..segmentation import models as M

        view = self.view(name)
        predictions: dict[str, list[str]] = {}
        for r in view.runs():
            if isinstance(r.details, SegmentDetails):
                o = r.details.outputs
                predictions.setdefault(r.details.model, []).extend([o.prediction, o.probability, *o.views.values()])
        out = []
        for mv in M.versions(self.archive):
            try:
                card = mv.card()
            except CurationError:  # a damaged package: `verify` says so; the page still shows the rest
                continue
            src = card.training_data.source
            if src.acquisition != name and mv.address not in predictions:
                continue
            v, tr = card.validation, card.training
            facts = [("Pipeline", f"{card.pipeline.name} ({card.pipeline.architecture.dims} U-Net, width "
                                  f"{card.pipeline.architecture.width}, depth {card.pipeline.architecture.depth})"),
                     ("Target", card.pipeline.target.name),
                     ("Trained on", f"{src.acquisition} {src.label_address} "
                                    f"(slices {', '.join(map(str, card.training_data.annotated_slices))})"),
                     ("Validation Dice", "-" if v.best_dice is None else f"{v.best_dice:.3f} on slices "
                                         f"{', '.join(map(str, v.slices))}"),
                     ("Training", f"{tr.iterations} iterations, seed {tr.seed}, {tr.threads} thread(s) on "
                                  f"{tr.device}, {tr.seconds:.0f} s"),
                     ("Parent model", card.parent.address if card.parent else "-"),
                     ("Weights sha256", card.files.weights_sha256),
                     ("Predictions here", ", ".join(predictions.get(mv.address, [])) or "-"),
                     ("Intended use", " ".join(card.intended_use.split())),
                     ("Limitations", " ".join(card.limitations.split())),
                     ("Package", f"{mv.rel} (bioimage.io 0.5, tag {M.model_tag(mv.name, mv.version)})")]
            images = (f"/models/{mv.name}/v{mv.version}/cover.png",) if (mv.path / "cover.png").exists() else ()
            out.append(Section(title=f"{mv.address}: {' '.join(card.description.split())[:160]}",
                               facts=tuple(facts), images=images))
        return out

    def model_cover(self, model: str, version: int) -> Path:
        """The cover image of a stored model version, or NotFoundError."""
        from ..segmentation import models as M

        mv = M.resolve(self.archive, f"{model}@v{int(version)}", field="model")
        path = (mv.path / "cover.png")
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFoundError("the model's cover is not here (`datalad get` it)", field="model",
                                found=mv.address) from None
        return real

    def analysis_runs(self, name: str) -> list[Any]:
        """Run records of analyses and evaluations (``provenance/runs/``), newest first."""
        from ..provenance.analysis import AnalysisDetails, EvaluationDetails
        from ..provenance.experiment import LearningCurveDetails

        runs = [r for r in self.view(name).runs()
                if r.id.startswith("runs/") and isinstance(r.details, (AnalysisDetails, EvaluationDetails, LearningCurveDetails))]
        return sorted(runs, key=lambda r: (r.started, r.id), reverse=True)

    def analyses(self, name: str) -> list[Section]:
        """Analyses and evaluations of this acquisition: key figures, plots, the report."""
        from .analyses import section

        return [section(name, r) for r in self.analysis_runs(name)]

    def analysis_file(self, name: str, run: str, file: str) -> Path:
        """A file an analysis run wrote (``analysis/RUN/FILE``), or NotFoundError.

        ``run`` must be an analysis run of the acquisition and ``file`` one of the outputs
        its record lists; the path is the record's, and the resolved file must lie inside
        the acquisition's dataset."""
        check_name(run, what="analysis run", field="run")
        check_name(file, what="file name", field="file")
        record = next((r for r in self.analysis_runs(name) if r.id == f"runs/{run}"), None)
        if record is None:
            raise NotFoundError("no such analysis", field="run", found=run)
        rel = next((o.path for o in record.outputs if o.path == f"analysis/{run}/{file}"), None)
        if rel is None:
            raise NotFoundError("the analysis wrote no such file", field="file", found=file)
        acq = self.archive.acquisition_path(name).resolve()
        try:
            real = (acq / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFoundError("the file's content is not here (`datalad get` it)", field="file",
                                found=file) from None
        if not real.is_relative_to(acq) or not real.is_file():
            raise NotFoundError("not a file of this acquisition", field="file", found=file)
        return real

    # --- files of the OME-Zarr, for neuroglancer ---------------------------------------------

    def zarr_file(self, name: str, key: str) -> Path:
        """The file stored under ``key`` of the acquisition's OME-Zarr, or NotFoundError.

        ``key`` must follow the zarr v3 layout of this archive: ``zarr.json``,
        ``LEVEL/zarr.json``, ``LEVEL/c/I/J/K``, ``labels/zarr.json``,
        ``labels/GROUP/zarr.json``, ``labels/GROUP/LEVEL/...``, with ``LEVEL`` a level the
        multiscales list and ``GROUP`` a label version the archive lists. The path is built
        from those names; the resolved file must lie inside the acquisition's dataset.
        """
        self.require(name)
        m = _ZARR_KEY.match(key or "")
        if not m:
            raise NotFoundError("not a key of this OME-Zarr", field="key", found=key)
        zroot = self.archive.image_path(name)
        base = zroot
        levels = [lv.path for lv in self.geometry(name).levels]
        if m.group("labels"):
            base = zroot / "labels"
            group = m.group("group")
            if group is not None:
                by_group = {v.group: v for v in self.versions(name)}
                if group not in by_group:
                    raise NotFoundError("no such label version", field="key", found=key)
                base = base / by_group[group].group
                levels = list(by_group[group].levels)
            elif m.group("level") is not None or m.group("tail") != "zarr.json":
                raise NotFoundError("not a key of this OME-Zarr", field="key", found=key)
        level = m.group("level")
        if level is not None:
            if level not in levels:
                raise NotFoundError("no such pyramid level", field="key", found=key)
            base = base / level
        elif m.group("tail") != "zarr.json":
            raise NotFoundError("not a key of this OME-Zarr", field="key", found=key)
        path = base.joinpath(*m.group("tail").split("/"))
        acq = self.archive.acquisition_path(name).resolve()
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise NotFoundError("no data stored under this key (an empty chunk, or content not present "
                                "locally: `datalad get` it)", field="key", found=key) from None
        if not real.is_relative_to(acq) or not real.is_file():
            raise NotFoundError("not a file of this acquisition", field="key", found=key)
        return real

    # --- writing a painted version ------------------------------------------------------------

    def write_version(self, name: str, layer: str, source: Any, *, parents: Sequence[str],
                      annotated: Mapping[str, Any], note: str, creator: str | None,
                      names: Mapping[int, str], label_values: Sequence[int] | None,
                      painted: Mapping[str, Any], edit: Mapping[str, Any], tool: str,
                      lock_timeout: float = 0, scheduler: str | None = None):
        """Store ``source`` as the next ground-truth version of ``layer`` through the write
        transaction ``labels import`` uses; raises LockedError at once when another writer
        holds the lock. The lineage records ``painted``; the run record the whole ``edit``."""
        import hashlib

        from ..labels.store import LabelWrite, label_transaction, store_label_version
        from ..provenance import FileRef
        from ..provenance.labels import PaintSummary
        from ..provenance.runs import PaintDetails, PaintEdit
        from ..repository.pyramid import WriteOptions

        self.require(name)
        typed_edit = PaintEdit.model_validate(dict(edit))
        canonical = json.dumps(typed_edit.model_dump(mode="json", exclude_none=True), sort_keys=True,
                               separators=(",", ":")).encode()
        digest = hashlib.sha256(canonical).hexdigest()
        opts = WriteOptions(scheduler=scheduler, lock_timeout=lock_timeout)
        job = {"layer": layer, "edit": digest, "parents": list(parents), "tool": tool}
        with label_transaction(self.archive, name, "labels-paint", job=job, options=opts) as (tx, view):
            if tx.finished is not None:
                return tx.finished
            w = LabelWrite(layer=layer, source=source, annotated=annotated, kind="ground-truth", parents=list(parents),
                           sources=[FileRef(path=f"{tool} edit", name="edit.json", size=len(canonical), sha256=digest,
                                            role="edit")],
                           note=note, creator=creator, names=dict(names), label_values=label_values,
                           action="labels-paint", details=PaintDetails(tool=tool, edit=typed_edit),
                           painted=PaintSummary.model_validate(dict(painted)))
            return store_label_version(tx, view, w, opts)

    def default_creator(self) -> str:
        from ..repository import datalad_ops as dlo
        from ..repository.ingest import current_agent

        return dlo.git_identity(self.archive.root) or current_agent(self.archive.root).name

    def label_level0(self, name: str, address: str):
        """Level 0 of a version for reading by a paint source (a path it can reopen)."""
        v = self.version(name, address)
        return str(self.archive.image_path(name) / "labels" / v.group / v.levels[0])

    # --- internals ------------------------------------------------------------------------

    def _open(self, key: tuple[str, str, int], path: Path):
        import zarr

        with self._lock:
            arr = self._arrays.get(key)
        if arr is None:
            arr = zarr.open_array(str(path), mode="r", zarr_format=3)
            with self._lock:
                self._arrays[key] = arr
        return arr


    def _fast(self, key: tuple[str, str, int], path: Path, arr):
        from .shards import open_fast

        with self._lock:
            hit = self._readers.get(key)
        if hit is None:
            hit = open_fast(path) or arr
            with self._lock:
                self._readers[key] = hit
        return hit


def check_address(address: str) -> str:
    """``LAYER@vN`` with an explicit version (what tile URLs carry), else InvalidNameError."""
    from ..labels import layers as L

    layer, number = L.parse_address(address, field="version")
    if number is None:
        raise InvalidNameError("a tile address names its version", field="version",
                               expected="LAYER@vN", found=address)
    return L.address_of(layer, number)
