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

from ..errors import PackagingError
from ..records import Result
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
    target = check_out(out, archive_root=src.archive.root)
    src = select_labels(src, labels, default=DEFAULT_LABELS[fmt_key])
    if fmt_key == "empiar":
        from .empiar import write_empiar

        return [write_empiar(src, target, empiar_schema=empiar_schema, experiment_type=experiment_type)]
    if fmt_key == "ro-crate":
        from .rocrate_export import write_rocrate

        return [write_rocrate(src, target, doi=doi, publisher=publisher)]
    if fmt_key == "bagit":
        from .bagit_export import write_bag

        return [write_bag(src, target, doi=doi)]
    from .datacite import write_datacite

    return [write_datacite(src, target, doi=doi, publisher=publisher)]


__all__ = ["FORMATS", "RunSummary", "package", "read_run_records"]
