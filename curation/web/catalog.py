"""The one adapter between the web catalog, the previews and the archive.

Everything under :mod:`curation.web` reads and writes the archive **only** through
:class:`Catalog`: listing acquisitions, their metadata, history, image geometry and
pyramid levels, label versions with lineage and colours, run records, model cards and
analyses, the files of the OME-Zarr served to neuroglancer, and storing a painted
label version. The rest of the package (routes, tiles, previews, painting) works on the
small frozen view records defined here, never on paths or on archive internals.

Today it is built on ``curation.repository.archive`` (open_archive, the lock, git log),
``curation.labels.layers`` (versions, resolve, lineage) and
``curation.labels.store.write_label_version``, plus the provenance JSON under
``acquisitions/NAME/provenance/``. When the archive's read model and its single write
transaction land, only this module changes (see the ``# read model:`` notes).

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

from ..errors import InvalidNameError, NotFoundError
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

    def summary(self, name: str) -> Summary:
        # read model: the acquisition's typed record replaces these two JSON reads
        acq = self.archive.acquisition_path(self.require(name))
        md = _json(acq / "metadata.json")
        prov = _json(acq / "provenance" / "ingest.json")
        plan = prov.get("image", {}).get("plan", {})
        levels = plan.get("levels") or [{}]
        study, bio, aq = md.get("study", {}), md.get("biosample", {}), md.get("acquisition", {})
        return Summary(
            name=name, title=str(study.get("title") or name), description=str(study.get("description") or ""),
            organism=str(bio.get("organism", {}).get("scientific_name") or ""),
            technique=str(aq.get("technique") or ""), keywords=tuple(str(k) for k in study.get("keywords", [])),
            shape=tuple(plan.get("shape") or ()), dtype=str(plan.get("dtype") or ""),
            voxel_size_nm=tuple(levels[0].get("scale_nm") or ()),
            ingested=str(prov.get("finished") or ""),
            n_label_versions=len(self.versions(name)),
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
        """The validated acquisition metadata document (``metadata.json``)."""
        return _json(self.archive.acquisition_path(self.require(name)) / "metadata.json")

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
        self.require(name)
        zroot = self.archive.image_path(name)
        attrs = _json(zroot / "zarr.json").get("attributes", {}).get("ome", {})
        datasets = attrs.get("multiscales", [{}])[0].get("datasets", [])
        levels = []
        for i, ds in enumerate(datasets):
            meta = _json(zroot / ds["path"] / "zarr.json")
            levels.append(Level(i, ds["path"], tuple(meta["shape"]), _scale(ds), _inner_chunk(meta)))
        if not levels:
            raise NotFoundError("the image has no multiscales levels", path=self.archive.relative(zroot),
                                field="ome.multiscales", expected="an OME-Zarr 0.5 image", found="none")
        dtype = _json(zroot / levels[0].path / "zarr.json").get("data_type", "uint8")
        prov = _json(self.archive.acquisition_path(name) / "provenance" / "ingest.json")
        data_id = str(prov.get("image", {}).get("tree_sha256") or _head_id(self.archive.acquisition_path(name)))
        geo = Geometry(levels[0].shape, str(dtype), levels[0].scale_nm, tuple(levels), data_id)
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
        from ..labels import layers as L

        self.require(name)
        return [self._version(name, lv) for lv in L.versions(self.archive, name)]

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
        return self._version(name, L.resolve(self.archive, name, address, field="version"))

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
        cur = lv.lineage
        il = lv.image_label
        colors = {int(c["label-value"]): tuple(int(x) for x in c["rgba"]) for c in il.get("colors", [])
                  if "label-value" in c and "rgba" in c}
        names = {int(p["label-value"]): str(p.get("name", "")) for p in il.get("properties", [])
                 if "label-value" in p}
        prov = _json(self.archive.acquisition_path(name) / "provenance" / "labels" / f"{lv.group}.json")
        known = {"layer", "version", "address", "kind", "parents", "creator", "created", "note", "dtype",
                 "unlabeled_value", "annotated", "label_values", "sources", "tool_version"}
        datasets = lv.attrs.get("ome", {}).get("multiscales", [{}])[0].get("datasets", [])
        v = Version(
            acquisition=name, address=lv.address, layer=lv.layer, version=lv.version,
            kind=str(cur.get("kind") or ""), parents=tuple(cur.get("parents", [])),
            creator=str(cur.get("creator") or ""), created=str(cur.get("created") or ""),
            note=str(cur.get("note") or ""), dtype=str(cur.get("dtype") or "uint8"),
            unlabeled=int(cur.get("unlabeled_value", 255)), annotated=dict(cur.get("annotated", {})),
            colors=colors, names=names, label_values=tuple(int(x) for x in cur.get("label_values", [])),
            data_id=str(prov.get("tree_sha256") or f"{lv.group}-{cur.get('created')}"), group=lv.group,
            levels=tuple(d["path"] for d in datasets), extra={k: v for k, v in cur.items() if k not in known},
        )
        with self._lock:
            self._versions[key] = v
        return v

    # --- runs, models, analyses ----------------------------------------------------------

    def runs(self, name: str) -> list[Run]:
        """Run records of the acquisition (ingest, label versions), oldest first."""
        # read model: RunRecord replaces these provenance files
        acq = self.archive.acquisition_path(self.require(name))
        files = [acq / "provenance" / "ingest.json", *sorted((acq / "provenance" / "labels").glob("*.json"))]
        out = []
        for f in files:
            d = _json(f)
            if not d:
                continue
            tool = d.get("tool", {})
            output = d.get("address") or d.get("image", {}).get("path") or f.stem
            inputs = len(d.get("sources", [])) or len(d.get("inputs", {}).get("sources", []))
            out.append(Run(str(d.get("action", f.stem)), str(output), str(d.get("started", "")),
                           str(d.get("finished", "")), f"{tool.get('name', '')} {tool.get('version', '')}".strip(),
                           str(f.relative_to(acq)), inputs))
        return sorted(out, key=lambda r: r.started)

    def models(self, name: str) -> list[Section]:
        """Model cards of the models whose predictions this acquisition holds."""
        # read model: fill from the model registry (bioimage.io description + curation config)
        self.require(name)
        return []

    def analyses(self, name: str) -> list[Section]:
        """Analyses run on this acquisition, with their plots."""
        # read model: fill from the analysis records (their figures served by zarr_file-like lookups)
        self.require(name)
        return []

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
                      extra_attrs: Mapping[str, Any], extra_provenance: Mapping[str, Any],
                      sources: Sequence[Mapping[str, Any]] = (), lock_timeout: float = 0, scheduler: str | None = None):
        """Store ``source`` as the next ground-truth version of ``layer`` (the path of
        ``labels import``); raises LockedError at once when another writer holds the lock.
        A new version invalidates nothing here: versions are immutable and addressed by number."""
        # read model: the single write transaction replaces write_label_version here
        from ..labels.store import WriteOptions, write_label_version

        self.require(name)
        return write_label_version(
            self.archive, name, layer, source, kind="ground-truth", parents=list(parents), annotated=annotated,
            note=note, creator=creator, names=dict(names), label_values=label_values, extra_attrs=extra_attrs,
            extra_provenance=extra_provenance, sources=list(sources), action="labels-paint",
            options=WriteOptions(scheduler=scheduler, lock_timeout=lock_timeout))

    def default_creator(self) -> str:
        from ..labels.store import default_creator

        return default_creator(self.archive.root)

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


def _json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text())
        return out if isinstance(out, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _scale(ds: Mapping[str, Any]) -> tuple[float, float, float]:
    for t in ds.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            return tuple(float(v) for v in t["scale"][-3:])  # type: ignore[return-value]
    return (1.0, 1.0, 1.0)


def _inner_chunk(meta: Mapping[str, Any]) -> tuple[int, int, int]:
    """The read unit of an array: the sharding codec's inner chunk, else the chunk grid's."""
    for codec in meta.get("codecs", []):
        if codec.get("name") == "sharding_indexed":
            return tuple(codec["configuration"]["chunk_shape"])  # type: ignore[return-value]
    return tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])  # type: ignore[return-value]


def _head_id(repo: Path) -> str:
    from ..repository import datalad_ops as dlo

    return dlo.head(repo) or "unversioned"


def check_address(address: str) -> str:
    """``LAYER@vN`` with an explicit version (what tile URLs carry), else InvalidNameError."""
    from ..labels import layers as L

    layer, number = L.parse_address(address, field="version")
    if number is None:
        raise InvalidNameError("a tile address names its version", field="version",
                               expected="LAYER@vN", found=address)
    return L.address_of(layer, number)
