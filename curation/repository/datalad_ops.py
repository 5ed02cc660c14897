"""Thin, typed wrappers around DataLad and git: every failure becomes a ToolError."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..tools import ensure_tool_path

#: metadata in git, array bytes in the annex, keyed by SHA256 (the same digests as the
#: checksums curation records, so fixity can be checked from the keys)
GITATTRIBUTES = """\
* annex.backend=SHA256E
* annex.largefiles=anything
*.json annex.largefiles=nothing
*.jsonl annex.largefiles=nothing
*.yaml annex.largefiles=nothing
*.yml annex.largefiles=nothing
*.md annex.largefiles=nothing
*.txt annex.largefiles=nothing
*.tsv annex.largefiles=nothing
*.cff annex.largefiles=nothing
.gitattributes annex.largefiles=nothing
.gitignore annex.largefiles=nothing
"""


def _dl():
    ensure_tool_path()
    os.environ.setdefault("DATALAD_LOG_LEVEL", "WARNING")
    import datalad.api as dl

    return dl


def _call(what: str, where: Path | str, fn, **kw: Any) -> list[dict]:
    from datalad.support.exceptions import CommandError, IncompleteResultsError

    try:
        res = fn(result_renderer="disabled", return_type="list", on_failure="stop", **kw)
    except IncompleteResultsError as exc:
        msgs = "; ".join(_msg(r) for r in exc.failed or [])
        raise ToolError(f"{what} failed: {msgs or exc}", path=where,
                        hint=_identity_hint(str(exc) + msgs)) from exc
    except CommandError as exc:
        raise ToolError(f"{what} failed: {exc.stderr or exc}", path=where,
                        hint=_identity_hint(str(exc))) from exc
    return res


def _msg(r: dict) -> str:
    m = r.get("message")
    if isinstance(m, tuple):
        try:
            m = m[0] % m[1:]
        except TypeError:
            m = str(m)
    return f"{r.get('path')}: {m}"


def _identity_hint(text: str) -> str | None:
    if "tell me who you are" in text or "user.email" in text:
        return "set your identity: git config --global user.name 'Your Name'; git config --global user.email you@example.org"
    return None


#: what ``datalad create`` writes and commits in a new annexed dataset (DataLad 1.x)
_DATALAD_GITATTRIBUTES = "* annex.backend=MD5E\n**/.git* annex.largefiles=nothing\n"
_DATALAD_DOT_GITATTRIBUTES = "config annex.largefiles=nothing\n"


def create_dataset(path: Path, *, description: str | None = None) -> None:
    """A standalone DataLad dataset with curation's .gitattributes (not yet saved).

    Made with git and git-annex directly, exactly as ``datalad create`` makes it (git
    init, git annex init, ``.datalad/config`` with a new dataset id, the same attributes,
    one "[DATALAD] new dataset" commit): importing DataLad's Python API alone takes about
    a second, most of a small ingest's fixed cost (issue 12). DataLad reads the result as
    its own; the tests check it with ``datalad status`` and ``save``.
    """
    import uuid

    ensure_tool_path()
    path = Path(path)
    if (path / ".git").exists():
        raise ToolError("datalad create failed: a repository already exists here", path=path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(f"cannot create the dataset folder: {exc.strerror or exc}", path=path) from exc
    git(path, "init", "-q")
    annex(path, "init", "-q", *([description] if description else []))
    (path / ".datalad").mkdir(exist_ok=True)
    (path / ".datalad" / "config").write_text(f'[datalad "dataset"]\n\tid = {uuid.uuid4()}\n')
    (path / ".datalad" / ".gitattributes").write_text(_DATALAD_DOT_GITATTRIBUTES)
    (path / ".gitattributes").write_text(_DATALAD_GITATTRIBUTES)
    git(path, "-c", "annex.gitaddtoannex=false", "add", ".datalad/.gitattributes", ".datalad/config",
        ".gitattributes")
    git(path, "commit", "-q", "-m", "[DATALAD] new dataset")
    with open(path / ".gitattributes", "a") as fh:
        fh.write(GITATTRIBUTES)


def save(dataset: Path, message: str, paths: list[Path] | None = None, *, recursive: bool = False) -> list[dict]:
    dl = _dl()
    kw: dict[str, Any] = {"dataset": str(dataset), "message": message, "recursive": recursive}
    if paths:
        kw["path"] = [str(p) for p in paths]
    return _call("datalad save", dataset, dl.save, **kw)


def status(dataset: Path, *, recursive: bool = False) -> list[dict]:
    dl = _dl()
    res = _call("datalad status", dataset, dl.status, dataset=str(dataset), recursive=recursive, annex=None)
    return [r for r in res if r.get("state") not in ("clean", None)]


def git(repo: Path, *args: str, check: bool = True) -> str:
    ensure_tool_path()
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ToolError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}",
                        path=repo, hint=_identity_hint(proc.stderr))
    return proc.stdout


def annex(repo: Path, *args: str, check: bool = True) -> str:
    from ..tools import git_annex

    proc = subprocess.run([git_annex(), *args], cwd=str(repo), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ToolError(f"git annex {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}",
                        path=repo)
    return proc.stdout


def head(repo: Path) -> str | None:
    """The commit HEAD points at, or None before the first commit.

    Read from ``.git`` directly when it is the plain layout (HEAD naming a branch whose ref
    is a loose file or in packed-refs): ``list`` and ``show`` ask for two heads per
    acquisition, and a git process each was most of their time. Anything else asks git.
    """
    fast = _head_from_files(Path(repo))
    if fast is not None:
        return fast or None
    out = git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).strip()
    return out or None


_SHA1 = frozenset("0123456789abcdef")


def _head_from_files(repo: Path) -> str | None:
    """HEAD's commit from the files ("" when the branch has no commit yet); None: ask git."""
    gitdir = repo / ".git"
    try:
        if not gitdir.is_dir():
            return None  # a gitfile or a worktree: let git resolve it
        text = (gitdir / "HEAD").read_text().strip()
        if len(text) == 40 and set(text) <= _SHA1:
            return text  # detached
        if not text.startswith("ref: refs/"):
            return None
        ref = text[5:]
        loose = gitdir / ref
        if loose.is_file():
            sha = loose.read_text().strip()
            return sha if len(sha) == 40 and set(sha) <= _SHA1 else None
        packed = gitdir / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref) and len(line) == 41 + len(ref):
                    return line[:40]
        if (gitdir / "reftable").exists() or (gitdir / "commondir").exists():
            return None
        return ""  # an unborn branch
    except (OSError, UnicodeDecodeError):
        return None


def tag(repo: Path, name: str, message: str) -> None:
    git(repo, "tag", "-a", name, "-m", message)


def reset_hard(repo: Path, commit: str) -> None:
    """Return a repository to ``commit``, dropping anything after it (rollback)."""
    git(repo, "reset", "--hard", "-q", commit)


def log(repo: Path, path: str | None = None, limit: int | None = None) -> list[dict]:
    """Commits touching ``path`` (newest first): commit, author, date, subject, body."""
    fmt = "%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1f%b%x1e"
    args = ["log", f"--format={fmt}"]
    if limit:
        args.append(f"-n{limit}")
    if path:
        args += ["--", path]
    out = git(repo, *args)
    commits = []
    for entry in out.split("\x1e"):
        entry = entry.strip("\n")
        if not entry:
            continue
        sha, an, ae, date, subj, body = (entry.split("\x1f") + [""] * 6)[:6]
        commits.append({"commit": sha, "author": an, "email": ae, "date": date,
                        "subject": subj, "body": body.strip()})
    return commits


def tags_at(repo: Path) -> dict[str, list[str]]:
    """commit -> tags pointing at it."""
    out = git(repo, "tag", "--format=%(objectname) %(*objectname) %(refname:short)", check=False)
    tags: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            tags.setdefault(parts[1], []).append(parts[2])
        elif len(parts) == 2:
            tags.setdefault(parts[0], []).append(parts[1])
    return tags


def annex_known(repo: Path, files: list[tuple[str, int, str]]) -> int:
    """Annex files whose SHA256 and size are already known, without git-annex rehashing them.

    ``files``: (path relative to ``repo``, size, sha256) of files written by curation, whose
    digests were computed from the bytes as they were written. git-annex hashes at about a
    quarter of hashlib's speed on one core, which would make saving a 4 TB ingest take hours;
    here each file is moved into the annex under its SHA256E key (the key *is* size and
    digest), linked, and recorded present, exactly as ``git annex add`` leaves it. Only
    files without an extension are taken (zarr shards), so keys need no suffix. Returns
    how many were annexed; ``git annex fsck`` and ``curate verify`` check the result.
    """
    from ..tools import git_annex

    todo = [(rel, size, sha) for rel, size, sha in files if "." not in Path(rel).name]
    if not todo:
        return 0
    keys = [f"SHA256E-s{size}--{sha}" for _rel, size, sha in todo]
    exe = git_annex()
    proc = subprocess.run([exe, "examinekey", "--batch", "--format=${objectpath}\n"], cwd=str(repo),
                          input="\n".join(keys) + "\n", capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"git annex examinekey failed: {proc.stderr.strip()}", path=repo)
    objpaths = proc.stdout.splitlines()
    if len(objpaths) != len(keys):
        raise ToolError("git annex examinekey answered for fewer keys than asked", path=repo,
                        expected=len(keys), found=len(objpaths))
    uuid = git(repo, "config", "annex.uuid").strip()
    root = Path(repo)
    for (rel, _size, _sha), objrel in zip(todo, objpaths):
        # idempotent, so an interrupted run can be finished: each file is in one of the
        # states (regular file) -> (object moved, no link) -> (link)
        src = root / rel
        obj = root / objrel
        if src.is_symlink():
            continue
        obj.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            if obj.exists():  # the same content twice, or moved by an interrupted run
                src.unlink()
            else:
                os.rename(src, obj)
                os.chmod(obj, 0o444)
        elif not obj.exists():
            raise ToolError("a file to annex is gone", path=src, hint="run `curate verify` on the archive")
        os.chmod(obj.parent, 0o555)
        os.symlink(os.path.relpath(obj, src.parent), src)
    lines = "".join(f"{k} {uuid} 1\n" for k in keys)
    proc = subprocess.run([exe, "setpresentkey", "--batch"], cwd=str(repo), input=lines,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"git annex setpresentkey failed: {proc.stderr.strip()}", path=repo)
    return len(todo)


#: lock files git leaves behind when it is killed (the archive lock guarantees no live
#: curate process holds them; they are only removed while that lock is held)
_GIT_LOCKS = ("index.lock", "HEAD.lock", "config.lock", "packed-refs.lock", "ORIG_HEAD.lock")


def clear_stale_locks(repo: Path) -> list[str]:
    """Remove lock files a killed git left in ``repo``; returns what was removed.

    Only call this while holding the archive's write lock."""
    root = Path(repo)
    gitdir = root / ".git"
    found: list[Path] = [gitdir / n for n in _GIT_LOCKS] + [root / ".gitmodules.lock"]
    refs = gitdir / "refs"
    if refs.is_dir():
        found += list(refs.rglob("*.lock"))
    removed = []
    for p in found:
        if p.exists():
            p.unlink()
            removed.append(str(p.relative_to(root)))
    return removed


def commit_paths(repo: Path, message: str, paths: list[str] | None = None) -> bool:
    """Stage ``paths`` (everything when empty) and commit if anything changed; True when a
    commit was made. Idempotent: after an interrupted run it commits what is left."""
    git(repo, "-c", "advice.addEmbeddedRepo=false", "add", "-A", "--", *(paths or ["."]))
    if subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--quiet"]).returncode == 0:
        return False
    git(repo, "commit", "-q", "-m", message)
    return True


def has_tag(repo: Path, name: str) -> bool:
    return bool(git(repo, "rev-parse", "-q", "--verify", f"refs/tags/{name}", check=False).strip())


def tag_if_missing(repo: Path, name: str, message: str) -> bool:
    if has_tag(repo, name):
        return False
    tag(repo, name, message)
    return True


def commit_all(repo: Path, message: str) -> None:
    """Stage everything and commit, in plain git (what ``datalad save`` does once every
    large file is already annexed: the rest is small metadata that belongs in git)."""
    git(repo, "add", "-A")
    if git(repo, "status", "--porcelain", check=False).strip():
        git(repo, "commit", "-q", "-m", message)


def register_subdataset(superds: Path, sub: Path, message: str) -> None:
    """Record ``sub`` (a committed DataLad dataset inside ``superds``) as a subdataset and
    commit, as ``datalad save`` does: a gitlink plus a ``.gitmodules`` entry with the
    path, a relative URL and the dataset's ``datalad-id``. Idempotent."""
    rel = Path(sub).resolve().relative_to(Path(superds).resolve()).as_posix()
    ds_id = git(sub, "config", "-f", ".datalad/config", "datalad.dataset.id").strip()
    section = f"submodule.{rel}"
    git(superds, "config", "-f", ".gitmodules", f"{section}.path", rel)
    git(superds, "config", "-f", ".gitmodules", f"{section}.url", f"./{rel}")
    git(superds, "config", "-f", ".gitmodules", f"{section}.datalad-id", ds_id)
    commit_paths(superds, message, [rel, ".gitmodules"])


def git_identity(repo: Path) -> str | None:
    """The git identity (``Name <email>``) that commits in ``repo``, or None when unset."""
    import re

    ident = git(repo, "var", "GIT_AUTHOR_IDENT", check=False).strip()
    m = re.match(r"^(.*?)\s+\d+\s+[+-]\d{4}$", ident)
    return m.group(1).strip() if m and m.group(1).strip() else None
