"""Preservation copies: push the whole archive to a DataLad RIA store, and restore it.

:func:`push` runs, under the archive's write lock::

    datalad create-sibling-ria -d ARCHIVE --recursive --new-store-ok -s NAME --alias ALIAS URL
    datalad push -d ARCHIVE --to NAME --recursive --data anything

so the superdataset and every acquisition subdataset, with all annexed content, land in
the store (git history in the store's bare repositories, content in their ORA special
remotes). The superdataset gets ``ALIAS`` (default: the archive folder's name), so it can
be cloned as ``ria+file:///PATH#~ALIAS`` as well as by its dataset id.

:func:`restore` clones from the store and gets every subdataset and all content
(``datalad clone URL DEST`` then ``datalad get -r``). ``curate verify DEST`` then checks the
copy against the checksums recorded at ingest, bit for bit.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ArchiveError, InvalidNameError
from ..records import Result, notneeded, ok
from . import datalad_ops as dlo
from .archive import open_archive
from .names import check_name, derive_name

_RIA = re.compile(r"^ria\+(file|ssh|http|https)://")


def check_ria_url(url: str, *, field: str = "--to", fragment: bool = False) -> str:
    """A RIA store URL: ``ria+file:///ABSOLUTE/PATH`` (or ria+ssh, ria+http(s))."""
    text = str(url or "").strip()
    m = _RIA.match(text)
    if not m:
        raise InvalidNameError("not a RIA store URL", field=field, expected="ria+file:///PATH (or ria+ssh://HOST/PATH)",
                               found=text)
    base, _, frag = text.partition("#")
    if frag and not fragment:
        raise InvalidNameError("the store URL must not name a dataset here", field=field,
                               expected="ria+file:///PATH without #...", found=text)
    if m.group(1) == "file":
        path = base[len("ria+file://"):]
        if not path.startswith("/") or ".." in Path(path).parts:
            raise InvalidNameError("a ria+file URL needs an absolute path without '..'", field=field,
                                   expected="ria+file:///absolute/path", found=text)
    return text


@contextlib.contextmanager
def _quiet_datalad() -> Iterator[None]:
    """Silence DataLad's console UI for a call.

    ``create-sibling-ria`` runs ``siblings``, which runs a nested ``update`` with the
    default renderer: it prints "update(ok)" lines even under result_renderer="disabled".
    The UI holds its own reference to stdout, so it is swapped here; the library never prints.
    """
    from datalad.ui import ui

    backend = ui.ui
    old = getattr(backend, "out", None)
    if old is None:
        yield
        return
    backend.out = io.StringIO()
    try:
        yield
    finally:
        backend.out = old


def _dataset_id(path: Path) -> str | None:
    out = dlo.git(path, "config", "-f", ".datalad/config", "--get", "datalad.dataset.id", check=False).strip()
    return out or None


def _datasets(root: Path) -> list[dict[str, Any]]:
    """The superdataset and every installed subdataset: relative path and DataLad id."""
    out = [{"path": ".", "id": _dataset_id(root)}]
    listing = dlo.git(root, "submodule", "status", "--recursive", check=False)
    for line in listing.splitlines():
        parts = line.strip().split()
        if len(parts) >= 2:
            out.append({"path": parts[1], "id": _dataset_id(root / parts[1])})
    return out


def _half_made(root: Path, name: str) -> bool:
    """A sibling's storage remote without the sibling: a creation that was interrupted."""
    return f"{name}-storage" in dlo.git(root, "remote").split()


def _annexed_bytes(results: list[dict], root: Path) -> tuple[int, int]:
    n = size = 0
    for r in results:
        if r.get("action") == "copy" and r.get("status") == "ok" and r.get("path"):
            n += 1
            try:
                size += Path(r["path"]).stat().st_size
            except OSError:
                pass
    return n, size


def push(archive_path: Path | str, to: str, *, name: str = "ria", alias: str | None = None,
         lock_timeout: float = 0) -> list[Result]:
    """Create (once) a RIA sibling ``name`` of the archive at ``to`` and push everything to it."""
    archive = open_archive(archive_path)
    root = archive.root
    url = check_ria_url(to)
    check_name(name, what="sibling name", field="--name")
    alias = alias or derive_name(root.name)
    check_name(alias, what="store alias", field="--alias")
    dl = dlo._dl()
    records: list[Result] = []
    from .transaction import job_fingerprint, transaction

    with transaction(archive, "push", job=job_fingerprint("push", url=url, name=name, alias=alias),
                     lock_timeout=lock_timeout, purpose=f"push to {name}") as tx:
        records += tx.recovered
        dirty = [r.get("path") for r in dlo.status(root, recursive=True)]
        if dirty:
            raise ArchiveError("the archive has unsaved changes; they would not be pushed", path=root,
                               found=", ".join(os.path.relpath(p, root) for p in dirty[:5] if p),
                               hint="save or remove them first (`datalad status -r` lists them)")
        # every dataset needs the sibling: a push killed while creating them leaves some without
        lacking = [d for d in [root, *(root / d["path"] for d in _datasets(root)[1:])]
                   if name not in dlo.git(d, "remote").split()]
        if not lacking:
            records.append(notneeded("push", root, f"sibling {name!r} exists; pushing to it", sibling=name, url=url))
        else:
            with _quiet_datalad():
                dlo._call("datalad create-sibling-ria", root, dl.create_sibling_ria, url=url, name=name,
                          dataset=str(root), recursive=True, new_store_ok=True, alias=alias,
                          existing="reconfigure" if len(lacking) < len(_datasets(root)) or _half_made(root, name) else "skip")
            records.append(ok("push", root, f"created RIA sibling {name!r} (storage {name}-storage) at {url}",
                              sibling=name, storage=f"{name}-storage", url=url, alias=alias))
        with _quiet_datalad():
            res = dlo._call("datalad push", root, dl.push, dataset=str(root), to=name, recursive=True,
                            data="anything")
    datasets = _datasets(root)
    n_files, n_bytes = _annexed_bytes(res, root)
    base = url.partition("#")[0]
    clone_url = f"{base}#~{alias}"
    records.append(ok("push", root, f"pushed {len(datasets)} dataset(s) to {name!r}: {n_files} annexed file(s), "
                      f"{n_bytes / 1e6:.1f} MB transferred; clone with `datalad clone {clone_url}`",
                      sibling=name, url=url, alias=alias, clone_url=clone_url, datasets=datasets,
                      files=n_files, bytes=n_bytes, dataset_id=datasets[0]["id"],
                      id_url=f"{base}#{datasets[0]['id']}" if datasets[0]["id"] else None,
                      archive_commit=dlo.head(root)))
    return records


def restore(url: str, dest: Path | str) -> list[Result]:
    """Clone an archive from a RIA store (``ria+...#ID`` or ``#~ALIAS``) and get all of it."""
    check_ria_url(url, field="URL", fragment=True)
    if "#" not in url:
        raise InvalidNameError("say which dataset of the store to clone", field="URL",
                               expected="ria+file:///PATH#~ALIAS or ria+file:///PATH#DATASET-ID", found=url)
    target = Path(os.path.abspath(str(dest)))
    if ".." in Path(str(dest)).parts:
        raise InvalidNameError("the destination must not contain '..'", field="DEST", found=str(dest))
    if target.exists() and any(target.iterdir()):
        raise ArchiveError("the destination folder is not empty", path=target, expected="a new or empty folder")
    dl = dlo._dl()
    with _quiet_datalad():
        dlo._call("datalad clone", target, dl.clone, source=url, path=str(target))
        res = dlo._call("datalad get", target, dl.get, dataset=str(target), path=str(target), recursive=True,
                        get_data=True)
    n = size = 0
    for r in res:
        if r.get("action") == "get" and r.get("type") == "file" and r.get("status") in ("ok", "notneeded"):
            n += 1
            try:
                size += Path(r["path"]).stat().st_size
            except OSError:
                pass
    datasets = _datasets(target)
    return [ok("restore", target, f"restored {len(datasets)} dataset(s) from {url}: {n} annexed file(s), "
               f"{size / 1e6:.1f} MB", url=url, datasets=datasets, files=n, bytes=size, archive_commit=dlo.head(target))]
