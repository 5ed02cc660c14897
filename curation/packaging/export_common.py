"""What every package format shares: safe output folders, copies, TIFF stacks, manifests.

* :func:`staged_output` writes a package into a temporary folder beside ``--out`` and
  renames it into place only when everything succeeded; on any error the temporary
  folder is removed, so a refused or failed package leaves nothing behind.
* :func:`safe_join` is the only way a relative name becomes a path inside a package:
  absolute names, ``..`` and names that resolve outside the package are refused.
* :func:`copy_verified` copies a file (following git-annex symlinks to their content)
  and hashes it on the way; :func:`copy_tree` copies a folder of the archive, refusing
  symlinks that point outside it.
* :func:`export_tiff_stack` writes level 0 of an OME-Zarr multiscale image as one TIFF
  per z slice, reading slabs of whole slices whose depth is bounded by a memory budget.
* :func:`write_manifest` writes ``manifest-sha256.txt`` in the ``sha256sum -c`` format.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InvalidNameError, PackagingError

MANIFEST = "manifest-sha256.txt"
#: default memory budget of a TIFF export: the slab of whole z slices read at once
TIFF_SLAB_BYTES = 256 * 1024**2
_BUF = 8 * 1024 * 1024


# --- findings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a package cannot be written: the field, what is wrong, what was found."""

    field: str
    message: str
    expected: Any = None
    found: Any = None

    def one_line(self) -> str:
        text = f"{self.field}: {self.message}"
        if self.expected is not None or self.found is not None:
            fnd = "nothing" if self.found is None else repr(self.found) if isinstance(self.found, str) \
                else str(self.found)
            text += f" (expected {self.expected}, found {fnd})" if self.expected is not None else f" (found {fnd})"
        return " ".join(text.split())


def refuse(problems: list[Problem], what: str, path: str | Path | None = None) -> None:
    """Raise one PackagingError listing every problem (``.errors`` holds them); no-op if none."""
    if not problems:
        return
    n = len(problems)
    head = f"{what}: {n} problem{'s' if n > 1 else ''}"
    err = PackagingError(f"{head}: " + "; ".join(p.one_line() for p in problems), path=path,
                         hint="fix the acquisition metadata (see `curate metadata check`) and package again")
    err.errors = list(problems)  # type: ignore[attr-defined]
    raise err


# --- names and output folders ------------------------------------------------------------


def safe_relpath(rel: str | PurePosixPath, *, field: str = "name") -> PurePosixPath:
    """A relative, '/'-separated path without ``..``, empty or absolute parts."""
    text = str(rel)
    p = PurePosixPath(text)
    if not text or p.is_absolute() or text.startswith("\\") or ":" in p.parts[0] \
            or any(part in ("..", "") for part in text.split("/")) or "\\" in text \
            or "\x00" in text or "\n" in text:
        raise InvalidNameError("a name inside a package must be a plain relative path, without '..'",
                               field=field, expected="a relative path such as data/raw/slice.tif", found=text)
    return p


def safe_join(root: Path, rel: str | PurePosixPath, *, field: str = "name") -> Path:
    """``root / rel``, refusing anything that would land outside ``root``."""
    p = safe_relpath(rel, field=field)
    target = Path(root) / Path(*p.parts)
    base = Path(root).resolve()
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidNameError("the name would escape the package folder", field=field,
                               expected=f"a path inside {base}", found=str(rel))
    return target


def check_out(out: str | Path, *, archive_root: Path | None = None) -> Path:
    """Validate ``--out``: no ``..``, not a symlink, not inside the archive, absent or empty."""
    try:
        return _check_out(out, archive_root)
    except OSError as exc:
        raise PackagingError(f"cannot use the output folder: {exc.strerror or exc}", path=out, field="--out",
                             expected="a new or empty folder you may write") from None


def _check_out(out: str | Path, archive_root: Path | None) -> Path:
    text = str(out)
    if not text:
        raise InvalidNameError("an output folder is required", field="--out", found=text)
    if ".." in Path(text).parts:
        raise InvalidNameError("the output folder must not contain '..'", field="--out",
                               expected="a path without '..' components", found=text)
    path = Path(os.path.abspath(text))
    if path.is_symlink():
        raise InvalidNameError("the output folder is a symbolic link", field="--out",
                               expected="a real folder", found=f"{path} -> {os.readlink(path)}")
    if archive_root is not None:
        root = Path(archive_root).resolve()
        rp = path.resolve()
        if rp == root or root in rp.parents:
            raise InvalidNameError("the output folder lies inside the archive", field="--out",
                                   expected=f"a folder outside {root}", found=str(path))
    if path.exists():
        if not path.is_dir():
            raise PackagingError("the output path exists and is not a folder", path=path, field="--out",
                                 expected="a new or empty folder", found="a file")
        entries = list(path.iterdir())
        if entries:
            raise PackagingError("the output folder is not empty; packages are never written over "
                                 "existing files", path=path, field="--out",
                                 expected="a new or empty folder", found=f"{len(entries)} entries")
    if not path.parent.is_dir():
        raise PackagingError("the parent of the output folder does not exist", path=path.parent,
                             field="--out", expected="an existing folder", found="nothing")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_leftovers(out: Path) -> list[Path]:
    """Remove ``.NAME.pPID.*.partial`` folders beside ``out`` left by a package run that was
    killed (its process no longer exists); a live run's folder and anything else are kept."""
    removed = []
    prefix = f".{out.name}.p"
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".partial")) or entry.is_symlink() or not entry.is_dir():
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def staged_output(out: Path, record: Any = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; rename it to ``out`` on success, else remove it.

    The folder is named ``.NAME.pPID.XXXX.partial``: a run killed mid-write leaves it behind,
    and the next run for the same ``out`` removes it (:func:`remove_leftovers`). ``record``
    (a :class:`~curation.provenance.package.PackageRecord`) is written into the folder just
    before the rename, so a package folder always holds its record."""
    remove_leftovers(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.p{os.getpid()}.", suffix=".partial", dir=out.parent))
    except OSError as exc:
        raise PackagingError(f"cannot write beside the output folder, in {out.parent}: {exc.strerror or exc}",
                             path=out, field="--out", hint="give a folder on a writable file system") from None
    try:
        yield tmp
        if record is not None:
            from ..provenance.io import write_record
            from ..provenance.package import PACKAGE_RECORD

            write_record(tmp / PACKAGE_RECORD, record)
        if out.exists():
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                raise PackagingError("the output folder appeared while packaging and is not empty",
                                     path=out, field="--out", expected="a new or empty folder")
        os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        where = exc.filename or out
        raise PackagingError(f"cannot write the package: {exc.strerror or exc}", path=where, field="--out",
                             hint="check the free space and permissions of the output folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise



# --- copies --------------------------------------------------------------------------------


def _readable(src: Path, what: str) -> None:
    if src.is_symlink() and not src.exists():
        raise PackagingError("file content is not present here (a git-annex link without its content)",
                             path=src, field=what, hint="run `datalad get` on the archive first")


def copy_verified(src: Path, dst: Path, *, sha256: str | None = None, size: int | None = None,
                  what: str = "file") -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (content, not links), hashing it; check it against the record.

    Returns (bytes, sha256). Raises PackagingError when the content differs from the record.
    """
    _readable(src, what)
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_BUF):
            h.update(chunk)
            fout.write(chunk)
            n += len(chunk)
    digest = h.hexdigest()
    if (sha256 and digest != sha256) or (size is not None and n != size):
        raise PackagingError("file content differs from what was recorded", path=src, field=what,
                             expected=f"{size} bytes, sha256 {sha256}", found=f"{n} bytes, sha256 {digest}")
    return n, digest


def check_link(path: Path, inside: Path) -> None:
    """Refuse a symbolic link whose target lies outside ``inside`` (annex links stay inside)."""
    if not path.is_symlink():
        return
    base = Path(inside).resolve()
    target = path.resolve()
    if target != base and base not in target.parents:
        raise PackagingError("a symbolic link points outside the archive; it is not packaged",
                             path=path, field="symlink", expected=f"a target inside {base}",
                             found=os.readlink(path))


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def add(self, rel: str, n: int, digest: str) -> None:
        self.files += 1
        self.bytes += n
        self.digests[rel] = digest


def copy_tree(src: Path, dst: Path, *, inside: Path, skip: Callable[[str], bool] | None = None,
              recorded: dict[str, tuple[int, str]] | None = None, stats: CopyStats | None = None,
              prefix: str = "") -> CopyStats:
    """Copy the files of ``src`` into ``dst``, dereferencing annex links, checking records.

    ``skip(rel)`` leaves a relative path (file or folder) out; ``recorded`` maps relative
    paths to (size, sha256) to check on the way; ``prefix`` is prepended to the keys of
    ``stats.digests``. Symlinks pointing outside ``inside`` are refused.
    """
    stats = stats or CopyStats()
    recorded = recorded or {}
    src = Path(src)
    for dirpath, dirs, files in os.walk(src):
        here = Path(dirpath)
        rel_dir = here.relative_to(src).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirs):
            p = here / d
            if skip and skip(rel_dir + d):
                continue
            if p.is_symlink():
                raise PackagingError("a folder in the archive is a symbolic link; it is not packaged",
                                     path=p, field="symlink", found=os.readlink(p))
            keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            rel = rel_dir + name
            if skip and skip(rel):
                continue
            p = here / name
            check_link(p, inside)
            size, digest = recorded.get(rel, (None, None))
            n, got = copy_verified(p, safe_join(dst, rel), sha256=digest, size=size, what=prefix + rel)
            stats.add(prefix + rel, n, got)
    return stats


def folder_stats(path: Path) -> tuple[int, int]:
    """(number of files, bytes) under ``path`` (links followed)."""
    n = size = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            n += 1
            size += (Path(dirpath) / name).stat().st_size
    return n, size


# --- TIFF stacks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TiffStack:
    folder: str  # relative to the package root
    files: list[str]
    shape: tuple[int, int, int]
    dtype: str
    bytes: int
    digests: dict[str, str]


def multiscale_level0(group: Path) -> tuple[str, list[float]]:
    """Path of level 0 of the multiscale image in ``group`` and its (z, y, x) scale in nm."""
    try:
        attrs = json.loads((group / "zarr.json").read_text()).get("attributes", {})
        ms = attrs["ome"]["multiscales"][0]
        ds = ms["datasets"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise PackagingError("not an OME-Zarr multiscale image", path=group, field="ome.multiscales",
                             expected="a multiscales entry with datasets", found=type(exc).__name__) from exc
    scale = next((t["scale"] for t in ds.get("coordinateTransformations", []) if t.get("type") == "scale"),
                 [1.0, 1.0, 1.0])
    return str(ds["path"]), [float(s) for s in scale]


def export_tiff_stack(group: Path, dest_root: Path, folder: str, stem: str, *,
                      slab_bytes: int = TIFF_SLAB_BYTES, description: str = "",
                      software: str = "curation") -> TiffStack:
    """Write level 0 of the OME-Zarr image ``group`` as ``folder/STEM_zNNNN.tif``, one per slice.

    Reads slabs of whole z slices; a slab is one inner chunk deep when that fits in
    ``slab_bytes`` (each chunk is decoded once), else as many slices as fit (at least one).
    """
    import numpy as np
    import tifffile
    import zarr

    level, scale = multiscale_level0(group)
    arr = zarr.open_array(str(group / level), mode="r")
    if arr.ndim != 3:
        raise PackagingError("only 3D (z, y, x) images are exported as TIFF stacks", path=group,
                             field="shape", expected="3 axes", found=arr.shape)
    nz, ny, nx = (int(s) for s in arr.shape)
    slice_bytes = max(1, ny * nx * arr.dtype.itemsize)
    chunk_z = int(arr.chunks[0]) if arr.chunks else 1
    depth = max(1, min(chunk_z, slab_bytes // slice_bytes, nz))
    width = max(4, len(str(nz - 1)))
    out_dir = safe_join(dest_root, folder, field="folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    z_nm, y_nm, x_nm = (scale + [1.0, 1.0, 1.0])[:3]
    res = (1e7 / x_nm, 1e7 / y_nm)  # pixels per centimetre
    files, digests, total = [], {}, 0
    for z0 in range(0, nz, depth):
        slab = np.asarray(arr[z0:min(nz, z0 + depth)])
        for k in range(slab.shape[0]):
            z = z0 + k
            name = f"{stem}_z{z:0{width}d}.tif"
            rel = f"{folder}/{name}"
            path = safe_join(dest_root, rel, field="file")
            tifffile.imwrite(path, slab[k], photometric="minisblack", resolution=res,
                             resolutionunit="CENTIMETER", metadata=None, software=software,
                             description=f"{description} z={z} ({z * z_nm:g} nm)".strip())
            files.append(rel)
            digests[rel] = sha256_file(path)
            total += path.stat().st_size
        del slab
    return TiffStack(folder, files, (nz, ny, nx), str(arr.dtype), total, digests)


# --- fixity ----------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_BUF):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(root: Path, known: dict[str, str] | None = None, name: str = MANIFEST) -> tuple[int, int]:
    """Write ``root/name`` listing every file under ``root`` (``sha256sum -c`` format).

    ``known`` maps relative paths to digests already computed while writing them; other
    files are hashed now. Returns (files, bytes).
    """
    known = known or {}
    lines, n, size = [], 0, 0
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            p = Path(dirpath) / fname
            rel = p.relative_to(root).as_posix()
            if rel == name:
                continue
            safe_relpath(rel, field="file")
            digest = known.get(rel) or sha256_file(p)
            lines.append(f"{digest}  {rel}")
            n += 1
            size += p.stat().st_size
    (root / name).write_text("\n".join(sorted(lines, key=lambda s: s[66:])) + "\n")
    return n, size


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: Any) -> str:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compress_ranges(values: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    vals = sorted(set(int(v) for v in values))
    out, start, prev = [], None, None
    for v in vals:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = v
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(out)
