"""A BagIt bag (RFC 8493) of one acquisition, for preservation.

Layout::

    OUT/
      bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
      data/README.md                 from archive_templates/deposit_README.md
      data/NAME/                     the acquisition as stored, real files (annex links followed)
        metadata.json, README.md, provenance/, raw/ (if kept), NAME.ome.zarr/ (with labels/)

Every image and label file is checked against its recorded sha256 while it is copied,
and the bag's own manifest is compared with those digests before the bag is put in
place; ``bagit.Bag(OUT).validate()`` then checks the whole bag. By default every label
version is included; ``labels`` narrows the selection.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import PackagingError
from ..records import Result, ok
from .context import PackageSource, copy_acquisition, deposit_readme, identifier_note, missing_content
from .export_common import Problem, refuse, staged_output


def contact(src: PackageSource) -> tuple[dict[str, str], list[Problem]]:
    """Source-Organization, Contact-Name and Contact-Email: the corresponding author, else an author."""
    study = src.metadata.study
    people = ([study.corresponding_author] if study.corresponding_author else []) + list(study.authors)
    person = next((p for p in people if getattr(p, "email", None) and getattr(p, "affiliation", None)), None)
    if person is None:
        return {}, [Problem("study.corresponding_author", "missing; a bag needs a contact with an e-mail address "
                            "and an affiliation", expected="a corresponding author, or an author with email and "
                            "affiliation")]
    return {"Source-Organization": person.affiliation, "Contact-Name": f"{person.given_name} {person.family_name}",
            "Contact-Email": person.email}, []


def raw_problems(src: PackageSource) -> list[Problem]:
    raw_copy = str(src.ingest.raw_copy or "").rstrip("/")
    if not raw_copy:
        return []
    absent = [s.name for s in src.ingest.sources if not (src.acq / raw_copy / s.name).exists()]
    if absent:
        return [Problem(raw_copy, f"{len(absent)} raw file(s) not present here: {', '.join(absent[:5])} "
                        "(run `datalad get` on the archive)")]
    return []


def write_bag(src: PackageSource, out: Path, *, doi: str | None = None, record: Any = None) -> Result:
    import bagit

    info, problems = contact(src)
    problems += missing_content(src, src.labels) + raw_problems(src)
    refuse(problems, f"cannot bag {src.name}", src.acq / "metadata.json")
    md = src.metadata
    info.update({
        "External-Description": f"{md.study.title}. {md.study.description}"[:1000],
        "External-Identifier": f"doi:{doi}" if doi else f"{src.archive.title}/{src.name}@{(src.commit or '')[:12]}",
        "Bagging-Date": date.today().isoformat(),
        "Bag-Software-Agent": f"curation {__version__} (bagit {bagit.VERSION})",
        "Curation-Version": __version__,
        "Curation-Acquisition": src.name,
        "Curation-Commit": src.commit or "unknown",
        "Curation-Labels": ", ".join(lab.address for lab in src.labels) or "none",
        "License": md.study.license,
    })
    with staged_output(out, record) as tmp:
        stats = copy_acquisition(src, tmp / src.name)
        readme = deposit_readme(
            src, format_title="A BagIt bag (RFC 8493, sha256)", doi=doi,
            contents=(f"- `data/{src.name}/`: the acquisition as archived: `metadata.json`, `provenance/` (run "
                      f"records, checksums), `{src.name}.ome.zarr/` (OME-Zarr 0.5 with its label layers), "
                      "`raw/` when the raw files were kept.\n- `bag-info.txt`: who, what and when; "
                      "`manifest-sha256.txt`: the sha256 of every payload file."),
            check="`python -c \"import bagit; bagit.Bag('.').validate()\"` or `bagit.py --validate .`",
            provenance=f"The run records (ingest, label versions, later runs) are in `data/{src.name}/provenance/`.")
        (tmp / "README.md").write_text(readme, encoding="utf-8")
        bag = bagit.make_bag(str(tmp), bag_info=info, checksums=["sha256"], processes=min(4, os.cpu_count() or 1))
        _compare(bag, stats.digests, src.name)
        oxum = bag.info.get("Payload-Oxum", "0.0")
        n_bytes, n_files = (int(v) for v in oxum.split("."))
    return ok("package", out, f"BagIt bag of {src.name}: {n_files} payload files, {n_bytes / 1e6:.1f} MB",
              format="bagit", name=src.name, files=n_files, bytes=n_bytes, payload_oxum=oxum,
              labels=[lab.address for lab in src.labels], checksums=["sha256"], identifier=identifier_note(doi),
              dataset_commit=src.commit, archive_commit=src.archive_commit)


def _compare(bag, digests: dict[str, str], name: str) -> None:
    """The bag's manifest must agree with the digests taken while copying."""
    bad = []
    for rel, digest in digests.items():
        entry = bag.entries.get(f"data/{name}/{rel}", {})
        if entry.get("sha256") != digest:
            bad.append(rel)
    if bad:
        raise PackagingError("the bag's manifest disagrees with the copied files", field="manifest-sha256.txt",
                             expected="the digests taken while copying", found=", ".join(bad[:5]))
