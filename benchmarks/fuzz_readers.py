#!/usr/bin/env python
"""Coverage-guided fuzzing (atheris, libFuzzer) of the DM and TIFF header readers.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/fuzz_readers.py [--target dm tiff] [--runs 20000]
        [--seconds 300] [--corpus DIR ...] [--findings DIR]

Each target runs in its own process (libFuzzer fuzzes one function per process): the
seeds are the real instrument files in ``../shared/data`` (``dm/`` and ``tiff/``, copied
into a scratch corpus so libFuzzer can add the inputs it finds there), and every input
is written to a file and opened with :func:`curation.readers.dm.inspect_dm` or
:func:`curation.readers.tiff.inspect_tiff`, as ``curate ingest`` opens a source.

A :class:`~curation.errors.CurationError` is a clean refusal. Anything else (another
exception, an input slower than ``--timeout`` seconds, a crash of the interpreter) is a
finding: the input is saved in ``--findings`` (default ``fuzz-findings/`` in the working
folder), named by the exception and where it was raised, and fuzzing goes on. At the
end it prints, per target, executions, distinct findings and their places.

Needs the ``fuzz`` extra (``pip install atheris``). ``tests/fuzz/test_fuzz_readers.py``
runs a few hundred executions of each target in the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CURATION_SHARED_DATA", REPO.parent / "shared" / "data"))
SEEDS = {"dm": ("dm", (".dm3", ".dm4")), "tiff": ("tiff", (".tif", ".tiff"))}


# --- the child: one target under libFuzzer --------------------------------------------------------


def _child(target: str, stats_path: Path, findings: Path, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        from curation.errors import CurationError
        from curation.readers import dm as dm_reader
        from curation.readers import tiff as tiff_reader

    inspect = dm_reader.inspect_dm if target == "dm" else tiff_reader.inspect_tiff
    suffix = ".dm4" if target == "dm" else ".tif"
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    stats = {"target": target, "executions": 0, "refused": 0, "accepted": 0, "findings": {}}
    last_write = [0.0]

    def save_stats(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last_write[0] > 1.0:
            tmp = stats_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(stats))
            os.replace(tmp, stats_path)
            last_write[0] = now

    def one(data: bytes) -> None:
        stats["executions"] += 1
        path = scratch / f"input{suffix}"
        path.write_bytes(data)
        try:
            inspect(path)
            stats["accepted"] += 1
        except CurationError as exc:
            stats["refused"] += 1
            if "\n" in str(exc):
                _finding(stats, findings, target, data, "MultiLineMessage", str(exc)[:200])
        except Exception as exc:  # noqa: BLE001 - every other exception is what we look for
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            _finding(stats, findings, target, data, f"{type(exc).__name__}@{where}", str(exc)[:200])
            save_stats(force=True)
        save_stats()

    atheris.Setup([sys.argv[0], *libfuzzer_args], one)
    try:
        atheris.Fuzz()
    finally:
        save_stats(force=True)


def _finding(stats: dict, findings: Path, target: str, data: bytes, key: str, message: str) -> None:
    entry = stats["findings"].setdefault(key, {"count": 0, "message": message, "example": None})
    entry["count"] += 1
    if entry["example"] is None:
        findings.mkdir(parents=True, exist_ok=True)
        name = f"{target}-{key.replace('@', '-at-').replace(':', '-')}-{hashlib.sha256(data).hexdigest()[:12]}"
        (findings / name).write_bytes(data)
        entry["example"] = str(findings / name)


# --- the parent: corpus, children, report -----------------------------------------------------------


def seed_corpus(target: str, extra: list[Path], into: Path) -> int:
    folder, suffixes = SEEDS[target]
    into.mkdir(parents=True, exist_ok=True)
    n = 0
    for base in [SHARED / folder, *extra]:
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix.lower() in suffixes:
                shutil.copyfile(p, into / f"seed-{n:03d}{p.suffix.lower()}")
                n += 1
    return n


def run_target(target: str, args: argparse.Namespace, work: Path) -> dict:
    corpus = work / f"corpus-{target}"
    n_seeds = seed_corpus(target, args.corpus, corpus)
    stats_path = work / f"stats-{target}.json"
    lib = [f"-runs={args.runs}", f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
           f"-max_len={args.max_len}", f"-rss_limit_mb={args.rss_mb}", f"-seed={args.seed}",
           f"-artifact_prefix={args.findings}/{target}-", "-print_final_stats=0", str(corpus)]
    args.findings.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child", target, "--stats", str(stats_path),
                           "--findings", str(args.findings), "--", *lib], capture_output=True, text=True,
                          env={**os.environ,
                               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    took = time.monotonic() - t0
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {"executions": 0, "findings": {}}
    stats.update(seeds=n_seeds, seconds=round(took, 1), returncode=proc.returncode)
    if proc.returncode != 0:  # libFuzzer stopped on a timeout, an out-of-memory or a crash
        tail = [line for line in proc.stderr.splitlines() if "ERROR" in line or "timeout" in line.lower()
                or "out-of-memory" in line]
        stats["findings"]["libFuzzer-stop"] = {"count": 1, "message": " | ".join(tail[-3:])[:300] or
                                               proc.stderr[-300:], "example": str(args.findings)}
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", nargs="*", default=["dm", "tiff"], choices=sorted(SEEDS))
    ap.add_argument("--runs", type=int, default=20000, help="executions per target (-1: until --seconds)")
    ap.add_argument("--seconds", type=int, default=300, help="time limit per target")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a hang otherwise)")
    ap.add_argument("--max-len", type=int, default=1 << 20, help="largest input in bytes")
    ap.add_argument("--rss-mb", type=int, default=4096, help="memory limit of the fuzzing process")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus", type=Path, nargs="*", default=[], help="more seed folders")
    ap.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    ap.add_argument("--json", action="store_true", help="print the statistics as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.stats, args.findings, args.libfuzzer)
        return
    args.findings = args.findings.resolve()
    work = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    try:
        results = [run_target(t, args, work) for t in args.target]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for s in results:
            print(f"{s['target']:5} {s['executions']:>8} executions in {s['seconds']:>6.1f} s from {s['seeds']} seeds: "
                  f"{s.get('refused', 0)} refused cleanly, {s.get('accepted', 0)} read, "
                  f"{len(s['findings'])} distinct finding(s)")
            for key, f in s["findings"].items():
                print(f"      {key}  x{f['count']}: {f['message']}  ({f['example']})")
    if any(s["findings"] for s in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
