"""Tree checksums of an OME-Zarr folder.

At ingest the checksum costs time proportional to the number of shards: every shard's
sha256 was computed from the bytes as they were written, so only the small ``zarr.json``
files are read. The entries (relative path, size, sha256) are kept in
``provenance/checksums.tsv``; the tree checksum is the sha256 of those lines, sorted.
``verify`` recomputes the entries from disk and compares.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import RecordError
from .writer import ShardRecord

_HEADER = "path\tsize\tsha256"


class ChecksumRow(BaseModel):
    """One row of a checksum manifest (the schema of ``checksums.tsv``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str = Field(pattern=r"^[^/\t\n][^\t\n]*$", description="relative to the OME-Zarr root, '/'-separated, "
                      "no '..' part")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str) -> str:
        if ".." in v.split("/"):
            raise ValueError("a path leaving the OME-Zarr root")
        return v


@dataclass(frozen=True, order=True)
class Entry:
    path: str  # relative to the OME-Zarr root, '/'-separated
    size: int
    sha256: str

    def line(self) -> str:
        return f"{self.path}\t{self.size}\t{self.sha256}"


def sha256_file(path: Path, bufsize: int = 8 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def entries_from_records(root: Path, shards: Iterable[ShardRecord], prefix: str = "") -> list[Entry]:
    """Entries for a freshly written tree: shard digests from the writer, metadata read."""
    out = [Entry(f"{prefix}{s.key}", s.nbytes, s.sha256) for s in shards if s.nbytes and s.sha256]
    base = Path(root)
    for dirpath, _dirs, files in os.walk(base):
        if "zarr.json" in files:
            p = Path(dirpath) / "zarr.json"
            rel = p.relative_to(base).as_posix()
            out.append(Entry(f"{prefix}{rel}", p.stat().st_size, sha256_file(p)))
    return sorted(out)


def scan(root: Path, *, hash_content: bool = True) -> list[Entry]:
    """Entries for every file under ``root`` as it is on disk (follows annex symlinks)."""
    base = Path(root)
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            p = Path(dirpath) / name
            rel = p.relative_to(base).as_posix()
            try:
                size = p.stat().st_size
                digest = sha256_file(p) if hash_content else ""
            except FileNotFoundError:  # a dangling annex link: content not present
                size, digest = -1, ""
            out.append(Entry(rel, size, digest))
    return sorted(out)


def tree_checksum(entries: Iterable[Entry]) -> str:
    h = hashlib.sha256()
    for e in sorted(entries):
        h.update((e.line() + "\n").encode())
    return h.hexdigest()


def write_tsv(path: Path, entries: Iterable[Entry]) -> None:
    lines = [_HEADER] + [e.line() for e in sorted(entries)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_tsv(path: Path) -> list[Entry]:
    """The rows of a checksum manifest, each checked (RecordError names the line)."""
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0] != _HEADER:
        raise RecordError("not a checksum manifest", path=path, field="line 1", expected=_HEADER,
                          found=lines[0][:60] if lines else "an empty file")
    out = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 3:
                raise ValueError(f"{len(parts)} columns")
            row = ChecksumRow(path=parts[0], size=int(parts[1]), sha256=parts[2])
        except ValueError as exc:
            raise RecordError(f"a malformed checksum row: {' '.join(str(exc).split())[:120]}", path=path,
                              field=f"line {n}", expected="PATH<TAB>SIZE<TAB>SHA256", found=line[:80]) from exc
        out.append(Entry(row.path, row.size, row.sha256))
    return out

