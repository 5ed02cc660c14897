"""Packaging and preservation: deposition packages of an acquisition, and RIA copies.

:func:`package` writes one acquisition of an archive, with its label versions, in one
of four formats into a new folder (``--out``):

* ``empiar``: a deposition folder for the EMPIAR depositor (:mod:`.empiar`);
* ``ro-crate``: an RO-Crate with the data and its provenance as CreateActions
  (:mod:`.rocrate_export`);
* ``bagit``: a BagIt bag with sha256 manifests (:mod:`.bagit_export`);
* ``datacite``: DataCite metadata (JSON, kernel 4) for a DOI (:mod:`.datacite`).

Every format checks everything it needs first and writes nothing when something is
missing (one :class:`~curation.errors.PackagingError` lists every problem); the package
is written into a temporary folder beside ``--out`` and renamed into place at the end.

Copies of the whole archive for preservation (DataLad RIA stores) live in
:mod:`curation.repository.preservation`.

Run records of an acquisition (ingest, label versions, later runs) are read in one
normalised shape by :func:`read_run_records` (:mod:`.runrecords`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import PackagingError
from ..records import Result, notneeded
from .runrecords import RunSummary, read_run_records

FORMATS = ("empiar", "ro-crate", "bagit", "datacite")
_ALIASES = {"rocrate": "ro-crate", "ro_crate": "ro-crate", "bag": "bagit"}
#: which label versions a format takes when ``labels`` is not given
DEFAULT_LABELS = {"empiar": "latest", "ro-crate": "all", "bagit": "all", "datacite": "all"}


def package(
    archive_path: Path | str,
    name: str,
    fmt: str,
    out: Path | str,
    *,
    labels: list[str] | None = None,
    empiar_schema: str | os.PathLike[str] | None = None,
    experiment_type: int | None = None,
    doi: str | None = None,
    publisher: str | None = None,
) -> list[Result]:
    """Write acquisition ``name`` of the archive as a ``fmt`` package into the new folder ``out``.

    ``labels``: selectors ``LAYER`` (its latest version) or ``LAYER@vN``; by default EMPIAR
    takes the latest version of every layer, the other formats every version.
    ``empiar_schema``: path of EMPIAR's deposition schema to validate against as well
    (default: ``$CURATION_EMPIAR_SCHEMA``). ``experiment_type``: EMPIAR code overriding
    the one derived from the technique. ``doi``/``publisher``: for DataCite and RO-Crate.
    """
    from ..checks import doi as check_doi
    from .context import load_source, select_labels
    from .export_common import check_out

    fmt_key = _ALIASES.get(str(fmt).lower(), str(fmt).lower())
    if fmt_key not in FORMATS:
        raise PackagingError("unknown package format", field="--format", expected=", ".join(FORMATS), found=fmt)
    if doi is not None:
        doi = check_doi(doi, field="--doi", error=PackagingError)
    src = load_source(archive_path, name)
    src = select_labels(src, labels, default=DEFAULT_LABELS[fmt_key])
    record = _package_record(src, fmt_key, empiar_schema=empiar_schema, experiment_type=experiment_type, doi=doi,
                             publisher=publisher)
    done = finished_package(out, record)
    if done is not None:
        return [done]
    target = check_out(out, archive_root=src.archive.root)
    if fmt_key == "empiar":
        from .empiar import write_empiar

        return [write_empiar(src, target, empiar_schema=empiar_schema, experiment_type=experiment_type,
                             record=record)]
    if fmt_key == "ro-crate":
        from .rocrate_export import write_rocrate

        return [write_rocrate(src, target, doi=doi, publisher=publisher, record=record)]
    if fmt_key == "bagit":
        from .bagit_export import write_bag

        return [write_bag(src, target, doi=doi, record=record)]
    from .datacite import write_datacite

    return [write_datacite(src, target, doi=doi, publisher=publisher, record=record)]


def _package_record(src: Any, fmt: str, **options: Any) -> Any:
    """The record a package of ``src`` in ``fmt`` with ``options`` carries (its job fingerprint)."""
    import hashlib
    from datetime import datetime, timezone

    from ..provenance.package import PackageRecord
    from ..repository.transaction import job_fingerprint
    from .empiar_checks import official_schema_path

    schema_option = options.pop("empiar_schema")
    schema = official_schema_path(schema_option) if fmt == "empiar" else None
    try:
        schema_sha = hashlib.sha256(Path(schema).read_bytes()).hexdigest() if schema is not None else None
    except OSError:
        schema_sha = str(schema)  # refused later, with the file named
    labels = [lab.address for lab in src.labels]
    job = job_fingerprint("package", format=fmt, archive=str(src.archive.root.resolve()), acquisition=src.name,
                          commit=src.commit, labels=labels, empiar_schema=schema_sha,
                          **options)
    return PackageRecord(job=job, format=fmt, acquisition=src.name, dataset_commit=src.commit, labels=labels,
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def finished_package(out: Path | str, record: Any) -> Result | None:
    """A notneeded result when ``out`` already holds the package ``record`` describes, else None.

    A folder whose package record names another job is left to :func:`check_out` to refuse.
    """
    from ..errors import RecordError
    from ..provenance.io import read_record
    from ..provenance.package import PACKAGE_RECORD, PackageRecord

    path = Path(os.path.abspath(str(out))) / PACKAGE_RECORD
    if not path.is_file() or path.is_symlink():
        return None
    try:
        done = read_record(path, PackageRecord)
    except RecordError:
        return None
    if done.job != record.job:
        return None
    return notneeded("package", path.parent, f"{done.format} package of {done.acquisition} already written "
                     f"by the same job on {done.created}", format=done.format, name=done.acquisition,
                     labels=list(done.labels), dataset_commit=done.dataset_commit)


__all__ = ["FORMATS", "RunSummary", "package", "read_run_records"]
