"""The package record: ``.curation-package.json`` at the root of every package.

A package is written into a temporary folder and renamed into place as its last act
(:func:`curation.packaging.export_common.staged_output`); the record is written into that
folder just before the rename, so a package folder either holds the whole package and
its record or does not exist. The record's ``job`` is the fingerprint of the request
(format, acquisition commit, label versions, options): the same command again finds the
record, compares the fingerprint, and answers "notneeded" instead of "--out not empty",
also when the first run was killed right after its rename.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Record

#: the record's file name inside a package (hidden: not part of any manifest)
PACKAGE_RECORD = ".curation-package.json"


class PackageRecord(Record):
    schema_key: Literal["PackageRecord"] = "PackageRecord"
    #: fingerprint of the request: the same command on the same archive state is the same job
    job: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: str
    acquisition: str
    #: the acquisition dataset's commit the package was made from (as ``show`` and ``ingest`` name it)
    dataset_commit: str | None = None
    labels: list[str] = Field(default_factory=list)
    created: str
