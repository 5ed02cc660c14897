"""Every hostile input of issue 12 gets a one-line refusal naming the file and field.

The table lives in :mod:`curation.testing.hostile` (shared with
``benchmarks/hostile_inputs.py``); each case runs in-process through the CLI on a tiny
archive and must exit as the table says, match its message, print no "unexpected" and
no traceback, and leave the archive clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation.cli.base import handle_errors
from curation.testing.hostile import CASES, build_workspace, run_inprocess, verdict


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("hostile"))


def _clean(archive: Path) -> str:
    return subprocess.run(["git", "-C", str(archive), "status", "--porcelain"], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_in_one_line(case, ws):
    out = run_inprocess(case, ws)
    assert verdict(case, out) == "refused", (case.expect, out)
    assert _clean(ws.archive) == ""


def test_named_pipe_slice_is_refused_before_any_read(ws):
    from curation.testing.hostile import Case, fifo_slice

    case = Case("named-pipe-slice", fifo_slice, r"piped/slice_0002\.tif: is not a regular file")
    assert verdict(case, run_inprocess(case, ws)) == "refused"


def test_memory_error_is_one_line(capsys):
    import click

    @click.command()
    @handle_errors
    def greedy():
        raise MemoryError

    res = CliRunner().invoke(greedy, [])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the command ran out of memory"), res.stderr
    assert "unexpected" not in res.stderr


def test_follow_symlinks_records_the_target(ws):
    case = next(c for c in CASES if c.id == "slice-symlink-outside")
    argv = case.build(ws)
    from curation.cli.main import cli

    res = CliRunner().invoke(cli, [*argv[:-2], "--name", "followed", "--follow-symlinks"])
    assert res.exit_code == 0, res.output
    from curation.provenance import read_record
    from curation.repository.archive import open_archive

    rec = open_archive(ws.archive).acquisition("followed").ingest
    targets = {Path(r.path).name: r.resolved for r in rec.inputs}
    assert targets["slice_0002.tif"] == str(ws.path("secret.tif").resolve())
    assert targets["slice_0000.tif"] is None
    assert read_record  # the record reads back through its model
    assert _clean(ws.archive) == ""


def test_package_removes_its_own_partial_leftovers(ws, tmp_path):
    out = tmp_path / "pkg"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".pkg.p{dead.pid}.abc123.partial"
    (mine / "files").mkdir(parents=True)
    alive = tmp_path / f".pkg.p{os.getpid()}.zzz.partial"  # a live process's: kept
    alive.mkdir()
    other = tmp_path / ".other.p1.x.partial"  # another --out's: kept
    other.mkdir()
    from curation.cli.main import cli

    res = CliRunner().invoke(cli, ["package", str(ws.archive), "cells", "--format", "datacite", "--out", str(out),
                                   "--doi", "10.1234/abc"])
    assert not mine.exists()
    assert alive.exists() and other.exists()
    assert res.exit_code in (0, 1), res.output
    assert "unexpected" not in res.output


def test_library_warnings_go_to_the_log_when_a_command_fails():
    import warnings

    import click

    from curation.errors import SourceError

    @click.command()
    @click.option("--fail", is_flag=True)
    @handle_errors
    def noisy(fail):
        warnings.warn("TiffPage 0: incorrect StripByteCounts count", UserWarning, stacklevel=1)
        if fail:
            raise SourceError("cannot be read", path="x.tif")
        click.echo("done")

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        res = CliRunner().invoke(noisy, ["--fail"])
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1, res.stderr
        assert lines[0].startswith("error: x.tif: cannot be read [1 library warning in ")
        log = Path(lines[0].rsplit(" in ", 1)[1].rstrip("]"))
        assert "incorrect StripByteCounts count" in log.read_text()
        log.unlink()
    with pytest.warns(UserWarning, match="StripByteCounts"):  # shown after a command that worked
        ok = CliRunner().invoke(noisy, [])
    assert ok.exit_code == 0
