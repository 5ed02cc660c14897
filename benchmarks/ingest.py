#!/usr/bin/env python
"""Ingest benchmark: `curate ingest` against the raw-copy limit, ome-zarr-py and tensorstore.

Usage::

    .venv/bin/python benchmarks/ingest.py [--sizes 0.25] [--layouts slices single]
        [--dtypes uint8] [--workdir DIR] [--json OUT]
    .venv/bin/python benchmarks/ingest.py --sizes 1 4 8 --layouts single   # issue 13's figures

For each size (GB), dtype and layout it generates an EM-like volume (smooth texture plus
shot noise, drift between slices), streamed to disk slice by slice, as

* ``slices``: a folder of uncompressed per-slice TIFFs, or
* ``single``: one contiguous multi-page (Big)TIFF, the layout that stalled in issue 13,

then times, each in a fresh subprocess:

  (a) ``curate ingest`` with default options: full pyramid, sha256 of every source file,
      per-shard checksums, OME-Zarr validation and the DataLad save;
  (b) the raw-copy limit: tifffile memmap to zarr v3 with the same codec, chunks and
      shards, level 0 only, no pyramid, no checksums, on the same number of threads;
  (c) ome-zarr-py ``write_image`` of the same data as a dask array (its default pyramid);
  (d) tensorstore, level 0 only, sharded zarr v3 with zstd (skipped with a line when it is
      not installed: it is not a dependency).

Memory is reported twice, as peaks summed over the process tree (sampled every 50 ms from
``/proc/PID/status``): anonymous memory (RssAnon: what a program allocates, what a memory
cap should bound) and file-backed memory (RssFile: mapped file pages, reclaimable by the
kernel; a memory-mapped source shows up here). Targets, as ratios within this run:
(a) >= 0.8 x (b); (a) >= 4 x (c); peak anonymous memory of the largest run <= 1.2 x the
smallest and under 1.5 GB. The machine's load average is printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from curation.testing import write_metadata

HERE = Path(__file__).resolve().parent
REPO = HERE.parent



def generate(folder: Path, size_gb: float, dtype: str, seed: int = 0, layout: str = "slices") -> tuple[int, int, int]:
    """Write an EM-like volume of about ``size_gb`` GB, one slice in memory: per-slice TIFFs
    in ``folder`` (``slices``) or ``folder/volume.tif``, one contiguous multi-page TIFF."""
    import tifffile

    itemsize = np.dtype(dtype).itemsize
    yx = 2048
    nz = max(1, int(round(size_gb * 1e9 / (yx * yx * itemsize))))
    folder.mkdir(parents=True, exist_ok=True)
    slices = _slices(nz, yx, dtype, seed)
    if layout == "single":
        tifffile.imwrite(folder / "volume.tif", slices, shape=(nz, yx, yx), dtype=dtype, contiguous=True,
                         bigtiff=nz * yx * yx * itemsize > 2**31)
    else:
        for z, plane in enumerate(slices):
            tifffile.imwrite(folder / f"slice_{z:05d}.tif", plane)
    return nz, yx, yx


def _slices(nz: int, yx: int, dtype: str, seed: int):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    fields = [ndimage.gaussian_filter(rng.normal(size=(yx, yx)).astype(np.float32), s) for s in (2, 6, 18)]
    fields = [f / f.std() for f in fields]
    hi = 255 if dtype == "uint8" else 4095
    # shot-like noise from a bank of fields, rolled differently per slice (fast, never repeating)
    noise = [rng.normal(0, 1, (yx, yx)).astype(np.float32) for _ in range(7)]
    for z in range(nz):
        tex = (np.roll(fields[0], z, axis=0) + np.roll(fields[1], z // 2, axis=1)
               + 0.5 * np.roll(fields[2], z // 4, axis=0))
        sig = np.clip(0.45 + 0.08 * tex + 0.01 * np.sin(z / 40.0), 0.02, 1.0) * hi
        sig += np.sqrt(sig * (hi / 255.0) * 8.0) * np.roll(noise[z % 7], (z * 131) % yx, axis=1)
        yield np.clip(sig, 0, hi).astype(dtype)


def _status_kb(pid: int) -> tuple[int, int]:
    anon = file = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("RssFile:"):
                file = int(line.split()[1]) * 1024
    return anon, file


class TreeRSS:
    """Peak anonymous and file-backed resident memory of a process tree, summed, sampled
    in a thread (anonymous and file-backed peaks are taken separately)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.anon = self.file = 0
        self._p = psutil.Process(proc.pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._p] + self._p.children(recursive=True)
            except psutil.Error:
                procs = []
            anon = file = 0
            for p in procs:
                try:
                    a, f = _status_kb(p.pid)
                except OSError:
                    continue
                anon, file = anon + a, file + f
            self.anon, self.file = max(self.anon, anon), max(self.file, file)
            time.sleep(0.05)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._t.join()
        return self.anon, self.file


def run(cmd: list[str], env: dict | None = None) -> tuple[float, tuple[int, int], str]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    mon = TreeRSS(proc)
    out, err = proc.communicate()
    peak = mon.stop()
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{err[-3000:]}")
    return dt, peak, out


def count_files(path: Path) -> int:
    return sum(len(files) for _d, _s, files in os.walk(path))


RAW_COPY = textwrap.dedent("""
    import sys, os, math, numpy as np, tifffile, zarr
    from concurrent.futures import ThreadPoolExecutor
    from zarr.codecs import ZstdCodec
    from curation.omezarr.layout import plan_pyramid
    folder, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    single = len(files) == 1
    first = tifffile.memmap(files[0])
    shape = first.shape if single else (len(files),) + first.shape
    if single:
        first = first[0]
    plan = plan_pyramid(shape, (8, 8, 8), str(first.dtype), max_levels=1)
    arr = zarr.create_array(out, shape=shape, dtype=first.dtype, chunks=plan.chunk, shards=plan.shard,
                            compressors=[ZstdCodec(level=3)], fill_value=0, dimension_names=["z", "y", "x"])
    def one(idx):
        region = plan.region(0, idx)
        if single:
            block = np.ascontiguousarray(tifffile.memmap(files[0])[region])
        else:
            block = np.empty(plan.region_shape(0, idx), first.dtype)
            for i, z in enumerate(range(region[0].start, region[0].stop)):
                block[i] = tifffile.memmap(files[z])[region[1], region[2]]
        arr[region] = block
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, plan.shards(0)))
""")

OME_ZARR_PY = textwrap.dedent("""
    import sys, os, dask.array as da, tifffile, zarr
    from ome_zarr.writer import write_image
    from dask import delayed
    folder, out = sys.argv[1], sys.argv[2]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    first = tifffile.memmap(files[0])
    if len(files) == 1:
        vol = da.from_array(first, chunks=(64, 512, 512))
    else:
        slices = [da.from_delayed(delayed(tifffile.imread)(f), first.shape, first.dtype) for f in files]
        vol = da.stack(slices).rechunk((64, 512, 512))
    group = zarr.open_group(out, mode="w")
    write_image(vol, group, axes="zyx", storage_options={"chunks": (64, 64, 64)})
""")


TENSORSTORE = textwrap.dedent("""
    import sys, os, numpy as np, tifffile, tensorstore as ts
    from concurrent.futures import ThreadPoolExecutor
    from curation.omezarr.layout import plan_pyramid
    folder, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    single = len(files) == 1
    first = tifffile.memmap(files[0])
    shape = first.shape if single else (len(files),) + first.shape
    dtype = first.dtype
    plan = plan_pyramid(shape, (8, 8, 8), str(dtype), max_levels=1)
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": out},
            "metadata": {"shape": list(shape), "data_type": str(dtype),
                         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(plan.shard)}},
                         "codecs": [{"name": "sharding_indexed", "configuration": {
                             "chunk_shape": list(plan.chunk),
                             "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                        {"name": "zstd", "configuration": {"level": 3}}]}}]},
            "create": True, "delete_existing": True}
    arr = ts.open(spec).result()
    def one(idx):
        region = plan.region(0, idx)
        if single:
            block = np.ascontiguousarray(tifffile.memmap(files[0])[region])
        else:
            block = np.stack([tifffile.memmap(files[z])[region[1], region[2]]
                              for z in range(region[0].start, region[0].stop)])
        arr[region].write(block).result()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, plan.shards(0)))
""")


def have_tensorstore() -> bool:
    r = subprocess.run([sys.executable, "-c", "import tensorstore"], capture_output=True)
    return r.returncode == 0


def bench_one(size_gb: float, dtype: str, work: Path, threads: int, layout: str = "slices",
              peers: str = "abcd") -> dict:
    py = sys.executable
    curate = str(Path(py).parent / "curate")
    src = work / f"src-{size_gb:g}GB-{dtype}-{layout}"
    t = time.perf_counter()
    shape = generate(src, size_gb, dtype, layout=layout)
    gen_s = time.perf_counter() - t
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    md = work / "metadata.yaml"
    write_metadata(md, {"z": 8, "y": 8, "x": 8})
    row = {"size_gb": size_gb, "dtype": dtype, "layout": layout, "shape": shape, "bytes": nbytes,
           "generate_s": round(gen_s, 1), "load": os.getloadavg()[0]}
    source = str(src / "volume.tif") if layout == "single" else str(src)

    arch = work / "archive"
    shutil.rmtree(arch, ignore_errors=True)
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
    run([curate, "init", str(arch)], env)
    subprocess.run(["sync"])
    dt, peak, out = run([curate, "ingest", str(arch), source, "--metadata", str(md), "--name", "vol",
                         "--no-progress", "--json"], env)
    rec = json.loads(out)
    engine = json.loads((arch / "acquisitions" / "vol" / "provenance" / "ingest.json").read_text())["engine"]
    row["a"] = {"s": dt, "mb_s": nbytes / 1e6 / dt, "anon": peak[0], "file": peak[1], "engine": engine.get("kind"),
                "files": count_files(arch / "acquisitions" / "vol" / "vol.ome.zarr"),
                "save_s": rec.get("save_seconds"), "levels": rec.get("levels")}
    shutil.rmtree(arch, ignore_errors=True)

    skipped = {"skipped": "not asked for (--peers)"}
    row["b"] = row["c"] = row["d"] = skipped
    if "b" in peers:
        row["b"] = raw_copy(py, src, work, threads, nbytes)
    if "c" in peers:
        row["c"] = ome_zarr_py(py, src, work, nbytes)
    if "d" in peers:
        row["d"] = tensorstore(py, src, work, threads, nbytes)
    shutil.rmtree(src, ignore_errors=True)
    return row


def raw_copy(py: str, src: Path, work: Path, threads: int, nbytes: int) -> dict:
    raw = work / "raw.zarr"
    shutil.rmtree(raw, ignore_errors=True)
    subprocess.run(["sync"])
    dt, peak, _ = run([py, "-c", RAW_COPY, str(src), str(raw), str(threads)])
    out = {"s": dt, "mb_s": nbytes / 1e6 / dt, "anon": peak[0], "file": peak[1], "files": count_files(raw)}
    shutil.rmtree(raw, ignore_errors=True)
    return out


def ome_zarr_py(py: str, src: Path, work: Path, nbytes: int) -> dict:
    omz = work / "omezarr-py.zarr"
    shutil.rmtree(omz, ignore_errors=True)
    subprocess.run(["sync"])
    try:
        dt, peak, _ = run([py, "-c", OME_ZARR_PY, str(src), str(omz)])
        out = {"s": dt, "mb_s": nbytes / 1e6 / dt, "anon": peak[0], "file": peak[1], "files": count_files(omz)}
    except RuntimeError as exc:
        out = {"error": str(exc).splitlines()[-1][:200]}
    shutil.rmtree(omz, ignore_errors=True)
    return out


def tensorstore(py: str, src: Path, work: Path, threads: int, nbytes: int) -> dict:
    tsz = work / "tensorstore.zarr"
    if have_tensorstore():
        shutil.rmtree(tsz, ignore_errors=True)
        subprocess.run(["sync"])
        try:
            dt, peak, _ = run([py, "-c", TENSORSTORE, str(src), str(tsz), str(threads)])
            out = {"s": dt, "mb_s": nbytes / 1e6 / dt, "anon": peak[0], "file": peak[1],
                   "files": count_files(tsz)}
        except RuntimeError as exc:
            out = {"error": str(exc).splitlines()[-1][:200]}
        shutil.rmtree(tsz, ignore_errors=True)
        return out
    return {"skipped": "tensorstore is not installed (pip install tensorstore, outside the project venv)"}


def fmt_row(label: str, r: dict) -> str:
    if "error" in r:
        return f"  {label:36} failed: {r['error']}"
    if "skipped" in r:
        return f"  {label:36} skipped: {r['skipped']}"
    extra = f"  (save {r['save_s']:.1f} s = {100 * r['save_s'] / r['s']:.0f}%)" if r.get("save_s") else ""
    extra += f"  [engine {r['engine']}]" if r.get("engine") else ""
    return (f"  {label:36} {r['s']:7.1f} s {r['mb_s']:7.1f} MB/s  anon {r['anon'] / 2**20:6.0f} MiB  "
            f"file {r['file'] / 2**20:6.0f} MiB {r['files']:7d} files{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[0.25],
                    help="volume sizes in GB (issue 13's figures: 1 4 8)")
    ap.add_argument("--dtypes", nargs="+", default=["uint8"])
    ap.add_argument("--layouts", nargs="+", default=["slices", "single"], choices=["slices", "single"],
                    help="a folder of per-slice TIFFs, one contiguous multi-page TIFF, or both")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for (b)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--peers", default="bcd", help="peers to run besides (a): b raw copy, c ome-zarr-py, "
                    "d tensorstore (e.g. --peers b to skip the slow ome-zarr-py at 4 and 8 GB)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="curation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"# ingest benchmark on {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"work in {work}", flush=True)
    for layout in args.layouts:
        for dtype in args.dtypes:
            for size in args.sizes:
                row = bench_one(size, dtype, work, args.threads, layout, args.peers)
                rows.append(row)
                what = "per-slice TIFFs" if layout == "slices" else "one multi-page TIFF"
                print(f"\n{size:g} GB {dtype} {tuple(row['shape'])} as {what} (generated in {row['generate_s']} s; "
                      f"load average {row['load']:.1f})", flush=True)
                print(fmt_row("(a) curate ingest", row["a"]))
                print(fmt_row("(b) raw copy: memmap -> zarr v3", row["b"]))
                print(fmt_row("(c) ome-zarr-py write_image", row["c"]))
                print(fmt_row("(d) tensorstore, level 0 only", row["d"]), flush=True)
                ab = row["a"]["mb_s"] / row["b"]["mb_s"] if "mb_s" in row["b"] else float("nan")
                ac = row["a"]["mb_s"] / row["c"]["mb_s"] if "mb_s" in row["c"] else float("nan")
                ad = f", (a)/(d) = {row['a']['mb_s'] / row['d']['mb_s']:.2f} (target >= 1)" if "mb_s" in row["d"] else ""
                print(f"  ratios: (a)/(b) = {ab:.2f} (target >= 0.8), (a)/(c) = {ac:.2f} (target >= 4){ad}")
    for layout in args.layouts:
        for dtype in args.dtypes:
            mine = [r for r in rows if r["dtype"] == dtype and r["layout"] == layout]
            if len(mine) >= 2:
                small, large = mine[0], mine[-1]
                ratio = large["a"]["anon"] / small["a"]["anon"]
                print(f"\npeak anonymous memory, {dtype} {layout}: {large['size_gb']:g} GB run "
                      f"{large['a']['anon'] / 2**20:.0f} MiB vs {small['size_gb']:g} GB run "
                      f"{small['a']['anon'] / 2**20:.0f} MiB: ratio {ratio:.2f} (target <= 1.2), "
                      f"under 1.5 GB: {large['a']['anon'] < 1.5e9}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
