#!/usr/bin/env python
"""Blockwise connected components against cc3d on the whole volume.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/components.py [--shape 256 512 512] [--block 128 256 256]
        [--workers 1 2] [--budget-mib 256] [--repeats 3] [--workdir DIR] [--skip-memory]

It writes an EM-segmentation-like label volume (smooth blobs of every size crossing many
blocks, plus small specks) as a sharded zarr array, slab by slab, and runs each job in a
fresh subprocess:

  (a) cc3d on the whole volume, already in memory: ``connected_components`` (26) and
      ``statistics`` (voxel counts, bounding boxes, centroids); reading is not timed;
  (b) ``curation.analysis.components.connected_components`` from the zarr array on disk:
      labels (to its scratch), face merge, union-find and the same statistics, on 1 and
      on N worker threads.

Throughput target: (b) >= 0.5 x (a), in voxels per second, best of ``--repeats``.

Memory: a second volume whose uint32 labels are 8x the block budget (``--budget-mib``:
the blocks in flight, i.e. workers x block voxels x 10 bytes: the uint8 block, its uint32
labels and cc3d's working arrays) is labelled blockwise while the anonymous RSS of the
process tree (RssAnon in /proc/PID/status, summed, sampled every 20 ms) is recorded;
it prints peak / budget and peak / the volume's label bytes, and the same for cc3d on
the whole volume (read into memory first, as it must be).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: bytes a blockwise task holds per voxel of its block (uint8 in, uint32 labels, cc3d)
TASK_BYTES_PER_VOXEL = 10


# --- the volume -------------------------------------------------------------------------------


def generate(path: Path, shape: tuple[int, int, int], shard: tuple[int, int, int], seed: int = 0) -> dict:
    """Smooth blobs (a trilinearly upsampled random field, thresholded) plus 0.05% specks,
    as a uint8 zarr array with 64^3 chunks in ``shard`` shards; one slab in memory."""
    import zarr
    from scipy import ndimage
    from zarr.codecs import ZstdCodec

    rng = np.random.default_rng(seed)
    f = 8
    low = ndimage.gaussian_filter(rng.normal(size=tuple(n // f + 3 for n in shape)), 1.0)
    low /= low.std()
    chunk = tuple(min(64, s) for s in shard)
    arr = zarr.create_array(str(path), shape=shape, dtype="uint8", chunks=chunk, shards=shard, fill_value=0,
                            compressors=[ZstdCodec(level=1)], overwrite=True)
    fg = 0
    for z0 in range(0, shape[0], shard[0]):
        z1 = min(z0 + shard[0], shape[0])
        lo = z0 // f
        up = ndimage.zoom(low[lo:z1 // f + 3], f, order=1)[z0 - lo * f:z1 - lo * f, :shape[1], :shape[2]]
        slab = (up > 0.35).astype(np.uint8)
        speck = rng.random(slab.shape, dtype=np.float32) < 5e-4
        slab[speck] = 1
        arr[z0:z1] = slab
        fg += int(slab.sum())
    return {"shape": list(shape), "foreground": fg / math.prod(shape)}


# --- jobs (run in a fresh interpreter) ----------------------------------------------------------


def job_cc3d(path: str) -> dict:
    import cc3d
    import zarr

    vol = zarr.open_array(path, mode="r")[:]
    t = time.perf_counter()
    labels = cc3d.connected_components(vol, connectivity=26)
    stats = cc3d.statistics(labels, no_slice_conversion=True)
    dt = time.perf_counter() - t
    return {"seconds": dt, "objects": int(len(stats["voxel_counts"]) - 1)}


def job_blockwise(path: str, block: list[int], workers: int, scratch: str) -> dict:
    import zarr

    from curation.analysis import components
    from curation.analysis.components import connected_components

    components.warm_up()  # imports cc3d, numcodecs, scipy.sparse: not part of the work
    arr = zarr.open_array(path, mode="r")
    executor = "inline" if workers == 1 else "threads"
    t = time.perf_counter()
    with connected_components(arr, connectivity=26, block_shape=tuple(block), executor=executor, workers=workers,
                              scratch=Path(scratch) / f"run-{os.getpid()}") as comp:
        dt = time.perf_counter() - t
        n = comp.n_objects
    shutil.rmtree(Path(scratch) / f"run-{os.getpid()}", ignore_errors=True)
    return {"seconds": dt, "objects": n}


# --- measuring -----------------------------------------------------------------------------------


def rss_anon(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeAnon:
    """Peak RssAnon summed over a process and its descendants, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._p = psutil.Process(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pids = [self._p.pid] + [c.pid for c in self._p.children(recursive=True)]
            except psutil.Error:
                pids = [self._p.pid]
            self.peak = max(self.peak, sum(rss_anon(p) for p in pids))
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def run_job(name: str, *args: str) -> tuple[dict, int]:
    cmd = [sys.executable, __file__, "_job", name, *args]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    mon = TreeAnon(proc.pid)
    out, err = proc.communicate()
    peak = mon.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), peak


def baseline_anon() -> int:
    """RssAnon of an interpreter with numpy, zarr, cc3d and curation imported."""
    _, peak = run_job("idle")
    return peak


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[256, 512, 512])
    ap.add_argument("--block", type=int, nargs=3, default=[128, 256, 256])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-mib", type=int, default=256)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-components-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args, work: Path) -> int:
    shape, block = tuple(args.shape), tuple(args.block)
    vol = work / "volume.zarr"
    info = generate(vol, shape, block)
    voxels = math.prod(shape)
    print(f"volume {shape} uint8 ({voxels / 1e6:.0f} M voxels, {info['foreground']:.0%} foreground), "
          f"blocks {block}, {os.cpu_count()} cores")
    idle = baseline_anon()
    print(f"interpreter with imports: {mib(idle)} anonymous")

    best: dict[str, float] = {}
    objects = set()
    for _ in range(args.repeats):
        r, _ = run_job("cc3d", str(vol))
        best["cc3d"] = min(best.get("cc3d", math.inf), r["seconds"])
        objects.add(r["objects"])
        for w in args.workers:
            r, _ = run_job("blockwise", str(vol), json.dumps(list(block)), str(w), str(work))
            best[f"blockwise x{w}"] = min(best.get(f"blockwise x{w}", math.inf), r["seconds"])
            objects.add(r["objects"])
    if len(objects) != 1:
        print(f"MISMATCH: object counts differ between runs: {sorted(objects)}")
        return 1
    print(f"\nthroughput (best of {args.repeats}; {objects.pop():,} objects, equal in every run)")
    print(f"  {'job':<16}{'seconds':>9}{'M voxels/s':>12}{'vs cc3d':>9}")
    for name, s in best.items():
        print(f"  {name:<16}{s:9.2f}{voxels / s / 1e6:12.1f}{best['cc3d'] / s:9.2f}x")
    ratio = max(best["cc3d"] / s for n, s in best.items() if n != "cc3d")
    print(f"  target: blockwise >= 0.5 x cc3d on the whole volume: {'met' if ratio >= 0.5 else 'NOT met'} "
          f"({ratio:.2f}x)")
    if args.skip_memory:
        return 0

    # memory: labels 8x the block budget
    workers = max(args.workers)
    budget = args.budget_mib * 2**20
    mblock = _block_for(budget // (workers * TASK_BYTES_PER_VOXEL))
    mvoxels = 8 * budget // 4
    edge = int(round((mvoxels / 4) ** (1 / 3)))
    mshape = (edge, 2 * edge, 2 * edge)
    big = work / "big.zarr"
    shutil.rmtree(vol, ignore_errors=True)
    generate(big, mshape, mblock, seed=1)
    label_bytes = math.prod(mshape) * 4
    r, peak = run_job("blockwise", str(big), json.dumps(list(mblock)), str(workers), str(work))
    r0, peak0 = run_job("cc3d", str(big))
    print(f"\nmemory: volume {mshape} ({math.prod(mshape) / 1e6:.0f} M voxels; uint32 labels {mib(label_bytes)}"
          f" = {label_bytes / budget:.1f} x the block budget of {mib(budget)}), blocks {mblock}, {workers} workers")
    print(f"  blockwise: peak {mib(peak)} anonymous ({mib(peak - idle)} above the interpreter) = "
          f"{(peak - idle) / budget:.2f} x budget, {peak / label_bytes:.2f} x the labels; {r['seconds']:.1f} s, "
          f"{r['objects']:,} objects")
    print(f"  cc3d:      peak {mib(peak0)} anonymous = {peak0 / label_bytes:.2f} x the labels; {r0['seconds']:.1f} s, "
          f"{r0['objects']:,} objects")
    ok = r["objects"] == r0["objects"]
    print(f"  same objects: {'yes' if ok else 'NO'}; blockwise peak / cc3d peak: {peak / peak0:.2f}")
    return 0 if ok else 1


def _block_for(voxels: int) -> tuple[int, int, int]:
    """A block of about ``voxels`` voxels, (n, 2n, 2n), multiples of 32."""
    n = max(32, int((voxels / 4) ** (1 / 3)) // 32 * 32)
    return (n, 2 * n, 2 * n)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_job":
        name, rest = sys.argv[2], sys.argv[3:]
        if name == "idle":
            import cc3d  # noqa: F401
            import zarr  # noqa: F401

            import curation.analysis.components  # noqa: F401

            time.sleep(0.3)
            result = {}
        elif name == "cc3d":
            result = job_cc3d(rest[0])
        else:
            result = job_blockwise(rest[0], json.loads(rest[1]), int(rest[2]), rest[3])
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())
