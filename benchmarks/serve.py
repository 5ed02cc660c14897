#!/usr/bin/env python
"""Tile latency of `curate serve` against reading the same regions straight from zarr.

Usage::

    .venv/bin/python benchmarks/serve.py [--shape 512,1024,1536] [--workdir DIR] [--keep]

It generates an EM-like uint8 volume (smooth texture plus noise, streamed slab by slab
into a TIFF), ingests it with the default layout (64^3 chunks in shards), then, against
`curate serve` running as its own process, requests 512 x 512 xy tiles at level 0 over
HTTP/1.1 keep-alive connections, with 1 and with 8 concurrent clients:

* **cold**: a freshly started server (empty decoded-chunk and tile caches, after one
  request at the coarsest level has loaded the code and opened the arrays); every tile
  lies in chunks no other tile of the run touches (one tile per z chunk row and tile
  position), so each one decodes its 64 chunks. The OS page cache is not dropped (the
  machine is shared), so the shard files are likely in memory: this is the decode and
  render cost, not the disk's.
* **warm**: tiles at other slices of the chunks the last 24 cold tiles decoded (what
  moving the slider or panning back does; 24 tiles of 16 MB of chunks fit the 512 MB
  cache): decoded chunks come from the cache, the tile is cut, contrasted, encoded.

The baseline is the same regions read in this process with zarr-python
(``array[z, y0:y1, x0:x1]`` on a freshly opened array, no cache) by 1 and by 8 threads.
It prints median and p95 per case, the ratio server/zarr, the server's RssAnon, and the
target: p95 under 150 ms with 8 clients.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CURATE = str(Path(sys.executable).parent / "curate")
TILE = 512
TARGET_P95_S = 0.150


def generate(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """An EM-like volume as one multi-page TIFF, written slab by slab (little memory)."""
    import tifffile
    from scipy import ndimage

    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    fields = [ndimage.gaussian_filter(rng.normal(size=(ny, nx)).astype(np.float32), s) for s in (2, 6, 18)]
    fields = [f / f.std() for f in fields]
    noise = rng.normal(0, 12, size=(ny, nx)).astype(np.float32)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for z in range(nz):
            shift = (z * 7) % ny, (z * 13) % nx
            img = 128 + 18 * fields[0] + 14 * np.roll(fields[1], z // 4, axis=0) + 10 * np.roll(fields[2], z // 16, 1)
            img += np.roll(noise, shift, axis=(0, 1))
            tw.write(np.clip(img, 0, 255).astype(np.uint8), contiguous=True)


def build(workdir: Path, shape: tuple[int, int, int]) -> Path:
    from curation.testing import write_metadata

    root = workdir / "archive"
    if (root / "acquisitions" / "bench" / "metadata.json").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    tif = workdir / "bench.tif"
    t0 = time.monotonic()
    generate(tif, shape)
    print(f"generated {tif.stat().st_size / 1e6:.0f} MB in {time.monotonic() - t0:.0f} s", flush=True)
    md = write_metadata(workdir / "bench.yaml", {"z": 8, "y": 8, "x": 8})
    subprocess.run([CURATE, "init", str(root)], check=True, capture_output=True)
    t0 = time.monotonic()
    subprocess.run([CURATE, "ingest", str(root), str(tif), "--metadata", str(md), "--name", "bench"], check=True,
                   capture_output=True)
    print(f"ingested in {time.monotonic() - t0:.0f} s", flush=True)
    tif.unlink()
    return root


class Server:
    def __init__(self, root: Path) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([CURATE, "serve", str(root), "--port", str(self.port), "--cache-mb", "512"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/api/acquisitions")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def rss_anon_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def fetch_all(port: int, urls: list[str], clients: int) -> list[float]:
    """Latency of each GET, ``clients`` connections working through ``urls`` together."""
    out: list[float] = []
    lock = threading.Lock()
    queue = list(urls)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                url = queue.pop(0)
            t0 = time.perf_counter()
            conn.request("GET", url)
            r = conn.getresponse()
            body = r.read()
            dt = time.perf_counter() - t0
            assert r.status == 200 and body[:4] == b"\x89PNG", (r.status, url)
            with lock:
                out.append(dt)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def zarr_reads(path: Path, regions: list[tuple], threads: int) -> list[float]:
    import zarr

    arr = zarr.open_array(str(path), mode="r")

    def one(r):
        t0 = time.perf_counter()
        np.asarray(arr[r])
        return time.perf_counter() - t0

    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(one, regions))


def stats(ts: list[float]) -> tuple[float, float]:
    return statistics.median(ts), float(np.percentile(ts, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="512,1024,1536", help="z,y,x of the generated volume")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the archive (reused by the next run with --workdir)")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="serve-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        root = build(workdir, shape)
        level0 = root / "acquisitions" / "bench" / "bench.ome.zarr" / "0"
        nz, ny, nx = shape
        rows, cols = ny // TILE, nx // TILE
        levels = len([p for p in level0.parent.iterdir() if p.name.isdigit()])
        zchunks = nz // 64
        # cold: one tile per (z chunk row, tile row, tile col), at a slice inside that chunk row
        cold = [(zc * 64 + 17, r, c) for zc in range(zchunks) for r in range(rows) for c in range(cols)]
        rng = np.random.default_rng(0)
        rng.shuffle(cold)
        # warm: other slices of the chunks of the last cold tiles, as many as the 512 MB
        # cache holds (a 512 x 512 tile of 64^3 uint8 chunks decodes 16 MB)
        recent = cold[-24:]
        warm = [(z + 1 + k, r, c) for (z, r, c) in recent for k in (0, 20)]
        rng.shuffle(warm)

        def url(t):
            return f"/tile/bench/image/xy/0/{t[0]}/{t[1]}/{t[2]}?lo=0&hi=255&size={TILE}"

        def region(t):
            return (t[0], slice(t[1] * TILE, (t[1] + 1) * TILE), slice(t[2] * TILE, (t[2] + 1) * TILE))

        results = {}
        rss = []
        for clients in (1, 8):
            srv = Server(root)
            try:
                # load the code paths and open the arrays (a coarse level, chunks no tile below uses)
                fetch_all(srv.port, [f"/tile/bench/image/xy/{levels - 1}/0/0/0?lo=0&hi=255&size={TILE}"], 1)
                results[("cold", clients)] = fetch_all(srv.port, [url(t) for t in cold], clients)
                results[("warm", clients)] = fetch_all(srv.port, [url(t) for t in warm], clients)
                rss.append(srv.rss_anon_mb())
            finally:
                srv.stop()
            results[("zarr", clients)] = zarr_reads(level0, [region(t) for t in cold], clients)
        print(f"\nvolume {shape} uint8, 64^3 chunks; {len(cold)} cold tiles, {len(warm)} warm tiles of "
              f"{TILE} x {TILE}; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the end")
        print(f"{'case':28} {'median ms':>10} {'p95 ms':>10} {'p95 / zarr p95':>15}")
        for clients in (1, 8):
            zm, zp = stats(results[("zarr", clients)])
            print(f"{'zarr read, ' + str(clients) + ' thread(s)':28} {zm * 1e3:10.1f} {zp * 1e3:10.1f} {1.0:15.2f}")
            for kind in ("cold", "warm"):
                m, p = stats(results[(kind, clients)])
                print(f"{'tile ' + kind + ', ' + str(clients) + ' client(s)':28} {m * 1e3:10.1f} {p * 1e3:10.1f} "
                      f"{p / zp:15.2f}")
        print(f"server RssAnon after the run: {', '.join(f'{r:.0f} MB' for r in rss)} (cache cap 512 MB)")
        ok = True
        for kind in ("cold", "warm"):
            p = stats(results[(kind, 8)])[1]
            good = p < TARGET_P95_S
            ok &= good
            print(f"target p95 < {TARGET_P95_S * 1e3:.0f} ms with 8 clients, {kind}: {p * 1e3:.0f} ms "
                  f"{'met' if good else 'NOT met'}")
        return 0
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
