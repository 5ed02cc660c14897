"""An RO-Crate (1.2 and later) of one acquisition, with its provenance as CreateActions.

Decision: the crate *includes the data*. It is written into ``--out`` (never into the
archive, whose datasets stay untouched) with a plain copy of the acquisition::

    OUT/
      ro-crate-metadata.json
      README.md                      from archive_templates/deposit_README.md
      NAME/                          the acquisition as stored, real files (annex links followed)
        metadata.json, README.md, provenance/, raw/ (if kept), NAME.ome.zarr/ (labels/ inside)

Entities: the root Dataset (title, description, licence, authors as Person entities with
their ORCID URL as ``@id``, funders, citation, keywords); the acquisition folder; the
OME-Zarr image and each label version as Dataset entities described by size and file
count (``contentSize``, ``fileCount``), never file by file, so millions of chunks cost
nothing; the metadata and run-record files. Each run record (ingest, label import,
aggregation, and any later run in ``provenance/runs/``) becomes one ``CreateAction``
through one generic converter, :func:`add_run`, fed by the normalised records of
:mod:`curation.packaging.runrecords`: ``instrument`` (the SoftwareApplication that ran),
``agent``, ``object`` (inputs), ``result`` (outputs), ``startTime``/``endTime``.
By default every label version is included; ``labels`` narrows the selection.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from .. import __version__
from ..records import Result, ok
from ..repository.archive import now_iso
from .context import PackageSource, copy_acquisition, deposit_readme, identifier_note, missing_content
from .export_common import folder_stats, refuse, staged_output
from .runrecords import RunSummary, read_run_records

TERMS = "https://curation.example.org/terms#"
EXTRA_TERMS = {"fileCount": TERMS + "fileCount", "sha256": TERMS + "sha256", "recordedPath": TERMS + "recordedPath"}
NGFF_05 = "https://ngff.openmicroscopy.org/0.5/"
MAX_LISTED_INPUTS = 50


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


class _Builder:
    def __init__(self, src: PackageSource, base: Path) -> None:
        from rocrate.rocrate import ROCrate

        self.src = src
        self.base = base
        self.crate = ROCrate()
        self.crate.metadata.extra_terms.update(EXTRA_TERMS)
        self.prefix = f"{src.name}/"
        self.people: dict[str, Any] = {}

    # --- contextual entities ---------------------------------------------------------------

    def ctx(self, id_: str, props: dict[str, Any]) -> Any:
        from rocrate.model.contextentity import ContextEntity

        existing = self.crate.get(id_)
        if existing is not None:
            return existing
        return self.crate.add(ContextEntity(self.crate, id_, properties=props))

    def person(self, given: str | None, family: str | None, *, name: str | None = None, orcid: str | None = None,
               email: str | None = None, affiliation: str | None = None) -> Any:
        from rocrate.model.person import Person

        full = name or " ".join(p for p in (given, family) if p)
        id_ = f"https://orcid.org/{orcid}" if orcid else f"#person-{_slug(full)}"
        if id_ in self.people:
            return self.people[id_]
        props: dict[str, Any] = {"name": full}
        if given:
            props["givenName"] = given
        if family:
            props["familyName"] = family
        if email:
            props["email"] = email
        if affiliation:
            props["affiliation"] = self.ctx(f"#org-{_slug(affiliation)}", {"@type": "Organization", "name": affiliation})
        p = self.crate.add(Person(self.crate, id_, properties=props))
        self.people[id_] = p
        return p

    def software(self, tool: dict[str, Any]) -> Any:
        name = tool.get("name") or "unknown software"
        version = tool.get("version")
        props: dict[str, Any] = {"@type": "SoftwareApplication", "name": name}
        if version:
            props["version"] = str(version)
        if tool.get("url"):
            props["url"] = tool["url"]
        return self.ctx(f"#software-{_slug(name)}-{_slug(version or 'unversioned')}", props)

    # --- data entities ------------------------------------------------------------------------

    def dataset(self, rel: str, props: dict[str, Any], *, count: bool = True) -> Any:
        path = self.base / rel
        if count:
            n, size = folder_stats(path)
            props = {**props, "contentSize": str(size), "fileCount": n}
        return self.crate.add_dataset(None, rel.rstrip("/") + "/", properties=props)

    def file(self, rel: str, props: dict[str, Any]) -> Any:
        path = self.base / rel
        props = {"contentSize": str(path.stat().st_size), **props}
        return self.crate.add_file(None, rel, properties=props)

    def entity_for(self, item: dict[str, Any]) -> Any:
        """The entity a run record's input or output item refers to (created when outside the crate)."""
        path = item.get("path")
        if item.get("copy"):
            e = self.crate.get(self.prefix + str(item["copy"]))
            if e is not None:
                return e
        if item.get("kind") == "label" and not path and item.get("address"):
            m = re.match(r"^(.+)@v([0-9]+)$", item["address"])
            if m:
                path = f"{self.src.name}.ome.zarr/labels/{m.group(1)}_v{m.group(2)}"
        if path and not str(path).startswith("/"):
            for cand in (self.prefix + str(path).rstrip("/"), self.prefix + str(path).rstrip("/") + "/"):
                e = self.crate.get(cand)
                if e is not None:
                    return e
        label = item.get("address") or item.get("name") or (Path(str(path)).name if path else "input")
        ident = f"{path or ''}|{item.get('sha256') or ''}|{item.get('address') or ''}|{label}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:16]
        where = f"a copy is in {self.prefix}{item['copy']}" if item.get("copy") else "not included in this crate"
        props: dict[str, Any] = {"@type": "File" if item.get("kind") in ("file", None) else "Dataset",
                                 "name": label, "description": where}
        if item.get("size") is not None:
            props["contentSize"] = str(item["size"])
        if item.get("sha256"):
            props["sha256"] = item["sha256"]
        if path:
            props["recordedPath"] = str(path)
        return self.ctx(f"#item-{key}", props)


def add_run(b: _Builder, run: RunSummary) -> Any:
    """One CreateAction from one normalised run record (the only converter)."""
    props: dict[str, Any] = {"@type": "CreateAction", "name": f"{run.action}: {run.id}",
                             "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"}}
    if run.description:
        props["description"] = run.description
    if run.started:
        props["startTime"] = run.started
    if run.finished:
        props["endTime"] = run.finished
    action = b.crate.add_action(b.software(run.tool or {"name": "unknown"}), identifier=f"#run-{_slug(run.id)}",
                                properties=props)
    if run.agent:
        a = run.agent
        action["agent"] = b.person(None, None, name=a.get("name") or a.get("email") or "unknown", orcid=a.get("orcid"),
                                   email=a.get("email"))
    inputs = run.inputs
    objects: list[Any] = []
    copies = [i for i in inputs if i.get("copy")]
    if len(inputs) > MAX_LISTED_INPUTS and copies:
        raw_dir = b.crate.get(b.prefix + copies[0]["copy"].rsplit("/", 1)[0] + "/")
        if raw_dir is not None:
            objects.append(raw_dir)
        inputs = [i for i in inputs if not i.get("copy")]
    objects += [b.entity_for(i) for i in inputs[:MAX_LISTED_INPUTS]]
    if len(inputs) > MAX_LISTED_INPUTS:
        note = (f"{len(inputs)} inputs; the first {MAX_LISTED_INPUTS} are listed as objects, all of them (with "
                f"sizes and sha256) in {run.record}")
        action["description"] = f"{action.get('description') or ''} ({note})".strip()
    if objects:
        action["object"] = _unique(objects)
    results = [b.entity_for(o) for o in run.outputs]
    if results:
        action["result"] = _unique(results)
    record = b.crate.get(b.prefix + run.record)
    if record is not None:
        action["subjectOf"] = record
    return action


def _unique(entities: list[Any]) -> list[Any]:
    seen, out = set(), []
    for e in entities:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def build_crate(src: PackageSource, base: Path, runs: list[RunSummary], *, doi: str | None = None,
                publisher: str | None = None) -> Any:
    b = _Builder(src, base)
    md, study, name = src.metadata, src.metadata.study, src.name
    crate = b.crate
    root = crate.root_dataset
    root["name"] = study.title
    root["description"] = study.description
    root["datePublished"] = now_iso()
    root["license"] = b.ctx(_license_id(study.license), {"@type": "CreativeWork", "name": study.license,
                                                          "identifier": study.license})
    root["author"] = [b.person(a.given_name, a.family_name, orcid=a.orcid, email=a.email, affiliation=a.affiliation)
                      for a in study.authors]
    if study.keywords:
        root["keywords"] = list(study.keywords)
    if doi:
        root["identifier"] = f"https://doi.org/{doi}"
    if publisher:
        root["publisher"] = b.ctx(f"#org-{_slug(publisher)}", {"@type": "Organization", "name": publisher})
    if study.funding:
        funders = [b.ctx(f.funder_id or f"#funder-{_slug(f.funder)}", {"@type": "Organization", "name": f.funder})
                   for f in study.funding]
        root["funder"] = _unique(funders)
        grants = [b.ctx(f"#grant-{_slug(f.grant_id)}", {"@type": "Grant", "name": f"{f.funder} {f.grant_id}",
                                                         "identifier": f.grant_id, "funder": org})
                  for f, org in zip(study.funding, funders) if f.grant_id]
        if grants:
            root["funding"] = grants
    if study.citation:
        c = study.citation
        props: dict[str, Any] = {"@type": "ScholarlyArticle", "name": c.title, "creativeWorkStatus": c.status.value}
        if c.year:
            props["datePublished"] = str(c.year)
        if c.journal:
            props["isPartOf"] = b.ctx(f"#journal-{_slug(c.journal)}", {"@type": "Periodical", "name": c.journal})
        root["citation"] = b.ctx(f"https://doi.org/{c.doi}" if c.doi else "#citation", props)
    if study.corresponding_author:
        ca = study.corresponding_author
        p = b.person(ca.given_name, ca.family_name, orcid=ca.orcid, email=ca.email, affiliation=ca.affiliation)
        root["accountablePerson"] = p
    root["version"] = src.commit or "unknown"

    b.file("README.md", {"name": "README", "encodingFormat": "text/markdown"})
    acq = b.dataset(b.prefix, {"name": f"Acquisition {name}", "description":
                               f"{md.acquisition.technique.value} acquisition of {md.biosample.organism.scientific_name}"
                               f", as stored in the curation archive {src.archive.title!r}"})
    parts = [b.file(b.prefix + "metadata.json", {"name": "acquisition metadata", "encodingFormat": "application/json"}),
             b.file(b.prefix + "README.md", {"name": "acquisition README", "encodingFormat": "text/markdown"})]
    image = b.dataset(f"{b.prefix}{name}.ome.zarr", {
        "name": f"{name}.ome.zarr", "description": f"OME-Zarr 0.5 image {' x '.join(map(str, src.shape))} "
        f"{src.dtype} at {' x '.join(f'{v:g}' for v in src.voxel_size_nm)} nm (z, y, x), multiscale pyramid",
        "encodingFormat": "OME-Zarr", "conformsTo": {"@id": NGFF_05},
        "dateCreated": src.ingest.finished, "measurementTechnique": md.acquisition.technique.value})
    parts.append(image)
    for lab in src.labels:
        rel = f"{b.prefix}{lab.rel}"
        props = {"name": lab.address, "description": f"label layer {lab.layer}, version {lab.version}, "
                 f"kind {lab.kind or 'not recorded'}", "version": str(lab.version), "conformsTo": {"@id": NGFF_05},
                 "encodingFormat": "OME-Zarr"}
        props["dateCreated"] = lab.lineage.created
        if lab.lineage.note:
            props["abstract"] = lab.lineage.note
        e = b.dataset(rel, props)
        image.append_to("hasPart", e)
    for lab in src.labels:  # lineage once every version exists
        e = crate.get(f"{b.prefix}{lab.rel}/")
        based = [crate.get(f"{b.prefix}{name}.ome.zarr/labels/{_group_of(p)}/") or
                 b.entity_for({"kind": "label", "address": p}) for p in lab.parents]
        e["isBasedOn"] = based + [image] if based else [image]
    raw = src.ingest.raw_copy
    if raw and (base / b.prefix / str(raw)).is_dir():
        parts.append(b.dataset(b.prefix + str(raw).rstrip("/"), {"name": "raw files as recorded",
                                                                 "description": "unchanged copies of the source files"}))
    prov = base / b.prefix / "provenance"
    for p in sorted(prov.rglob("*")):
        if p.is_file():
            rel = p.relative_to(base).as_posix()
            fmt = "application/json" if p.suffix == ".json" else "text/tab-separated-values"
            parts.append(b.file(rel, {"name": p.relative_to(base / b.prefix).as_posix(), "encodingFormat": fmt}))
    acq["hasPart"] = parts
    root["mainEntity"] = image
    for run in runs:
        add_run(b, run)
    return crate


def _group_of(address: str) -> str:
    m = re.match(r"^(.+)@v([0-9]+)$", address)
    return f"{m.group(1)}_v{m.group(2)}" if m else _slug(address)


def _license_id(spdx: str) -> str:
    return f"#license-{_slug(spdx)}" if spdx.startswith("LicenseRef-") else f"https://spdx.org/licenses/{spdx}"


def write_rocrate(src: PackageSource, out: Path, *, doi: str | None = None, publisher: str | None = None,
                  record: Any = None) -> Result:
    from .bagit_export import raw_problems

    problems = missing_content(src, src.labels) + raw_problems(src)
    refuse(problems, f"cannot write an RO-Crate of {src.name}", src.acq / "metadata.json")
    chosen = {lab.group for lab in src.labels}
    runs = [r for r in read_run_records(src.view)
            if not r.id.startswith("labels/") or r.id.split("/", 1)[1] in chosen]
    with staged_output(out, record) as tmp:
        stats = copy_acquisition(src, tmp / src.name)
        readme = deposit_readme(
            src, format_title="An RO-Crate", doi=doi,
            contents=(f"- `ro-crate-metadata.json`: what everything is, who made it, under which licence, and how "
                      f"it was made (one CreateAction per run record).\n- `{src.name}/`: the acquisition as "
                      f"archived: `metadata.json`, `provenance/`, `{src.name}.ome.zarr/` (OME-Zarr 0.5 with its "
                      "label layers), `raw/` when the raw files were kept."),
            check="`python -c \"from rocrate.rocrate import ROCrate; ROCrate('.')\"` reads the crate; the "
                  "checksums of the image and label files are in `provenance/`.",
            provenance=f"The run records are in `{src.name}/provenance/`, and each is a CreateAction in "
                       "`ro-crate-metadata.json`.")
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        crate = build_crate(src, tmp, runs, doi=doi, publisher=publisher)
        crate.metadata.write(tmp)
        n_entities = len(crate.get_entities())
    return ok("package", out, f"RO-Crate of {src.name}: {stats.files} files, {stats.bytes / 1e6:.1f} MB, "
              f"{len(runs)} run record(s)", format="ro-crate", name=src.name, files=stats.files + 2,
              bytes=stats.bytes, entities=n_entities, actions=[f"#run-{_slug(r.id)}" for r in runs],
              labels=[lab.address for lab in src.labels], identifier=identifier_note(doi), version=__version__,
              dataset_commit=src.commit, archive_commit=src.archive_commit)
