"""A table of hostile inputs and the one-line refusal each must get from ``curate``.

Each :class:`Case` writes its bad input into a :class:`Workspace` (a tiny archive with one
acquisition, ``cells``, and one label layer, ``mito``) and returns the command line to run.
``tests/cli/test_hostile_inputs.py`` runs every case in-process with click's CliRunner;
``benchmarks/hostile_inputs.py`` runs them all through the real CLI in subprocesses with a
timeout each and checks that the archive is left clean.

A case passes when the command exits with its ``exit_code`` (1: a CurationError, 2: a
usage error), the output matches ``expect``, the output holds no "unexpected" and no
traceback, and (exit 1) stderr holds one line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME = "cells"
SHAPE = (4, 32, 32)


@dataclass
class Workspace:
    root: Path
    archive: Path
    metadata: Path
    masks_tif: Path

    def path(self, name: str) -> Path:
        return self.root / "cases" / name


def build_workspace(root: Path) -> Workspace:
    """A tiny archive: acquisition ``cells`` (4 x 32 x 32 uint8) with label layer ``mito`` v1."""
    import tifffile

    from ..labels.importer import import_labels
    from ..repository.archive import init_archive
    from ..repository.ingest import ingest
    from .metadata import write_metadata

    root = Path(root)
    (root / "cases").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    tifffile.imwrite(root / "cells.tif", rng.integers(0, 255, SHAPE, dtype=np.uint8), photometric="minisblack")
    meta = write_metadata(root / "cells.yaml", {"z": 10, "y": 10, "x": 10})
    archive = root / "archive"
    init_archive(archive)
    ingest(archive, [root / "cells.tif"], meta, name=NAME, chunk=(1, 32, 32), shard=(2, 32, 32))
    masks = np.zeros(SHAPE, np.uint8)
    masks[:, 8:16, 8:16] = 1
    tifffile.imwrite(root / "mito.tif", masks, photometric="minisblack")
    import_labels(archive, NAME, "mito", root / "mito.tif")
    return Workspace(root, archive, meta, root / "mito.tif")


# --- writers of bad inputs ------------------------------------------------------------------------

_CSV_HEAD = "annotator,slice,trace,x,y\n"
_CSV_ROWS = "u1,0,t0,1,1\nu1,0,t0,10,10\nu1,0,t0,1,10\n"


def _write(ws: Workspace, name: str, data: str | bytes) -> Path:
    p = ws.path(name)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8")
    return p


def _bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def _metadata_check(name: str, text: str | Callable[[], str]) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        return ["metadata", "check", str(_write(ws, name, text() if callable(text) else text))]
    return build


def _aggregate(name: str, data: str | bytes, *extra: str) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        return ["labels", "aggregate", str(ws.archive), NAME, str(_write(ws, name, data)), "--layer", "crowd", *extra]
    return build


def _aggregate_opts(*extra: str) -> Callable[[Workspace], list[str]]:
    return _aggregate("good.csv", _CSV_HEAD + _CSV_ROWS, *extra)


def _mask_folder_ctrl(ws: Workspace) -> list[str]:
    import imageio.v3 as iio

    folder = ws.path("ctrl_masks")
    sub = folder / "evil\x1b[2Jname"
    sub.mkdir(parents=True, exist_ok=True)
    iio.imwrite(sub / "slice_0000.png", np.zeros(SHAPE[1:], np.uint8))
    return ["labels", "aggregate", str(ws.archive), NAME, str(folder), "--layer", "crowd"]


def _slices(ws: Workspace, name: str) -> Path:
    import tifffile

    folder = ws.path(name)
    folder.mkdir(exist_ok=True)
    for z in range(3):
        tifffile.imwrite(folder / f"slice_{z:04d}.tif", np.full(SHAPE[1:], z, np.uint8))
    return folder


def _ingest(folder: Path, ws: Workspace, *extra: str) -> list[str]:
    return ["ingest", str(ws.archive), str(folder), "--metadata", str(ws.metadata), *extra]


def _symlink_slice(ws: Workspace) -> list[str]:
    import tifffile

    folder = _slices(ws, "linked")
    secret = ws.path("secret.tif")
    tifffile.imwrite(secret, np.zeros(SHAPE[1:], np.uint8))
    (folder / "slice_0002.tif").unlink()
    os.symlink(secret, folder / "slice_0002.tif")
    return _ingest(folder, ws, "--name", "linked")


def _multipage_slice(ws: Workspace) -> list[str]:
    import tifffile

    folder = _slices(ws, "multipage")
    with tifffile.TiffWriter(folder / "slice_0001.tif") as w:
        for z in range(3):
            w.write(np.full(SHAPE[1:], z, np.uint8))
    return _ingest(folder, ws, "--name", "multipage")


def _planar_slice(ws: Workspace) -> list[str]:
    import tifffile

    folder = _slices(ws, "planar")
    planes = np.stack([np.full(SHAPE[1:], v, np.uint8) for v in (0, 100, 200)])
    tifffile.imwrite(folder / "slice_0001.tif", planes, photometric="rgb", planarconfig="separate")
    return _ingest(folder, ws, "--name", "planar")


def fifo_slice(ws: Workspace) -> list[str]:
    """A slice folder where one slice is a named pipe (reading it would block forever)."""
    folder = _slices(ws, "piped")
    (folder / "slice_0002.tif").unlink()
    os.mkfifo(folder / "slice_0002.tif")
    return _ingest(folder, ws, "--name", "piped")


def _fifo_metadata(ws: Workspace) -> list[str]:
    fifo = ws.path("meta_pipe.yaml")
    if not fifo.exists():
        os.mkfifo(fifo)
    return ["metadata", "check", str(fifo)]


def _pickle_zarr(ws: Workspace) -> list[str]:
    z = ws.path("pickle.zarr")
    (z / "0").mkdir(parents=True, exist_ok=True)
    (z / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (z / ".zattrs").write_text(json.dumps({"multiscales": [{"version": "0.4", "axes": [
        {"name": "z"}, {"name": "y"}, {"name": "x"}], "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1, 1, 1]}]}]}], "image-label": {"version": "0.4"}}))
    (z / "0" / ".zarray").write_text(json.dumps({"zarr_format": 2, "shape": list(SHAPE), "chunks": [1, 32, 32],
                                                 "dtype": "|u1", "compressor": {"id": "pickle"}, "fill_value": 0,
                                                 "filters": None, "order": "C"}))
    return ["labels", "import", str(ws.archive), NAME, str(z), "--layer", "pickled"]


def _labels_import(*extra: str) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        return ["labels", "import", str(ws.archive), NAME, str(ws.masks_tif), *extra]
    return build


def _package(*extra: str, out: str | None = None) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        return ["package", str(ws.archive), NAME, "--format", "datacite", "--out", out or str(ws.path("pkg")),
                *extra]
    return build


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Workspace], list[str]]
    expect: str  # a regular expression the output must match
    exit_code: int = 1


_DEEP_JSON = '{"schema_version": ' + "[" * 50_000 + "]" * 50_000 + "}"

CASES: list[Case] = [
    # hangs and memory exhaustion
    Case("yaml-alias-bomb", _metadata_check("bomb.yaml", _bomb), r"bomb\.yaml: the document expands into more than"),
    Case("yaml-huge-document", _metadata_check("huge.yaml", lambda: "".join(f"k{i}: {i}\n" for i in range(300_000))),
         r"huge\.yaml: the metadata file is too large"),
    Case("yaml-deep-nesting", _metadata_check("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
         r"deep\.yaml: the document nests deeper than 64 levels"),
    Case("yaml-impossible-date", _metadata_check("date.yaml", "study:\n  release: 2024-13-45\n"),
         r"date\.yaml: not a valid date: '2024-13-45', month must be in 1\.\.12 \(line 2\)"),
    Case("json-deep-nesting", _metadata_check("deep.json", _DEEP_JSON), r"deep\.json: .*nests too deeply"),
    Case("json-5000-digit-int", _metadata_check("bigint.json", '{"study": {"x": ' + "9" * 5000 + "}}"),
         r"bigint\.json: study\.x: a number out of range .*30 digits"),
    Case("yaml-5000-digit-int", _metadata_check("bigint.yaml", "study:\n  x: " + "9" * 5000 + "\n"),
         r"bigint\.yaml: an integer of 5000 digits \(line 2\)"),
    Case("json-1e400", _metadata_check("inf.json", '{"study": {"x": 1e400}}'),
         r"inf\.json: study\.x: a number out of range .*finite number.*1e400"),
    Case("json-nan", _metadata_check("nan.json", '{"study": {"x": NaN}}'),
         r"nan\.json: study\.x: a number out of range"),
    Case("paint-edit-deep", lambda ws: ["labels", "paint", str(ws.archive), NAME,
                                        str(_write(ws, "deep_edit.json", _DEEP_JSON))],
         r"deep_edit\.json: .*nests too deeply"),
    Case("paint-edit-huge-radius", lambda ws: ["labels", "paint", str(ws.archive), NAME, str(_write(
        ws, "radius_edit.json", '{"base": "mito@v1", "strokes": [{"plane": "xy", "index": 0, "value": 1, '
        '"radius": ' + "9" * 400 + ', "points": [[1, 1]]}]}'))],
         r"radius_edit\.json: strokes\.0\.radius: a number out of range"),
    Case("polyline-json-deep", _aggregate("deep_traces.json", _DEEP_JSON), r"deep_traces\.json: .*nests too deeply"),
    Case("polyline-json-1e400", _aggregate("inf_traces.json", '{"format": "curation-polylines/1", "slice_shape": '
                                           '[32, 32], "annotations": [{"annotator": "u", "slice": 1e400}]}'),
         r"inf_traces\.json: annotations\.0\.slice: a number out of range"),
    # errors that name the file and field
    Case("csv-latin1", _aggregate("latin1.csv", (_CSV_HEAD + "J\xfcrgen,0,t0,1,1\n").encode("latin-1")),
         r"latin1\.csv: the CSV file is not UTF-8 text \(bad byte at offset \d+\)"),
    Case("csv-binary", _aggregate("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
         r"binary\.csv: a binary file, not a CSV file"),
    Case("csv-huge-field", _aggregate("longfield.csv", _CSV_HEAD + "u1,0," + "t" * 200_000 + ",1,1\n"),
         r"longfield\.csv: row 2: a field is too long .*131072"),
    Case("zarr-pickle-codec", _pickle_zarr, r"pickle\.zarr/0: codec: the label array uses the pickle codec"),
    Case("preview-out-proc", lambda ws: ["preview", str(ws.archive), NAME, "--out", "/proc/curation-x"],
         r"^error: /proc/curation-x: the file system refused: No such file or directory"),
    Case("init-in-proc", lambda ws: ["init", "/proc/curation-x"],
         r"^error: /proc/curation-x: (the file system refused|cannot create the dataset folder)"),
    Case("package-out-proc", _package(out="/proc/curation-x"), r"--out: cannot (write beside|use) the output folder"),
    # inputs that should be refused
    Case("doi-traversal", _package("--doi", "../../x"), r"--doi: not a DOI \(expected '10\.NNNN/suffix"),
    Case("width-px-negative", _aggregate_opts("--polyline-mode", "trace", "--width-px", "-3"),
         r"--width-px.*out of range", exit_code=2),
    Case("width-px-inf", _aggregate_opts("--polyline-mode", "trace", "--width-px", "inf"),
         r"--width-px.*not a finite number", exit_code=2),
    Case("band-width-1e308", _aggregate_opts("--method", "cria", "--band-width-nm", "1e308"),
         r"--band-width-nm.*out of range", exit_code=2),
    Case("wait-nan", _aggregate_opts("--wait", "nan"), r"--wait.*not a finite number", exit_code=2),
    Case("chunk-not-numbers", lambda ws: _ingest(ws.root / "cells.tif", ws, "--chunk", "a,b,c"),
         r"--chunk.*three integers", exit_code=2),
    Case("names-control-chars", _aggregate_opts("--names", "1=mi\x1b[8mto"),
         r"--names: a label name holds control characters .*1=mi\\x1b\[8mto"),
    Case("iou-above-one", lambda ws: ["evaluate", str(ws.archive), NAME, "--prediction", "mito", "--truth", "mito",
                                           "--iou", "2"], r"--iou.*out of range",
         exit_code=2),
    Case("min-size-negative", lambda ws: ["analyze", str(ws.archive), NAME, "--layer", "mito",
                                               "--min-size-nm3", "-1"],
         r"--min-size-nm3.*out of range", exit_code=2),
    Case("pipeline-alias-bomb", lambda ws: ["run", str(ws.archive), str(_write(ws, "bomb_pipeline.yaml", _bomb()))],
         r"bomb_pipeline\.yaml: the document expands into more than"),
    Case("doi-control-chars", _package("--doi", "10.1234/a\x07b"), r"--doi: not a DOI"),
    Case("names-duplicate-value", _aggregate_opts("--names", "1=a", "1=b"),
         r"--names: label value 1 is named twice .*1=a and 1=b"),
    Case("csv-two-annotator-columns", _aggregate("twocols.csv", "annotator,slice,trace,x,y,annotator\n"
                                                 "u1,0,t0,1,1,u2\n"),
         r"twocols\.csv: header, column 6: the header names a column twice"),
    Case("csv-annotator-control-chars", _aggregate("ctrl.csv", _CSV_HEAD + "ev\x1b[31mil,0,t0,1,1\n"),
         r"ctrl\.csv: row 2, annotator: the annotator id holds control characters .*ev\\\\x1b\[31mil"),
    Case("mask-folder-control-chars", _mask_folder_ctrl,
         r"annotator folder: the annotator id holds control characters"),
    Case("slice-symlink-outside", _symlink_slice,
         r"linked: slice 'slice_0002\.tif' is a symbolic link to a file outside the folder"),
    Case("acquisition-differs-by-case", lambda ws: _ingest(ws.root / "cells.tif", ws, "--name", "CELLS"),
         r"--name: the acquisition name differs from an existing one only by case"),
    Case("acquisition-reserved", lambda ws: _ingest(ws.root / "cells.tif", ws, "--name", "CON"),
         r"--name: the acquisition name is a device name reserved on Windows"),
    Case("acquisition-reserved-ext", lambda ws: _ingest(ws.root / "cells.tif", ws, "--name", "nul.tif"),
         r"--name: the acquisition name is a device name reserved"),
    Case("layer-differs-by-case", _labels_import("--layer", "MITO"),
         r"--layer: the layer name differs from an existing one only by case"),
    Case("layer-reserved", _labels_import("--layer", "NUL"), r"--layer: the layer name is a device name reserved"),
    Case("named-pipe-metadata", _fifo_metadata, r"meta_pipe\.yaml: is a named pipe, not a regular file"),
    Case("multipage-tiff-slice", _multipage_slice, r"slice 'slice_0001\.tif' is a multi-page TIFF of 3 pages"),
    Case("planar-rgb-slice", _planar_slice,
         r"slice 'slice_0001\.tif' holds 3 planes stored as the colour samples of one page"),
]


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float = 0.0


def verdict(case: Case, out: Outcome) -> str:
    """``refused`` (as expected), ``hang``, ``unexpected`` (a bug's message or a traceback),
    ``accepted`` (exit 0) or ``wrong`` (refused, but not as the table says)."""
    if out.exit_code is None:
        return "hang"
    text = out.stdout + out.stderr
    if "unexpected" in text or "Traceback" in text:
        return "unexpected"
    if out.exit_code == 0:
        return "accepted"
    if out.exit_code != case.exit_code or not re.search(case.expect, text, re.MULTILINE):
        return "wrong"
    if case.exit_code == 1:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        if len(lines) > 1:
            return "wrong"
    return "refused"


def run_inprocess(case: Case, ws: Workspace) -> Outcome:
    """Run ``case`` through the CLI with click's CliRunner."""
    import time

    from click.testing import CliRunner

    from ..cli.main import cli

    argv = case.build(ws)
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, argv, catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return Outcome(1, res.stdout, f"Traceback: unexpected {type(res.exception).__name__}: {res.exception}",
                       time.monotonic() - t0)
    return Outcome(res.exit_code, res.stdout, res.stderr, time.monotonic() - t0)
