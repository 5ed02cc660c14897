#!/usr/bin/env python
"""Crash matrix: kill -9 at random instants, then the same command again.

Usage::

    .venv/bin/python benchmarks/crash_matrix.py [--tries 20] [--commands ingest labels-import ...]
        [--workdir DIR] [--seed 0]

For each command it first times an uninterrupted run on a fresh copy of a small archive
and records the result (the archive's commits, tags, tracked files and checksum lists, or
the package's files). Then, ``--tries`` times: a fresh copy, the command started in its
own process group, ``SIGKILL`` to the whole group after a random delay in [0, 1.2 x the
uninterrupted time), the same command again, and the checks:

* the re-run exits 0;
* archive commands: the archive equals the uninterrupted one (timestamps aside), its tree
  is clean, no staging or journal is left, and ``curate verify`` is ok;
* ``package``: the package equals the uninterrupted one file for file, and no
  ``.NAME.*.partial`` folder is left beside ``--out``;
* ``push``: the store restores into a fresh clone that ``curate verify`` passes.

It prints survived/tried per command (the target is 100%) and the instants of failures.

Commands are entries of :data:`COMMANDS` (a :class:`Spec`: which archive it starts from,
its command line, how its outcome is read). ``train`` (a tiny 2D U-Net on ``mito@v1``) and
``segment`` (with the model it trained) are probed: skipped, with a note, in a build
without those commands.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the curate of the interpreter running this script (PYTHONPATH selects the checkout)
CURATE = [sys.executable, "-m", "curation"]
ENV = {**os.environ, "GIT_AUTHOR_NAME": "Crash Matrix", "GIT_AUTHOR_EMAIL": "crash@curation.invalid",
       "GIT_COMMITTER_NAME": "Crash Matrix", "GIT_COMMITTER_EMAIL": "crash@curation.invalid", "CI": "true",
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def sh(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=ENV)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr[-2000:]}")
    return p


def git(repo: Path, *args: str) -> str:
    return sh("git", "-C", str(repo), *args).stdout


def make_inputs(base: Path) -> dict[str, Path]:
    import tifffile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from curation.testing import em_like_volume, write_metadata

    folder = base / "slices"
    folder.mkdir(parents=True)
    vol = em_like_volume((48, 256, 256), seed=1)
    for z in range(vol.shape[0]):
        tifffile.imwrite(folder / f"img.{z:03d}.tif", vol[z])
    md = write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    import yaml

    doc = yaml.safe_load(md.read_text())
    doc["study"]["corresponding_author"] = {**doc["study"]["authors"][0], "email": "josiah@example.org"}
    md.write_text(yaml.safe_dump(doc, sort_keys=False))
    masks = base / "masks"
    masks.mkdir()
    for z in (5, 17, 30):
        m = np.zeros((256, 256), np.uint8)
        m[40:120, 60:200] = 1
        tifffile.imwrite(masks / f"mito.{z:03d}.tif", m)
    ann = base / "annotations"
    rng = np.random.default_rng(3)
    for who in ("ann1", "ann2", "ann3"):
        (ann / who).mkdir(parents=True)
        for z in (10, 20):
            m = np.zeros((256, 256), np.uint8)
            m[50 + rng.integers(0, 4):150, 50:150] = 1
            tifffile.imwrite(ann / who / f"img.{z:03d}.tif", m)
    empty = base / "empty"
    sh(*CURATE, "init", str(empty))
    full = base / "full"
    sh(*CURATE, "init", str(full))
    ingest_cmd = [*CURATE, "ingest", str(full), str(folder), "--metadata", str(md), "--name", "vol",
                  "--chunk", "16,64,64", "--shard", "16,128,128", "--no-progress"]
    sh(*ingest_cmd)
    sh(*CURATE, "labels", "import", str(full), "vol", str(masks), "--layer", "mito")
    out = {"folder": folder, "md": md, "masks": masks, "ann": ann, "empty": empty, "full": full}
    if sh(*CURATE, "train", "--help", check=False).returncode == 0:
        # a tiny 2D U-Net (seconds per training on one core), and an archive holding mito@v1
        from curation.segmentation.pipeline import load_pipeline, pipeline_yaml, with_overrides

        tiny = with_overrides(load_pipeline("mitochondria-2d"), {
            "architecture.width": 4, "architecture.depth": 2, "training.patch": [48, 48], "training.batch": 2,
            "training.iterations": 6, "training.max_minutes": None, "training.threads": 1,
            "training.validation": {"slices": "farthest", "count": 1, "every": 3},
            "inference.tile": [96, 96], "inference.halo": "auto", "inference.overlap": 4, "inference.batch": 3})
        out["pipeline"] = base / "tiny.yaml"
        out["pipeline"].write_text(pipeline_yaml(tiny))
        trained = base / "trained"
        shutil.copytree(full, trained, symlinks=True)
        sh(*COMMANDS["train"].argv(out, trained, base))
        out["trained"] = trained
    return out


@dataclass(frozen=True)
class Spec:
    """One command of the matrix."""

    #: the archive it starts from: a key of make_inputs()'s result ("empty", "full")
    template: str
    #: its command line, from (inputs, archive copy, work folder)
    argv: Callable[[dict[str, Path], Path, Path], list[str]]
    #: how the result is read: "archive", "package" or "push" (see outcome())
    outcome: str = "archive"
    #: a subcommand that must exist (``curate PROBE --help`` exits 0), else the row is skipped
    probe: str | None = None


COMMANDS: dict[str, Spec] = {
    "ingest": Spec("empty", lambda inp, arch, work: [
        *CURATE, "ingest", str(arch), str(inp["folder"]), "--metadata", str(inp["md"]), "--name", "vol",
        "--chunk", "16,64,64", "--shard", "16,128,128", "--no-progress"]),
    "labels-import": Spec("full", lambda inp, arch, work: [
        *CURATE, "labels", "import", str(arch), "vol", str(inp["masks"]), "--layer", "mito2",
        "--names", "1=mitochondrion"]),
    "labels-aggregate": Spec("full", lambda inp, arch, work: [
        *CURATE, "labels", "aggregate", str(arch), "vol", str(inp["ann"]), "--layer", "crowd", "--method", "staple"]),
    "package": Spec("full", lambda inp, arch, work: [
        *CURATE, "package", str(arch), "vol", "--format", "bagit", "--out", str(work / "out" / "bag")],
        outcome="package"),
    "push": Spec("full", lambda inp, arch, work: [
        *CURATE, "archive", "push", str(arch), "--to", f"ria+file://{work / 'store'}"], outcome="push"),
    "train": Spec("full", lambda inp, arch, work: [
        *CURATE, "train", str(arch), "--acquisition", "vol", "--labels", "mito@v1", "--pipeline",
        str(inp["pipeline"]), "--name", "mito", "--threads", "1", "--json"], probe="train"),
    "segment": Spec("trained", lambda inp, arch, work: [
        *CURATE, "segment", str(arch), "vol", "--model", "mito@v1", "--layer", "pred", "--threads", "1",
        "--json"], probe="segment"),
}


def available(spec: Spec) -> bool:
    if spec.probe is None:
        return True
    return sh(*CURATE, spec.probe, "--help", check=False).returncode == 0


def archive_state(arch: Path) -> dict:
    acq = arch / "acquisitions" / "vol"
    state = {"log": [l.split(" ", 1)[1] for l in git(arch, "log", "--format=%H %s").splitlines()],
             "tags": git(arch, "tag").split(), "status": git(arch, "status", "--porcelain", "--untracked-files=all")}
    staging = arch / ".curation" / "staging"
    state["staging"] = sorted(str(p.relative_to(arch)) for p in staging.rglob("*")) if staging.exists() else []
    if acq.exists():
        state.update(acq_log=[l.split(" ", 1)[1] for l in git(acq, "log", "--format=%H %s").splitlines()],
                     acq_tags=git(acq, "tag").split(),
                     acq_status=git(acq, "status", "--porcelain", "--untracked-files=all"),
                     files=sorted(git(acq, "ls-files").split()),
                     shards={p.name: [line for line in p.read_text().splitlines() if not line.endswith("zarr.json")
                                      and "/zarr.json\t" not in line]
                             for p in sorted((acq / "provenance").rglob("*.tsv"))})
    return state


def tree_digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in ("bag-info.txt", "tagmanifest-sha256.txt", "README.md",
                                          ".curation-package.json"):
            data = p.read_bytes()
            if p.name.startswith("manifest-"):  # the README's line carries its timestamp
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if not line.rstrip().endswith(b"README.md"))
            out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def outcome(kind: str, arch: Path, work: Path) -> dict:
    if kind == "package":
        out = work / "out"
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".partial")]
        return {"files": tree_digest(out / "bag"), "leftovers": leftovers, "archive": archive_state(arch),
                "record": (out / "bag" / ".curation-package.json").is_file()}
    if kind == "push":
        dest = work / "restored"
        shutil.rmtree(dest, ignore_errors=True)
        sh(*CURATE, "archive", "restore", f"ria+file://{work / 'store'}#~{arch.name}", str(dest))
        v = sh(*CURATE, "verify", str(dest), check=False)
        return {"verify": v.returncode, "archive": archive_state(arch)}
    v = sh(*CURATE, "verify", str(arch), check=False)
    state = archive_state(arch)
    state["verify"] = v.returncode
    return state


def run_one(name: str, inp: dict[str, Path], root: Path, delay: float | None) -> tuple[bool, str, float]:
    """Run ``name`` on a fresh copy, killed after ``delay`` s (None: uninterrupted), then again.

    Returns (re-run exited 0, the outcome as JSON or why it failed, seconds until exit or kill).
    """
    spec = COMMANDS[name]
    work = Path(tempfile.mkdtemp(dir=root))
    arch = work / "archive"
    shutil.copytree(inp[spec.template], arch, symlinks=True)
    (work / "out").mkdir()
    cmd = spec.argv(inp, arch, work)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    killed = False
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
    proc.wait()
    took = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if delay is None and proc.returncode != 0:
        raise RuntimeError(f"{name} failed uninterrupted: {err[-2000:]}")
    if not killed and delay is not None and proc.returncode != 0:
        return False, f"first run failed without a kill: {err.strip()[-300:]}", took
    again = sh(*cmd, check=False) if delay is not None else None
    if again is not None and again.returncode != 0:
        return False, f"re-run failed: {again.stderr.strip()[-300:]}", took
    state = outcome(spec.outcome, arch, work)
    shutil.rmtree(work, ignore_errors=True)
    return True, json.dumps(state, sort_keys=True), took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=20, help="kills per command (default 20)")
    ap.add_argument("--commands", nargs="*", default=list(COMMANDS), choices=list(COMMANDS))
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="crash-", dir=args.workdir))
    try:
        inp = make_inputs(root / "inputs")
        rows = []
        for name in args.commands:
            if not available(COMMANDS[name]):
                print(f"{name:18} skipped: `curate {COMMANDS[name].probe}` does not exist in this build", flush=True)
                continue
            _ok, reference, took = run_one(name, inp, root, None)
            survived, failures = 0, []
            for _ in range(args.tries):
                delay = rng.uniform(0, 1.2 * took)
                good, state, _t = run_one(name, inp, root, delay)
                if good and state == reference:
                    survived += 1
                else:
                    failures.append(f"{delay:.2f}s: {state[:300] if not good else _diff(reference, state)}")
            rows.append((name, survived, args.tries, took, failures))
            print(f"{name:18} {survived}/{args.tries} survived  (uninterrupted {took:.1f} s)", flush=True)
            for f in failures[:5]:
                print(f"    killed at {f}", flush=True)
        total = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"{'all':18} {total[0]}/{total[1]} survived")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _diff(reference: str, state: str) -> str:
    a, b = json.loads(reference), json.loads(state)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    detail = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            sub = sorted(j for j in set(a[k]) | set(b[k]) if a[k].get(j) != b[k].get(j))
            detail.append(f"{k} ({', '.join(map(str, sub[:4]))}{' ...' if len(sub) > 4 else ''})")
        else:
            detail.append(f"{k} ({str(a.get(k))[:60]} vs {str(b.get(k))[:60]})")
    return "differs from the uninterrupted run in " + "; ".join(detail)


if __name__ == "__main__":
    main()
