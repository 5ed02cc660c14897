"""The journal of a write transaction (``.curation/staging/journal/ID.json``).

Written, fsynced, before the first change to the archive; rewritten after every step;
deleted when the transaction is done. A command that finds one finishes it (each step
is idempotent, and ``completed`` says where to resume) or, if that fails, undoes it.
See :mod:`curation.repository.transaction`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue

from .base import Part, Record


class Move(Part):
    """Rename ``source`` to ``target`` (paths relative to the archive root); a folder or a
    file; ``replace`` allows an existing file target to be replaced atomically."""

    op: Literal["move"] = "move"
    source: str
    target: str
    replace: bool = False


class AnnexKnown(Part):
    """Annex the files a checksum list names, under keys made from their recorded sha256."""

    op: Literal["annex-known"] = "annex-known"
    repo: str
    checksums: str  # the checksums.tsv, relative to the archive root
    prefix: str = ""  # prefix of the listed paths inside ``repo``


class AnnexAdd(Part):
    """``git annex add`` (files whose digests curation did not compute, e.g. raw copies)."""

    op: Literal["annex-add"] = "annex-add"
    repo: str
    paths: list[str]


class Commit(Part):
    """Stage ``paths`` (all when empty) in ``repo`` and commit when anything changed."""

    op: Literal["commit"] = "commit"
    repo: str
    paths: list[str] = Field(default_factory=list)
    message: str


class Tag(Part):
    op: Literal["tag"] = "tag"
    repo: str
    name: str
    message: str


class Register(Part):
    """Record ``sub`` as a DataLad subdataset of ``repo`` and commit."""

    op: Literal["register"] = "register"
    repo: str
    sub: str
    message: str


class Remove(Part):
    op: Literal["remove"] = "remove"
    path: str


Step = Annotated[Move | AnnexKnown | AnnexAdd | Commit | Tag | Register | Remove, Field(discriminator="op")]


class Journal(Record):
    schema_key: Literal["Journal"] = "Journal"
    id: str
    #: fingerprint of the job: the same command on the same inputs has the same job
    job: str
    action: str
    acquisition: str | None = None
    created: str
    pid: int
    host: str
    #: HEAD of every repository the steps change, before the first step (for rollback)
    before: dict[str, str | None] = Field(default_factory=dict)
    steps: list[Step]
    #: how many steps are done
    completed: int = 0
    #: the result record to report once done (also to a re-run of the same job)
    result: dict[str, JsonValue] = Field(default_factory=dict)
