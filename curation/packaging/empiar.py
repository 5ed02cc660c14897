"""An EMPIAR deposition: the JSON the EMPIAR depositor reads, and the image sets it uploads.

Layout of the package::

    OUT/
      empiar_deposition.json     EMPIAR's deposition JSON
      README.md                  from archive_templates/empiar_README.md
      manifest-sha256.txt        sha256 of every file (`sha256sum -c manifest-sha256.txt`)
      entry_thumbnail.png        the entry's picture (`empiar-depositor -e`), see curation.web.preview
      data/raw/                  the files as recorded (copied from raw/ or the recorded paths)
      data/volume/               level 0 of the OME-Zarr image, one TIFF per z slice
      data/labels/<layer>_v<N>/  each chosen label version, one TIFF per z slice
      curation/                  metadata.json and the run records (not uploaded)

Upload with ``empiar-depositor EMPIAR_TOKEN empiar_deposition.json data`` (see README).

Codes (from the enums and descriptions of EMPIAR's deposition schema):

* ``experiment_type`` from ``acquisition.technique``: SBF-SEM -> 4 (serial block-face
  SEM), FIB-SEM -> 5 (focused ion beam SEM), ATUM-SEM -> 11. EMPIAR has no code for
  ssTEM, SEM, TEM, STEM or single-section ET: those are refused unless an
  ``experiment_type`` is given explicitly.
* ``release_date``: immediate -> RE, hold_until_publication -> HP, hold_until_date -> HO
  (EMPIAR holds for at most one year; a date already past -> RE, a date more than a year
  ahead is refused). EP (after an EMDB entry) is never produced.
* ``category``: raw images T1 (micrographs - single frame), the volume T13 (reconstructed
  volumes), labels ('OT', 'segmentation').
* ``header_format``/``data_format``: DM4 T6, DM3 T5, TIFF T3, PNG T10, JPEG T11, MRC T1;
  else ('OT', 'EXTENSION'). ``voxel_type``: uint8 T1, int8 T2, uint16 T3, int16 T4,
  uint32 T5, int32 T6, float32 T7; else ('OT', 'DESCRIPTION').
* ``pixel_width``/``pixel_height`` are in Å. The schema has no z spacing: the voxel
  depth is written in each image set's ``details``.
* authors as ``('Surname', 'INITIALS')`` with ``order_id`` from 0 and the ORCID iD.

Checks (:mod:`.empiar_checks`): EMPIAR's own schema anchors few of its patterns, so
:func:`check_deposition` checks the JSON strictly (whole-string patterns, ORCID check
digits, codes, country codes, lengths, non-empty text). The official schema is applied
too when a path to it is given (``empiar_schema`` or ``$CURATION_EMPIAR_SCHEMA``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InvalidNameError
from ..records import Result, ok
from ..templates import render
from ..provenance import Extent
from ..web.preview import entry_image
from .context import PackageSource, missing_content
from .empiar_checks import (
    BAD_NAME_CHARS,
    DOI_RE,
    CATEGORY_LABELS,
    EMPIAR_COUNTRIES,
    EXPERIMENT_CODES,
    EXPERIMENT_LABELS,
    EXPERIMENT_TYPES,
    FORMAT_CODES,
    FORMAT_LABELS,
    NAME_RE,
    RELEASE_TEXT,
    VOXEL_CODES,
    VOXEL_LABELS,
    VOXEL_OTHER,
    check_deposition,
    check_official,
    official_schema_path,
)
from .export_common import (
    Problem,
    compress_ranges,
    copy_tree,
    copy_verified,
    export_tiff_stack,
    refuse,
    safe_relpath,
    staged_output,
    write_json,
    write_manifest,
)

JSON_NAME = "empiar_deposition.json"
#: the picture EMPIAR shows for the entry (``empiar-depositor -e``; at least 400 x 400, PNG)
ENTRY_IMAGE = "entry_thumbnail.png"
def code(value: str, other: str = "") -> str:
    return f"('{value}', '{other}')"


def explain_code(text: str, labels: dict[str, str]) -> str:
    """``('T3', '')`` as ``T3 (TIFF)``, ``('OT', 'segmentation')`` as ``OT (other: segmentation)``."""
    m = re.fullmatch(r"\('([A-Z0-9]+)', '([^']*)'\)", text)
    if m is None:
        return text
    value, other = m.groups()
    if value == "OT":
        return f"OT (other: {other})"
    label = labels.get(value)
    return f"{value} ({label})" if label else value


def format_code(suffix: str) -> str:
    c = FORMAT_CODES.get(suffix.lower())
    if c:
        return code(c)
    other = re.sub(r"[^A-Z0-9 ]", "", suffix.upper().lstrip(".")) or "UNKNOWN"
    return code("OT", other)


def voxel_code(dtype: str) -> str:
    c = VOXEL_CODES.get(str(dtype))
    return code(c) if c else code("OT", VOXEL_OTHER.get(str(dtype), re.sub(r"[^A-Z0-9 ]", "", str(dtype).upper())))


# --- people -------------------------------------------------------------------------------------


def initials(given: str) -> str:
    parts = [p for p in re.split(r"[\s\-.]+", given) if p]
    return "".join(p[0].upper() for p in parts if p[0].isalpha())


def author_entry(person: Any, order: int) -> dict[str, Any]:
    """An EMPIAR author: ``('Surname', 'INITIALS')``, order from 0, ORCID iD or null."""
    return {"name": f"('{person.family_name.strip()}', '{initials(person.given_name)}')", "order_id": order,
            "author_orcid": person.orcid or None}


def author_problems(person: Any, where: str) -> list[Problem]:
    out = []
    family = person.family_name.strip()
    ini = initials(person.given_name)
    if not family or any(c in BAD_NAME_CHARS for c in family) or len(family) > 60:
        out.append(Problem(f"{where}.family_name", "EMPIAR cannot hold this surname",
                           expected="1-60 characters without digits, quotes or !\"£$%^&*()", found=family))
    if not ini or len(ini) > 20 or not (ini.isalpha() and ini.isupper()):
        out.append(Problem(f"{where}.given_name", "no initials can be made from the given name",
                           expected="a given name starting with a letter", found=person.given_name))
    return out


def _split_given(given: str) -> tuple[str, str | None]:
    tokens = given.split()
    return (tokens[0], " ".join(tokens[1:]) or None) if tokens else ("", None)


def contact_entry(c: Any) -> dict[str, Any]:
    """An EMPIAR contact (corresponding author, principal investigator)."""
    first, middle = _split_given(c.given_name)
    entry: dict[str, Any] = {"author_orcid": c.orcid or None, "first_name": first, "middle_name": middle,
                             "last_name": c.family_name, "organization": c.affiliation, "email": c.email,
                             "country": c.country}
    addr = c.address
    if addr is not None:
        entry["street"] = addr.street
        entry["state_or_province"] = addr.state_or_province
        if addr.city:
            entry["town_or_city"] = addr.city
        if addr.postcode:
            entry["post_or_zip"] = addr.postcode
    return entry


def contact_problems(c: Any, where: str) -> list[Problem]:
    out = []
    first, middle = _split_given(c.given_name)
    for field, value in (("given_name", first), ("given_name", middle), ("family_name", c.family_name)):
        if value is not None and (not NAME_RE.fullmatch(value) or len(value) > 60):
            out.append(Problem(f"{where}.{field}", "EMPIAR cannot hold this name",
                               expected="1-60 characters without digits or !\"£$%^&*()", found=value))
    for field in ("email", "affiliation", "country"):
        if not getattr(c, field, None):
            out.append(Problem(f"{where}.{field}", "missing; EMPIAR requires it"))
    if c.country and c.country not in EMPIAR_COUNTRIES:
        out.append(Problem(f"{where}.country", "EMPIAR's country list lacks this code",
                           expected="an ISO 3166-1 code EMPIAR accepts", found=c.country))
    return out


# --- what EMPIAR needs from the metadata ---------------------------------------------------------


def metadata_problems(src: PackageSource, experiment_type: int | None) -> list[Problem]:
    md = src.metadata
    study = md.study
    out: list[Problem] = []
    if study.corresponding_author is None:
        out.append(Problem("study.corresponding_author", "missing; EMPIAR requires a corresponding author",
                           expected="given_name, family_name, email, affiliation, country"))
    else:
        out += contact_problems(study.corresponding_author, "study.corresponding_author")
    if not study.principal_investigators:
        out.append(Problem("study.principal_investigators", "missing; EMPIAR requires at least one",
                           expected="a list of contacts with email, affiliation, country"))
    for i, pi in enumerate(study.principal_investigators):
        out += contact_problems(pi, f"study.principal_investigators.{i}")
    for i, a in enumerate(study.authors):
        out += author_problems(a, f"study.authors.{i}")
    if study.citation is not None and study.citation.authors:
        for i, a in enumerate(study.citation.authors):
            out += author_problems(a, f"study.citation.authors.{i}")
    if study.citation is None:
        out.append(Problem("study.citation", "missing; EMPIAR requires a citation (it may be in preparation)",
                           expected="status and title at least"))
    else:
        c = study.citation
        if len(c.title) > 255:
            out.append(Problem("study.citation.title", "too long for EMPIAR", expected="at most 255 characters",
                               found=f"{len(c.title)} characters"))
        for f in ("volume", "first_page", "last_page"):
            v = getattr(c, f)
            if v is not None and len(v) > 8:
                out.append(Problem(f"study.citation.{f}", "too long for EMPIAR", expected="at most 8 characters",
                                   found=v))
        if c.doi and (not DOI_RE.fullmatch(c.doi) or len(c.doi) > 80):
            out.append(Problem("study.citation.doi", "EMPIAR does not accept this DOI",
                               expected="10.NNNN/ then letters, digits and -._;()/: (at most 80)", found=c.doi))
    if not 10 <= len(study.title) <= 255:
        out.append(Problem("study.title", "EMPIAR needs a title of 10 to 255 characters",
                           expected="10-255 characters", found=f"{len(study.title)} characters"))
    technique = md.acquisition.technique.value
    if experiment_type is None and technique not in EXPERIMENT_TYPES:
        out.append(Problem("acquisition.technique", "EMPIAR has no experiment type for this technique",
                           expected=f"one of {', '.join(EXPERIMENT_TYPES)}, or an explicit experiment_type",
                           found=technique))
    if experiment_type is not None and experiment_type not in EXPERIMENT_CODES:
        out.append(Problem("experiment_type", "not an EMPIAR experiment type",
                           expected=f"one of {sorted(EXPERIMENT_CODES)}", found=experiment_type))
    rel = study.release
    if rel.policy.value == "hold_until_date" and rel.date and rel.date > date.today() + timedelta(days=366):
        out.append(Problem("study.release.date", "EMPIAR holds an entry for at most one year",
                           expected=f"a date before {date.today() + timedelta(days=366)}", found=str(rel.date)))
    if len(src.voxel_size_nm) != 3:
        out.append(Problem("provenance/ingest.json", "the voxel size was not recorded", expected="(z, y, x) in nm"))
    return out


def release_code(src: PackageSource) -> str:
    rel = src.metadata.study.release
    if rel.policy.value == "hold_until_publication":
        return "HP"
    if rel.policy.value == "hold_until_date" and rel.date and rel.date > date.today():
        return "HO"
    return "RE"


def scale_code(src: PackageSource) -> str | None:
    bio = src.metadata.biosample
    if bio.tissue:
        return "4"
    if bio.cell_type:
        return "3"
    return None


# --- image sets ------------------------------------------------------------------------------------


def raw_plan(src: PackageSource) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Where each raw file comes from: the acquisition's raw/ copy, else the recorded path."""
    raw_copy = src.ingest.raw_copy
    items, problems, seen = [], [], set()
    for s in src.ingest.sources:
        name = s.name
        if not name or "/" in name or "\\" in name:
            raise InvalidNameError("a recorded source name is not a plain file name",
                                   path=src.acq / "provenance" / "ingest.json", field="sources.name", found=name)
        safe_relpath(name, field="sources.name")
        if name in seen:
            problems.append(Problem("sources", "two recorded sources share a file name", found=name))
        seen.add(name)
        if raw_copy:
            path = src.acq / safe_relpath(str(raw_copy).rstrip("/"), field="raw_copy") / name
            where = f"{str(raw_copy).rstrip('/')}/{name}"
        else:
            path = Path(s.path)
            where = str(path)
        size = s.size
        if not path.exists():
            why = ("content not present here (run `datalad get`)" if raw_copy and path.is_symlink()
                   else "missing" + ("" if raw_copy else "; the acquisition was ingested without --keep-raw, so the "
                                     "raw file must be at its recorded path"))
            problems.append(Problem("raw source", f"{where}: {why}", expected=f"{size} bytes"))
        elif size is not None and path.stat().st_size != size:
            problems.append(Problem("raw source", f"{where}: changed since ingest", expected=f"{size} bytes",
                                    found=f"{path.stat().st_size} bytes"))
        items.append({"name": name, "path": path, "size": size, "sha256": s.sha256})
    if not items:
        problems.append(Problem("provenance/ingest.json", "no source files recorded", expected="sources"))
    return items, problems


def _array_info(group: Path) -> tuple[tuple[int, ...], str, Any]:
    import zarr

    from .export_common import multiscale_level0

    level, _scale = multiscale_level0(group)
    arr = zarr.open_array(str(group / level), mode="r")
    return tuple(int(s) for s in arr.shape), str(arr.dtype), arr.fill_value


def _voxel_text(vox: list[float]) -> str:
    z, y, x = vox
    return (f"Voxel size (z, y, x): {z:g} x {y:g} x {x:g} nm. The voxel depth (distance between slices) is "
            f"{z:g} nm = {z * 10:g} Å; EMPIAR's schema has no field for it.")


def _names(items: Any, limit: int = 10) -> str:
    if not isinstance(items, list):
        return str(items) if items else ""
    names = [str(x.get("name") or x.get("path") or x) if isinstance(x, dict) else str(x) for x in items]
    more = f" and {len(names) - limit} more ({len(names)} files)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _annotated_text(annotated: Extent) -> str:
    parts = []
    if annotated.slices:
        parts.append(f"z {compress_ranges(annotated.slices)} ({len(annotated.slices)} whole slices)")
    if annotated.regions:
        parts.append(f"{len(annotated.regions)} region(s) " + "; ".join(
            " ".join(f"{ax} {getattr(r, ax)[0]}-{getattr(r, ax)[1] - 1}" for ax in "zyx")
            for r in annotated.regions[:5]))
    return ", ".join(parts)


def label_details(src: PackageSource, lab: Any, dtype: str, fill: Any) -> str:
    """Lineage and value meanings of a label version, for its image set's ``details``."""
    a = lab.lineage
    unlabeled = a.unlabeled_value
    creator = a.creator
    sources = [s.name for s in a.sources]
    annotated = _annotated_text(a.annotated)
    meanings = [f"{v} = {n}" for v, n in sorted(lab.names.items())]
    parts = [
        f"Label layer '{lab.layer}', version {lab.version} ({lab.address}), kind: {lab.kind or 'not recorded'}.",
        f"Parents: {', '.join(lab.parents) or 'none'}.",
        f"Created {a.created} by {creator}.",
        f"Sources: {_names(sources) or 'not recorded'}.",
        f"Annotated: {annotated or 'not recorded'}.",
    ]
    if a.note:
        parts.append(f"Note: {a.note}.")
    parts.append(f"Voxel values ({dtype}): {unlabeled} means unlabeled (not annotated) and is kept as stored; "
                 + (f"values: {'; '.join(meanings[:20])}." if meanings else "0 is background, other values are "
                    "label ids."))
    parts.append(f"Exported from level 0 of {src.name}.ome.zarr/labels/{lab.group}, one TIFF per z slice.")
    return " ".join(parts)


def plan_imagesets(src: PackageSource, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imageset entries of the JSON and what each is made from (keys starting with '_')."""
    md, name = src.metadata, src.name
    vox = src.voxel_size_nm
    z_nm, y_nm, x_nm = vox
    header = src.ingest.header
    hshape = list(header.shape)
    hdtype = header.dtype
    suffixes = Counter(Path(r["name"]).suffix.lower() for r in raw)
    suffix = suffixes.most_common(1)[0][0] if suffixes else ""
    n_raw = len(raw)
    frames = hshape[0] // n_raw if n_raw and hshape and hshape[0] % n_raw == 0 else 1
    technique = md.acquisition.technique.value
    sets: list[dict[str, Any]] = [{
        "name": f"{technique} images of {name} as recorded ({n_raw} {suffix.lstrip('.').upper()} file(s))",
        "directory": "/data/raw",
        "category": code("T1"),
        "header_format": format_code(suffix),
        "data_format": format_code(suffix),
        "num_images_or_tilt_series": n_raw,
        "frames_per_image": max(1, frames),
        "voxel_type": voxel_code(hdtype),
        "pixel_width": round(x_nm * 10, 6),
        "pixel_height": round(y_nm * 10, 6),
        "details": (f"The files as recorded by the instrument, unchanged (sha256 checked against the ingest record); "
                    f"{frames} image(s) per file. Volume (z, y, x): {' x '.join(map(str, hshape))} voxels. "
                    + _voxel_text(vox)),
        "image_width": int(hshape[-1]),
        "image_height": int(hshape[-2]),
        "_kind": "raw",
    }]
    shape, dtype, _fill = _array_info(src.zroot)
    sets.append({
        "name": f"Volume {name}: the assembled image volume, one TIFF per z slice",
        "directory": "/data/volume",
        "category": code("T13"),
        "header_format": code("T3"),
        "data_format": code("T3"),
        "num_images_or_tilt_series": shape[0],
        "frames_per_image": 1,
        "voxel_type": voxel_code(dtype),
        "pixel_width": round(x_nm * 10, 6),
        "pixel_height": round(y_nm * 10, 6),
        "details": (f"Level 0 (full resolution) of the archived OME-Zarr image {name}.ome.zarr, exported slice by "
                    f"slice as uncompressed TIFF; file {name}_zNNNN.tif is z slice NNNN. Volume (z, y, x): "
                    f"{' x '.join(map(str, shape))} voxels. " + _voxel_text(vox)
                    + f" Acquisition dataset commit {src.commit or 'unknown'}."),
        "image_width": shape[-1],
        "image_height": shape[-2],
        "_kind": "volume",
        "_group": src.zroot,
        "_stem": name,
    })
    for lab in src.labels:
        lshape, ldtype, lfill = _array_info(lab.path)
        sets.append({
            "name": f"Segmentation {lab.address} of {name} ({lab.kind or 'labels'})",
            "directory": f"/data/labels/{lab.group}",
            "category": code("OT", "segmentation"),
            "header_format": code("T3"),
            "data_format": code("T3"),
            "num_images_or_tilt_series": lshape[0],
            "frames_per_image": 1,
            "voxel_type": voxel_code(ldtype),
            "pixel_width": round(x_nm * 10, 6),
            "pixel_height": round(y_nm * 10, 6),
            "details": label_details(src, lab, ldtype, lfill) + " " + _voxel_text(vox),
            "image_width": lshape[-1],
            "image_height": lshape[-2],
            "_kind": "label",
            "_group": lab.path,
            "_stem": f"{name}_{lab.group}",
        })
    return sets


# --- the deposition JSON ----------------------------------------------------------------------------


def build_deposition(src: PackageSource, imagesets: list[dict[str, Any]],
                     experiment_type: int | None = None) -> dict[str, Any]:
    """The deposition JSON; :func:`metadata_problems` must have found nothing first."""
    md = src.metadata
    study = md.study
    authors = [author_entry(a, i) for i, a in enumerate(study.authors)]
    c = study.citation
    cit_authors = [author_entry(a, i) for i, a in enumerate(study.citation_authors())]
    etype = experiment_type if experiment_type is not None else EXPERIMENT_TYPES.get(md.acquisition.technique.value)
    doc: dict[str, Any] = {
        "title": study.title,
        "release_date": release_code(src),
        "experiment_type": etype,
    }
    scale = scale_code(src)
    if scale:
        doc["scale"] = scale
    doc["authors"] = authors
    doc["corresponding_author"] = contact_entry(study.corresponding_author)
    doc["principal_investigator"] = [contact_entry(p) for p in study.principal_investigators]
    doc["imagesets"] = [{k: v for k, v in s.items() if not k.startswith("_")} for s in imagesets]
    doc["citation"] = [{
        "authors": cit_authors,
        "editors": [],
        "published": c.status.value == "published",
        "j_or_nj_citation": True,
        "title": c.title,
        "volume": c.volume,
        "issue": c.issue,
        "first_page": c.first_page,
        "last_page": c.last_page,
        "year": c.year,
        "doi": c.doi,
        "pubmedid": c.pubmed_id,
        "journal": c.journal,
        "details": None if c.status.value == "published" else f"Citation status: {c.status.value.replace('_', ' ')}.",
    }]
    return doc


def write_empiar(src: PackageSource, out: Path, *, empiar_schema: str | os.PathLike[str] | None = None,
                 experiment_type: int | None = None, record: Any = None) -> Result:
    problems = metadata_problems(src, experiment_type)
    raw, raw_problems = raw_plan(src)
    problems += raw_problems
    problems += missing_content(src, src.labels)
    refuse(problems, f"cannot package {src.name} for EMPIAR", src.acq / "metadata.json")

    imagesets = plan_imagesets(src, raw)
    doc = build_deposition(src, imagesets, experiment_type)
    problems = check_deposition(doc)
    schema_path = official_schema_path(empiar_schema)
    if schema_path is not None:
        problems += check_official(doc, schema_path)
    refuse(problems, f"cannot package {src.name} for EMPIAR", src.acq / "metadata.json")

    digests: dict[str, str] = {}
    counts: dict[str, int] = {}
    with staged_output(out, record) as tmp:
        for r in raw:
            rel = f"data/raw/{r['name']}"
            n, digests[rel] = copy_verified(r["path"], tmp / rel, sha256=r["sha256"], size=r["size"],
                                            what=f"raw source {r['name']}")
        counts["/data/raw"] = len(raw)
        for s in imagesets:
            if s["_kind"] == "raw":
                continue
            folder = s["directory"].lstrip("/")
            stack = export_tiff_stack(s["_group"], tmp, folder, s["_stem"], description=s["name"],
                                      software=f"curation {__version__}")
            digests.update(stack.digests)
            counts[s["directory"]] = len(stack.files)
        chosen = {lab.group for lab in src.labels}

        def skip(rel: str) -> bool:
            if not rel.startswith("labels/"):
                return False
            stem = rel.split("/", 1)[1]
            for suffix in (".checksums.tsv", ".json"):
                if stem.endswith(suffix):
                    return stem[: -len(suffix)] not in chosen
            return True  # anything else under labels/ belongs to no chosen version

        copy_tree(src.acq / "provenance", tmp / "curation" / "provenance", inside=src.acq, skip=skip)
        copy_verified(src.acq / "metadata.json", tmp / "curation" / "metadata.json")
        write_json(tmp / JSON_NAME, doc)
        entry_image(src.archive.root, src.name, tmp / ENTRY_IMAGE)
        (tmp / "README.md").write_text(_readme(src, doc, imagesets, counts), encoding="utf-8")
        n_files, n_bytes = write_manifest(tmp, digests)

    return ok("package", out, f"EMPIAR deposition of {src.name}: {len(imagesets)} image set(s), "
              f"{n_files} files, {n_bytes / 1e6:.1f} MB", format="empiar", name=src.name, json=JSON_NAME,
              files=n_files + 1, bytes=n_bytes, imagesets=[{"name": s["name"], "directory": s["directory"],
                                                            "files": counts.get(s["directory"], 0)}
                                                           for s in imagesets],
              labels=[lab.address for lab in src.labels], experiment_type=doc["experiment_type"],
              release_date=doc["release_date"], official_schema=str(schema_path) if schema_path else None,
              manifest="manifest-sha256.txt", entry_image=ENTRY_IMAGE, dataset_commit=src.commit, archive_commit=src.archive_commit)


def _readme(src: PackageSource, doc: dict[str, Any], imagesets: list[dict[str, Any]], counts: dict[str, int]) -> str:
    lines = []
    for s in imagesets:
        lines.append(f"  - `{s['directory'].lstrip('/')}/` ({counts.get(s['directory'], 0)} files): {s['name']}. "
                     f"Category {explain_code(s['category'], CATEGORY_LABELS)}, format "
                     f"{explain_code(s['data_format'], FORMAT_LABELS)}, voxel type "
                     f"{explain_code(s['voxel_type'], VOXEL_LABELS)}.")
    labels = "\n".join(f"- `{lab.address}` ({lab.kind or 'labels'}), from "
                       f"`{src.name}.ome.zarr/labels/{lab.group}`" for lab in src.labels) or "- none"
    z, y, x = src.voxel_size_nm
    et = doc["experiment_type"]
    return render(
        "empiar_README.md",
        title=doc["title"], name=src.name, json_file=JSON_NAME,
        experiment_type=et, experiment_label=EXPERIMENT_LABELS.get(et, ""),
        technique=src.metadata.acquisition.technique.value,
        release_code=doc["release_date"], release_text=RELEASE_TEXT[doc["release_date"]],
        imagesets="\n".join(lines), labels=labels,
        voxel=f"{z:g} x {y:g} x {x:g}", voxel_depth_a=f"{z * 10:g}",
        license=src.metadata.study.license, dataset_commit=src.commit or "unknown",
        archive_commit=src.archive_commit or "unknown", version=__version__,
        created=_now(),
    )


def _now() -> str:
    from ..repository.archive import now_iso

    return now_iso()
