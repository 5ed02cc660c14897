"""What keeps small commands fast (issue 12): no git process to read a HEAD, no DataLad
import to create a dataset, and the datasets made that way are DataLad's own."""

from __future__ import annotations

import subprocess
from pathlib import Path

from curation.repository import datalad_ops as dlo


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_head_read_from_files_matches_git(tmp_path):
    repo = tmp_path / "r"
    _git(tmp_path, "init", "-q", str(repo))
    assert dlo._head_from_files(repo) == "" and dlo.head(repo) is None  # unborn branch
    (repo / "a").write_text("a")
    _git(repo, "add", "a")
    _git(repo, "commit", "-q", "-m", "one")
    assert dlo._head_from_files(repo) == _git(repo, "rev-parse", "HEAD")  # loose ref
    _git(repo, "pack-refs", "--all")
    assert dlo._head_from_files(repo) == _git(repo, "rev-parse", "HEAD")  # packed ref
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "a").write_text("b")
    _git(repo, "commit", "-q", "-am", "two")
    _git(repo, "checkout", "-q", first)
    assert dlo.head(repo) == first  # detached
    gitfile = tmp_path / "wt"
    _git(repo, "worktree", "add", "-q", str(gitfile), "HEAD")
    assert dlo._head_from_files(gitfile) is None  # a gitfile: git answers
    assert dlo.head(gitfile) == first


def test_dataset_created_without_datalad_is_datalad_dataset(tmp_path):
    import datalad.api as dl

    path = tmp_path / "ds"
    dlo.create_dataset(path, description="an acquisition")
    ds = dl.Dataset(str(path))
    assert ds.is_installed() and ds.id and len(ds.id) == 36
    assert _git(path, "log", "--format=%s") == "[DATALAD] new dataset"
    assert "annex.uuid" in _git(path, "config", "--list", "--local")
    (path / "big.bin").write_bytes(b"x" * 1000)
    (path / "notes.json").write_text("{}")
    dlo.save(path, "add")
    assert (path / "big.bin").is_symlink()  # curation's attributes: bytes annexed, SHA256E keys
    assert "SHA256E" in str((path / "big.bin").readlink())
    assert not (path / "notes.json").is_symlink()
    assert dlo.status(path) == []
