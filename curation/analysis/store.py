"""Where analyses and evaluations go in an acquisition, and how they are committed.

A run ``RUN`` (``analysis-3``, ``evaluation-1``) leaves::

    acquisitions/ACQ/analysis/RUN/           tables (Parquet, CSV), plots (PNG), report.html
    acquisitions/ACQ/provenance/runs/RUN.json   its RunRecord (id ``runs/RUN``)

Both are built in the transaction's staging folder and moved into place by the
journaled apply, in the same commit as anything else the run wrote (an analysis's
instance label version). Files git-annex would take (everything but small text, see
:data:`curation.repository.datalad_ops.GITATTRIBUTES`) are annexed explicitly, so they
become locked annex links like every other data file of the archive.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..provenance import LabelRef, write_record
from ..provenance.journal import AnnexAdd
from ..provenance.runs import RunRecord
from ..repository.transaction import Changes, Transaction
from ..repository.view import RUNS, AcquisitionView, LabelVersion

#: the folder of analysis outputs in an acquisition
ANALYSIS_DIR = "analysis"
#: suffixes the archive keeps in git (the rest is annexed)
GIT_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml", ".md", ".txt", ".tsv", ".cff")
#: what each kind of run is called (its id is PREFIX-N)
RUN_PREFIXES = {"analyze": "analysis", "evaluate": "evaluation", "learning-curve": "learning-curve"}


def next_run_id(view: AcquisitionView, action: str) -> str:
    """``analysis-N`` (or ``evaluation-N``): one more than any stored record or folder."""
    prefix = RUN_PREFIXES[action]
    pattern = re.compile(rf"^{prefix}-(\d+)(\.json)?$")
    taken = [0]
    for folder in (view.path / RUNS, view.path / ANALYSIS_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                m = pattern.match(p.name)
                if m:
                    taken.append(int(m.group(1)))
    return f"{prefix}-{max(taken) + 1}"


def stored_runs(view: AcquisitionView, action: str) -> list[RunRecord]:
    """The stored run records of ``action`` (``analyze``, ``evaluate``), oldest first."""
    prefix = RUN_PREFIXES[action]
    return [r for r in view.runs() if r.id.startswith(f"runs/{prefix}-") and r.action == action]


def label_ref(view: AcquisitionView, lv: LabelVersion, role: str) -> LabelRef:
    """A run's input: the label version with the tree checksum of its stored files."""
    tree = lv.record().storage.tree_sha256 if lv.record_path.exists() else None
    return LabelRef(address=lv.address, acquisition=view.name, role=role, tree_sha256=tree)


def libraries() -> dict[str, str]:
    """Versions of what computes an analysis (the archive's own libraries included)."""
    from importlib.metadata import PackageNotFoundError, version

    from ..repository.ingest import library_versions

    out = library_versions()
    for pkg in ("connected-components-3d", "scipy", "scikit-image", "pyarrow", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def add_run_files(changes: Changes, tx: Transaction, view: AcquisitionView, stage: Path, run_id: str,
                  record: RunRecord) -> list[str]:
    """Write ``record`` into ``stage`` and add to ``changes`` the moves of ``stage/analysis``
    to ``analysis/RUN`` and of the record to ``provenance/runs/RUN.json``, the annexing
    of the binary files, and both paths to the commit. Returns the moved files' paths
    relative to the acquisition."""
    write_record(stage / "run.json", record)
    acq, st = tx.rel(view.path), tx.rel(stage)
    folder = f"{ANALYSIS_DIR}/{run_id}"
    files = sorted(p.name for p in (stage / ANALYSIS_DIR).iterdir() if p.is_file())
    changes.move(f"{st}/{ANALYSIS_DIR}", f"{acq}/{folder}")
    changes.move(f"{st}/run.json", f"{acq}/{RUNS}/{run_id}.json")
    big = [f"{folder}/{f}" for f in files if not f.lower().endswith(GIT_SUFFIXES)]
    if big:
        changes.annex.append(AnnexAdd(repo=acq, paths=big))
    changes.paths = sorted(set(changes.paths) | {folder, f"{RUNS}/{run_id}.json"})
    if st not in changes.cleanup:
        changes.cleanup.append(st)
    return [f"{folder}/{f}" for f in files]


__all__ = ["ANALYSIS_DIR", "RUN_PREFIXES", "add_run_files", "label_ref", "libraries", "next_run_id", "stored_runs"]
