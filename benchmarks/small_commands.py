#!/usr/bin/env python
"""Small commands must feel instant (issue 12): wall time of `curate` on small inputs.

Usage::

    .venv/bin/python benchmarks/small_commands.py [--repeat 3] [--baseline /work/main] [--json OUT]

Each command runs as a librarian runs it, in a fresh subprocess (``python -m curation``,
imports included), on a 10 MB volume: ``--help``, ``list``, ``show``, ``ingest`` of a
10 MB multi-page TIFF, and ``labels import`` of a 10 MB mask stack. The best of
``--repeat`` runs is reported (ingest and import write a new acquisition or version each
time). Targets: ``list``/``show`` < 0.5 s, 10 MB ingest or label import < 1.5 s.

``--baseline DIR`` runs the same commands with another checkout's code (``PYTHONPATH=DIR``,
e.g. the main branch before this change) in the same run, and prints before/after ratios.
The machine's load average is printed, since a shared machine slows every figure; CPU
seconds (user + system, the command and its children) are printed beside the wall time,
as they suffer less from a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = {"list": 0.5, "show": 0.5, "ingest 10 MB": 1.5, "labels import 10 MB": 1.5}


def curate(code: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children)."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(code), "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.org"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # cwd: not a checkout (``python -m`` puts the working folder first on sys.path)
    r = subprocess.run([sys.executable, "-m", "curation", *args], capture_output=True, text=True, env=env,
                       cwd=tempfile.gettempdir())
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"curate {' '.join(args[:3])} failed: {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu


def bench(code: Path, work: Path, repeat: int) -> dict[str, tuple[float, float]]:
    import tifffile

    sys.path.insert(0, str(code))
    from curation.testing import em_like_volume, write_metadata

    work.mkdir(parents=True, exist_ok=True)
    vol = em_like_volume((40, 512, 512), "uint8", seed=1)  # 10.5 MB
    tifffile.imwrite(work / "vol.tif", vol)
    masks = (vol > 128).astype(np.uint8)
    tifffile.imwrite(work / "masks.tif", masks)
    md = write_metadata(work / "m.yaml", {"z": 8, "y": 8, "x": 8})
    arch = work / "arch"
    curate(code, "init", str(arch), "--title", "small commands")
    curate(code, "ingest", str(arch), str(work / "vol.tif"), "--metadata", str(md), "--name", "warm", "--no-progress")
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in ("--help", "list", "show", "ingest 10 MB", "labels import 10 MB")}
    for k in range(repeat):
        out["--help"].append(curate(code, "--help"))
        out["list"].append(curate(code, "list", str(arch)))
        out["show"].append(curate(code, "show", str(arch), "warm"))
        out["ingest 10 MB"].append(curate(code, "ingest", str(arch), str(work / "vol.tif"), "--metadata", str(md),
                                          "--name", f"v{k}", "--no-progress"))
        out["labels import 10 MB"].append(curate(code, "labels", "import", str(arch), "warm", str(work / "masks.tif"),
                                                 "--layer", f"l{k}"))
    sys.path.remove(str(code))
    for mod in [m for m in sys.modules if m == "curation" or m.startswith("curation.")]:
        del sys.modules[mod]
    return {k: min(v) for k, v in out.items()}  # the run with the least wall time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="another checkout to compare with (before)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curation-small-"))
    try:
        print(f"# small commands, best of {args.repeat}; {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        rows = {"after": bench(REPO, work / "after", args.repeat)}
        if args.baseline:
            rows["before"] = bench(args.baseline.resolve(), work / "before", args.repeat)
        print(f"\n{'command':22} {'wall before':>11} {'after':>7} {'ratio':>6}   {'CPU before':>10} {'after':>7}"
              f"   target (wall)")
        for cmd, (after, after_cpu) in rows["after"].items():
            before, before_cpu = rows.get("before", {}).get(cmd, (None, None))
            b = f"{before:10.2f}s" if before else "          -"
            bc = f"{before_cpu:9.2f}s" if before_cpu else "         -"
            r = f"{after / before:6.2f}" if before else "     -"
            target = TARGETS.get(cmd)
            t = (f"< {target:g} s " + ("ok" if after < target else "MISS")) if target else ""
            print(f"{cmd:22} {b} {after:6.2f}s {r}   {bc} {after_cpu:6.2f}s   {t}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
