"""A curation archive: a DataLad superdataset with one subdataset per acquisition.

Layout::

    ARCHIVE/
      README.md                  from archive_templates/archive_README.md
      .curation/archive.json     format marker, title, creation (in git)
      .curation/lock             write lock (ignored by git)
      .curation/staging/         in-progress ingests, resumable (ignored by git)
      acquisitions/NAME/         a DataLad subdataset per acquisition
        NAME.ome.zarr/           the image (OME-Zarr 0.5); label layers under labels/
        metadata.json            validated acquisition metadata
        provenance/              ingest.json, checksums.tsv, later: labels, runs
        README.md
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import AlreadyExistsError, LockedError, NotAnArchiveError, NotFoundError
from ..records import Result, ok
from ..templates import render
from . import datalad_ops as dlo
from .names import check_name

FORMAT = "curation-archive"
FORMAT_VERSION = 1
ACQ_DIR = "acquisitions"
GITIGNORE = "/.curation/lock\n/.curation/lock.info\n/.curation/staging/\n"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Archive:
    root: Path
    config: dict

    @property
    def title(self) -> str:
        return self.config.get("title", self.root.name)

    @property
    def staging_root(self) -> Path:
        return self.root / ".curation" / "staging"

    def acquisition_path(self, name: str) -> Path:
        return self.root / ACQ_DIR / check_name(name)

    def image_path(self, name: str) -> Path:
        return self.acquisition_path(name) / f"{name}.ome.zarr"

    def require_acquisition(self, name: str) -> Path:
        path = self.acquisition_path(name)
        if not (path / "metadata.json").is_file():
            known = ", ".join(self.acquisition_names()) or "none yet"
            raise NotFoundError(f"no acquisition named {name!r} in this archive", path=self.root,
                                expected=f"one of: {known}", found=name)
        return path

    def acquisition_names(self) -> list[str]:
        base = self.root / ACQ_DIR
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "metadata.json").is_file())

    def acquisition(self, name: str):
        """The read model of acquisition ``name`` (:class:`~curation.repository.view.AcquisitionView`)."""
        from .view import AcquisitionView

        return AcquisitionView(self, name)

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.root))

    # --- the write lock -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = 0, purpose: str = "write") -> Iterator[None]:
        """Hold the archive's write lock; ``timeout`` seconds to wait (0: refuse at once).

        The lock is an OS file lock, so a killed holder releases it automatically.
        """
        from filelock import FileLock, Timeout

        lockdir = self.root / ".curation"
        lockdir.mkdir(exist_ok=True)
        info = lockdir / "lock.info"
        fl = FileLock(str(lockdir / "lock"))
        try:
            fl.acquire(timeout=timeout if timeout and timeout > 0 else 0.05)
        except Timeout:
            holder = ""
            with contextlib.suppress(OSError):
                holder = info.read_text().strip()
            raise LockedError(
                "another curate process is writing to this archive", path=self.root,
                found=holder or "a lock held by another process",
                hint="wait for it to finish, or pass --wait SECONDS to queue behind it",
            ) from None
        try:
            info.write_text(f"{purpose} by pid {os.getpid()} on {socket.gethostname()} since {now_iso()}\n")
            yield
        finally:
            with contextlib.suppress(OSError):
                info.unlink()
            fl.release()


def _templates_vars() -> dict[str, str]:
    return {"version": __version__, "created": now_iso()}


def init_archive(path: Path | str, *, title: str | None = None, description: str | None = None) -> list[Result]:
    """Create a curation archive (a DataLad superdataset) at ``path``."""
    root = Path(path).resolve()
    if (root / ".curation" / "archive.json").exists():
        raise AlreadyExistsError("a curation archive already exists here", path=root,
                                 hint="use it as it is; nothing was changed")
    if root.exists() and any(root.iterdir()):
        raise AlreadyExistsError("the folder is not empty", path=root,
                                 expected="a new or empty folder", found=f"{len(list(root.iterdir()))} entries")
    title = title or root.name
    dlo.create_dataset(root, description=title)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "title": title,
              "description": description or "", "created": now_iso(), "tool_version": __version__}
    (root / ".curation").mkdir(exist_ok=True)
    (root / ".curation" / "archive.json").write_text(json.dumps(config, indent=2) + "\n")
    (root / ".gitignore").write_text(GITIGNORE)
    (root / ACQ_DIR).mkdir(exist_ok=True)
    (root / ACQ_DIR / ".gitkeep").write_text("")
    (root / "README.md").write_text(render("archive_README.md", title=title, **_templates_vars()))
    dlo.save(root, f"Create curation archive: {title}")
    return [ok("init", root, f"created curation archive {title!r}", title=title,
               archive_commit=dlo.head(root))]


def open_archive(path: Path | str) -> Archive:
    root = Path(path).resolve()
    marker = root / ".curation" / "archive.json"
    if not marker.is_file():
        raise NotAnArchiveError("not a curation archive", path=root,
                                expected=".curation/archive.json", found="nothing",
                                hint="create one with `curate init PATH`")
    try:
        config = json.loads(marker.read_text())
    except json.JSONDecodeError as exc:
        raise NotAnArchiveError(f"archive marker is not valid JSON ({exc.msg})", path=marker) from exc
    if config.get("format") != FORMAT:
        raise NotAnArchiveError("not a curation archive", path=marker,
                                expected=FORMAT, found=config.get("format"))
    return Archive(root, config)


# --- describing what is there ------------------------------------------------------------


def list_acquisitions(path: Path | str) -> list[Result]:
    archive = open_archive(path)
    out = []
    for name in archive.acquisition_names():
        d = archive.acquisition(name).summary()
        vox = " x ".join(f"{v:.4g}" for v in d["voxel_size_nm"])
        out.append(ok("list", d["path"], f"{name}: {d['technique'] or '?'} {' x '.join(map(str, d['shape']))} "
                      f"{d['dtype']} at {vox} nm, {len(d['labels'])} label version(s)", **d))
    return out


def show_acquisition(path: Path | str, name: str) -> list[Result]:
    archive = open_archive(path)
    d = archive.acquisition(name).summary()
    return [ok("show", d["path"], f"{name}", **d)]


def acquisition_log(path: Path | str, name: str, limit: int | None = None) -> list[Result]:
    """History of an acquisition: its dataset's commits (with tags) and the archive's."""
    archive = open_archive(path)
    acq = archive.require_acquisition(name)
    tags = dlo.tags_at(acq)
    out = []
    for c in dlo.log(acq, limit=limit):
        out.append(ok("log", archive.relative(acq), f"{c['date']} {c['commit'][:10]} {c['subject']}",
                      dataset=name, tags=tags.get(c["commit"], []), **c))
    return out

