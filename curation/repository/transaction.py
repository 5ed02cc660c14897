"""One write transaction: everything that changes an archive goes through here.

A write has two phases.

**Build** (resumable, touches nothing the archive tracks): under the archive's lock,
data is written into ``.curation/staging/KEY/`` (ignored by git). A pyramid writer keeps
a manifest there, so a re-run of the same job continues where a crash stopped it.

**Apply** (idempotent, journaled): the changes to the archive are a list of steps
(:mod:`curation.provenance.journal`): move staged files into place, annex them under
their known keys, commit, tag, register a new subdataset, remove the staging. The
journal, fsynced, lists them before the first one runs and counts those done after
each. Every step can be run again after being interrupted at any instant: a move whose
source is gone is done, a commit with nothing staged is done, a tag that exists is
done, git's lock files left by a killed git are cleared (the archive lock says no other
curate process is writing).

Recovery: every command that writes opens a transaction, which first finishes any
journal it finds (and reports it with an ``action: recover`` record). If the finished
job is the one the command was asked to do (same ``job`` fingerprint), the command
reports that result instead of doing the work again, so a re-run after ``kill -9``
always converges to what an uninterrupted run gives. If a step fails for a real
reason (a git error, a full disk) the transaction is undone: repositories reset to the
heads recorded before, tags deleted, moved data put back into staging for a resume.

For tests, :func:`checkpoint` kills the process (SIGKILL) at a named step boundary
when ``CURATION_KILL_AT`` names it, and appends every boundary it passes to the file
``CURATION_TRACE_STEPS`` names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CurationError, RecordError, TransactionError
from ..omezarr.writer import remove_tree
from ..provenance import read_record, write_record
from ..provenance.journal import AnnexAdd, AnnexKnown, Commit, Journal, Move, Register, Remove, Step, Tag
from ..records import Result, Status, ok
from . import datalad_ops as dlo
from .archive import Archive, now_iso

JOURNAL_DIR = "journal"


# --- test hooks ---------------------------------------------------------------------------------

_PASSED: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """A step boundary: recorded when ``CURATION_TRACE_STEPS`` is set, and the process is
    killed here when ``CURATION_KILL_AT`` equals ``name`` (or ``name#k`` for its k-th pass)."""
    count = _PASSED[name] = _PASSED.get(name, 0) + 1
    trace = os.environ.get("CURATION_TRACE_STEPS")
    if trace:
        with open(trace, "a") as fh:
            fh.write(f"{name}#{count}\n")
    target = os.environ.get("CURATION_KILL_AT")
    if target and target in (name, f"{name}#{count}"):
        os.kill(os.getpid(), signal.SIGKILL)


def job_fingerprint(action: str, **parts: Any) -> str:
    """A stable digest of what a command was asked to do (its inputs and parameters)."""
    text = json.dumps({"action": action, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_stamps(paths: Sequence[Path | str]) -> list[list[Any]]:
    """(path, size, mtime) of input files: cheap evidence that inputs did not change."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([str(p), st.st_size, int(st.st_mtime)])
        except OSError:
            out.append([str(p), None, None])
    return out


# --- what a write changes -------------------------------------------------------------------------


@dataclass
class Changes:
    """What one write changes in one dataset of the archive (an acquisition, ``models``):
    staged files to move into it, annexing, the paths to commit, tags, and the staging to
    remove. Several writers' changes to the same dataset merge into one commit (a
    prediction's label versions and its run record; an analysis's instance layer and its
    tables); :meth:`steps` gives the journal's steps: move, annex, commit and tag the
    dataset, then commit and tag the archive, then tidy."""

    dataset: str  # relative to the archive root
    message: str = ""
    moves: list[Move] = field(default_factory=list)
    annex: list[AnnexKnown | AnnexAdd] = field(default_factory=list)
    #: paths to commit, relative to the dataset (empty: everything)
    paths: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    #: the archive's commit message (default: the first line of ``message``); a prediction
    #: puts its DataLad run record here, so `datalad rerun` in the archive repeats it
    archive_message: str = ""

    def move(self, source: str, target: str, *, replace: bool = False) -> None:
        self.moves.append(Move(source=source, target=target, replace=replace))

    def merge(self, other: "Changes") -> "Changes":
        if other.dataset != self.dataset:
            raise TransactionError("changes to two datasets cannot share a commit", found=other.dataset,
                                   expected=self.dataset)
        return Changes(self.dataset, self.message or other.message, self.moves + other.moves,
                       self.annex + other.annex, sorted(set(self.paths) | set(other.paths)),
                       self.tags + [t for t in other.tags if t not in self.tags],
                       self.cleanup + [c for c in other.cleanup if c not in self.cleanup],
                       self.archive_message or other.archive_message)

    def steps(self) -> list[Step]:
        out: list[Step] = [*self.moves, *self.annex,
                           Commit(repo=self.dataset, paths=list(self.paths), message=self.message)]
        out += [Tag(repo=self.dataset, name=t, message=self.message) for t in self.tags]
        out.append(Commit(repo=".", paths=[self.dataset],
                          message=self.archive_message or self.message.splitlines()[0]))
        out += [Tag(repo=".", name=t, message=self.message) for t in self.tags]
        out += [Remove(path=c) for c in self.cleanup]
        return out


# --- the transaction ------------------------------------------------------------------------------


@dataclass
class Transaction:
    archive: Archive
    action: str
    job: str
    acquisition: str | None = None
    #: records of interrupted transactions this one finished or undid
    recovered: list[Result] = field(default_factory=list)
    #: the result of this very job, when an interrupted run of it was just finished
    finished: Result | None = None

    @property
    def root(self) -> Path:
        return self.archive.root

    def staging(self, key: str) -> Path:
        """The staging folder for ``key`` (created); kept across crashes for a resume."""
        path = self.archive.staging_root / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def rel(self, path: Path | str) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    # --- apply -----------------------------------------------------------------------------------

    def apply(self, steps: list[Step], result: Result) -> Result:
        """Journal ``steps``, run them, and return ``result`` (see the module docstring)."""
        repos = sorted({s.repo for s in steps if hasattr(s, "repo")})
        journal = Journal(
            id=f"{now_iso().replace(':', '')}-{uuid.uuid4().hex[:8]}", job=self.job, action=self.action,
            acquisition=self.acquisition, created=now_iso(), pid=os.getpid(), host=socket.gethostname(),
            before={r: dlo.head(self.root / r) if (self.root / r / ".git").exists() else None for r in repos},
            steps=list(steps), result=result.to_json(),
        )
        path = _journal_dir(self.archive) / f"{journal.id}.json"
        write_record(path, journal)
        checkpoint("journal")
        try:
            run_steps(self.archive, journal, path)
        except Exception as exc:
            _undo(self.archive, journal, path)
            cause = exc.one_line() if isinstance(exc, CurationError) else f"{type(exc).__name__}: {exc}"
            raise TransactionError(f"the {self.action} could not be committed and was undone, the archive is as "
                                   f"it was: {cause}", path=self.root) from exc
        return result


@contextlib.contextmanager
def transaction(archive: Archive, action: str, *, job: str, acquisition: str | None = None,
                lock_timeout: float = 0, purpose: str | None = None) -> Iterator[Transaction]:
    """Hold the archive lock, finish interrupted transactions, and yield a Transaction."""
    with archive.lock(lock_timeout, purpose=purpose or action):
        tx = Transaction(archive, action, job, acquisition)
        for rec, journal in recover(archive):
            tx.recovered.append(rec)
            if journal.job == job and rec.status == Status.ok and journal.result:
                tx.finished = Result.model_validate(journal.result).model_copy(
                    update={"message": f"{journal.result.get('message', '')} (finished an interrupted run)"})
        try:
            yield tx
        finally:
            _tidy(archive)


def _tidy(archive: Archive) -> None:
    """Remove the journal folder and the staging root when nothing is left in them."""
    for folder in (_journal_dir(archive), archive.staging_root):
        with contextlib.suppress(OSError):
            folder.rmdir()


def recover(archive: Archive) -> list[tuple[Result, Journal]]:
    """Finish (or, failing that, undo) every interrupted transaction. Call under the lock."""
    folder = archive.staging_root / JOURNAL_DIR
    if not folder.is_dir():
        return []
    # a journal being written when its writer was killed (write_record's temporary file):
    # under the lock nobody else writes here, so it is a leftover; its journal never existed
    for tmp in folder.glob(".*.partial"):
        with contextlib.suppress(OSError):
            tmp.unlink()
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            journal = read_record(path, Journal)
        except RecordError as exc:
            raise TransactionError(f"an interrupted write left a journal that cannot be read: {exc.message}",
                                   path=path, hint="inspect it; remove it only after checking the archive "
                                   "with `curate verify`") from exc
        what = f"{journal.action}" + (f" of {journal.acquisition}" if journal.acquisition else "")
        try:
            run_steps(archive, journal, path)
            out.append((ok("recover", archive.root, f"finished an interrupted {what} "
                           f"(from step {journal.completed + 1} of {len(journal.steps)})",
                           job=journal.job, journal=journal.id, action_recovered=journal.action), journal))
        except Exception as exc:  # noqa: BLE001 - any failure: undo instead
            try:
                _undo(archive, journal, path)
            except Exception as exc2:  # noqa: BLE001
                raise TransactionError(f"an interrupted {what} can be neither finished ({exc}) nor undone ({exc2})",
                                       path=path, hint="restore the archive from a copy or fix it by hand; "
                                       "the journal lists every step") from exc2
            from ..records import error

            out.append((error("recover", archive.root, f"undid an interrupted {what}: it could not be finished "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})", job=journal.job,
                              journal=journal.id), journal))
    return out


def _journal_dir(archive: Archive) -> Path:
    return archive.staging_root / JOURNAL_DIR


# --- steps ---------------------------------------------------------------------------------------


def run_steps(archive: Archive, journal: Journal, path: Path) -> None:
    """Run the steps not yet done; each is idempotent; the journal counts them."""
    root = archive.root
    for repo in journal.before:
        if (root / repo / ".git").exists():
            dlo.clear_stale_locks(root / repo)
    done = journal.completed
    for i in range(done, len(journal.steps)):
        step = journal.steps[i]
        checkpoint(f"step-{i}-{step.op}")
        _run(root, step)
        journal = journal.model_copy(update={"completed": i + 1})
        write_record(path, journal)
    checkpoint("steps-done")
    path.unlink(missing_ok=True)


def _run(root: Path, step: Step) -> None:
    if isinstance(step, Move):
        src, dst = root / step.source, root / step.target
        if src.exists() or src.is_symlink():
            if dst.exists() and not step.replace:
                raise TransactionError("the target of a move is already there", path=dst,
                                       expected="a new path", found="an existing one")
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        elif not (dst.exists() or dst.is_symlink()):
            raise TransactionError("staged data to move is gone", path=src, expected=f"it, or {step.target}")
    elif isinstance(step, AnnexKnown):
        from ..omezarr import checksum as cks

        entries = cks.read_tsv(root / step.checksums)
        dlo.annex_known(root / step.repo, [(f"{step.prefix}{e.path}", e.size, e.sha256) for e in entries])
    elif isinstance(step, AnnexAdd):
        dlo.clear_stale_locks(root / step.repo)
        dlo.annex(root / step.repo, "add", "--quiet", "--", *step.paths)
    elif isinstance(step, Commit):
        dlo.clear_stale_locks(root / step.repo)
        dlo.commit_paths(root / step.repo, step.message, step.paths)
    elif isinstance(step, Tag):
        dlo.tag_if_missing(root / step.repo, step.name, step.message)
    elif isinstance(step, Register):
        dlo.clear_stale_locks(root / step.repo)
        dlo.register_subdataset(root / step.repo, root / step.sub, step.message)
    elif isinstance(step, Remove):
        remove_tree(root / step.path)
    else:  # pragma: no cover - the journal model admits nothing else
        raise TransactionError(f"unknown step {step!r}")


def _undo(archive: Archive, journal: Journal, path: Path) -> None:
    """Put the archive back as it was before ``journal``'s first step (best effort per
    part; the first failure is raised after every part was tried)."""
    root = archive.root
    failures: list[Exception] = []

    def attempt(fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    for step in journal.steps:
        if isinstance(step, Tag) and (root / step.repo / ".git").exists():
            attempt(lambda s=step: dlo.git(root / s.repo, "tag", "-d", s.name, check=False))
    for repo, head in journal.before.items():
        if head and (root / repo / ".git").exists():
            attempt(dlo.clear_stale_locks, root / repo)
            attempt(dlo.reset_hard, root / repo, head)
    dropped = False
    for step in reversed(journal.steps):
        if isinstance(step, Move) and not step.replace:
            src, dst = root / step.source, root / step.target
            if src.exists() or src.is_symlink():
                continue  # never moved
            if (dst / ".git").exists():  # a whole dataset: back to staging, for a resume
                src.parent.mkdir(parents=True, exist_ok=True)
                attempt(os.rename, dst, src)
            else:  # files annexed in place no longer stand alone: drop them and rebuild
                if dst.exists() or dst.is_symlink():
                    attempt(remove_tree, dst) if dst.is_dir() else attempt(dst.unlink)
                dropped = True
    if dropped:
        for step in journal.steps:
            if isinstance(step, Remove):
                attempt(remove_tree, root / step.path)
    if failures:
        raise failures[0]
    path.unlink(missing_ok=True)


def pending(archive: Archive) -> list[Journal]:
    """Journals of interrupted transactions (for `verify` to report)."""
    folder = _journal_dir(archive)
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(RecordError):
            out.append(read_record(p, Journal))
    return out


__all__ = ["Changes", "Transaction", "checkpoint", "file_stamps", "job_fingerprint", "pending", "recover", "run_steps",
           "transaction"]
