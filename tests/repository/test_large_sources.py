"""Large single-file sources under a small memory cap, the stall watchdog, and headers that
claim huge dimensions (issues 12 and 13).

The big case: a 160 MiB multi-page TIFF against a 32 MiB cap. Before positioned reads and
the engine's own memory plan, Dask paused the in-process worker on its resident memory
(file-backed pages of the memory-mapped source, plus the interpreter) and the ingest hung
for ever; now it completes, and the process's file-backed memory does not grow with the
file (no long-lived map of the source).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from curation.errors import CorruptSourceError, InsufficientSpaceError, StallError
from curation.omezarr.layout import plan_pyramid
from curation.omezarr.ngff import multiscales
from curation.provenance import IngestRecord, read_record
from curation.readers import open_source
from curation.readers.pread import PositionedFile, read_index
from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive
from curation.repository.ingest import check_space, ingest
from curation.repository.pyramid import WriteOptions, write_pyramid
from curation.testing import ArraySource, em_like_volume, write_metadata

PAGES, SIDE = 160, 1024  # 160 MiB of uint8, five times the cap
CAP = "32MiB"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("large") / "arch"
    init_archive(root, title="Large single-file sources")
    return root


@pytest.fixture(scope="module")
def big_tiff(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A contiguous multi-page TIFF of PAGES x SIDE x SIDE uint8, each page a rolled tile."""
    tile = em_like_volume((4, SIDE, SIDE // 4), "uint8", seed=7)
    path = tmp_path_factory.mktemp("bigtiff") / "big.tif"

    def page(z: int) -> np.ndarray:
        return np.roll(np.tile(tile[z % 4], (1, 4)), z * 7, axis=1)

    tifffile.imwrite(path, (page(z) for z in range(PAGES)), shape=(PAGES, SIDE, SIDE), dtype="uint8",
                     contiguous=True)
    probes = np.stack([page(z) for z in (0, 1, PAGES // 2, PAGES - 1)])
    return path, probes


def _rss() -> tuple[int, int]:
    """(RssAnon, RssFile) of this process in bytes."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                k, v = line.split(":")
                fields[k] = int(v.split()[0]) * 1024
    return fields["RssAnon"], fields["RssFile"]


class _Peak:
    def __init__(self) -> None:
        self.base = _rss()
        self.peak = list(self.base)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            a, f = _rss()
            self.peak = [max(self.peak[0], a), max(self.peak[1], f)]

    def __enter__(self) -> "_Peak":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()

    @property
    def file_growth(self) -> int:
        return self.peak[1] - self.base[1]


# --- positioned reads ---------------------------------------------------------------------


def test_read_index_matches_numpy(tmp_path):
    a = (np.arange(3 * 5 * 40 * 3, dtype=">u2") * 7).reshape(3, 5, 40, 3)
    path = tmp_path / "a.raw"
    path.write_bytes(b"HEAD" + a.tobytes())
    fh = PositionedFile(str(path))
    try:
        for index in [(slice(None),) * 4, (1, slice(1, 4), slice(2, 9), slice(None)),
                      (slice(0, 3), 2, slice(0, 40), 1), (slice(1, 2), slice(0, 5), slice(39, 40), slice(0, 2)),
                      (slice(0, 3), slice(0, 0), slice(None), slice(None))]:
            np.testing.assert_array_equal(read_index(fh, 4, a.dtype, a.shape, index), a[index])
    finally:
        fh.close()
    with pytest.raises(CorruptSourceError, match="truncated"):
        read_index(PositionedFile(str(path)), 100, a.dtype, a.shape, (slice(None),) * 4)


# --- a big multi-page TIFF under a small cap, on every local engine ------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "cluster", "processes"])
def test_multipage_tiff_larger_than_the_cap_completes(archive, big_tiff, tmp_path, scheduler):
    path, probes = big_tiff
    assert path.stat().st_size >= 5 * 32 * 1024**2
    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    name = f"big-{scheduler}"
    opts = WriteOptions(scheduler=scheduler, memory_limit=CAP, stall_timeout=120)
    with _Peak() as peak:
        [rec] = ingest(archive, [path], md, name=name, options=opts)
    assert rec.status.value == "ok"
    # no map of the source: file-backed memory does not grow with the file
    if scheduler != "processes":
        assert peak.file_growth < path.stat().st_size // 2, peak.peak
    arr = zarr.open_group(str(archive / "acquisitions" / name / f"{name}.ome.zarr"), mode="r")["0"]
    assert arr.shape == (PAGES, SIDE, SIDE)
    np.testing.assert_array_equal(arr[[0, 1, PAGES // 2, PAGES - 1]], probes)
    record = read_record(archive / "acquisitions" / name / "provenance" / "ingest.json", IngestRecord)
    assert record.engine.kind == scheduler
    assert record.engine.memory_limit == 32 * 1024**2


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["cluster", "external"])
def test_3d_dm_under_a_tiny_cap_completes(archive, shared_data, tmp_path, scheduler):
    dm = shared_data / "dm" / "dmTest_3D_int16_64-65-66.dm4"
    md = write_metadata(tmp_path / "m.yaml")
    name = f"dm3d-{scheduler}"
    if scheduler == "external":  # a scheduler and a worker process of their own, with a 1 GiB cap
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, memory_limit="1GiB",
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        scheduler = cluster.scheduler_address
    else:
        cluster = None
    try:
        opts = WriteOptions(scheduler=scheduler, memory_limit="8MiB", stall_timeout=120)
        [rec] = ingest(archive, [dm], md, name=name, chunk=(16, 16, 16), shard=(32, 32, 32), options=opts)
    finally:
        if cluster is not None:
            cluster.close()
    assert rec.status.value == "ok"
    record = read_record(archive / "acquisitions" / name / "provenance" / "ingest.json", IngestRecord)
    assert record.engine.kind == ("external" if cluster is not None else "cluster")
    src = open_source([dm])
    expected = src.read((slice(0, 66), slice(0, 65), slice(0, 64)))
    arr = zarr.open_group(str(archive / "acquisitions" / name / f"{name}.ome.zarr"), mode="r")["0"]
    np.testing.assert_array_equal(arr[:], expected)
    from rsciio.digitalmicrograph import file_reader

    np.testing.assert_array_equal(expected, np.asarray(file_reader(str(dm))[0]["data"]))


# --- the stall watchdog ----------------------------------------------------------------------


class BlockingSource(ArraySource):
    """Reads of planes at or past ``block_z`` wait until ``release`` is set."""

    release = threading.Event()

    def __init__(self, array: np.ndarray, block_z: int) -> None:
        super().__init__(array)
        self.block_z = block_z

    def read(self, region):
        if region[0].stop > self.block_z:
            self.release.wait(30)
        return super().read(region)


def test_stall_fails_with_one_line_and_resumes(tmp_path):
    a = em_like_volume((64, 64, 64), "uint8", seed=5)
    plan = plan_pyramid(a.shape, (8, 8, 8), "uint8", chunk=(16, 32, 32), shard=(16, 64, 64))
    stage = tmp_path / "stage"
    zroot = stage / "img.ome.zarr"
    kw = dict(stage=stage, zroot=zroot, plan=plan, kind="image", group_attrs=multiscales(plan, "img"),
              fingerprint={"job": "stall"})
    t0 = time.monotonic()
    seen = []
    with pytest.raises(StallError) as err:
        write_pyramid(source=BlockingSource(a, block_z=32), source_label="img",
                      options=WriteOptions(scheduler="threads", stall_timeout=1.0, progress=seen.append), **kw)
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "\n" not in msg
    assert "no block finished for 1 s" in msg and "level 0 shard" in msg and "z 32..47" in msg
    assert "re-run" in msg
    assert any(ev.idle_s >= 0.9 for ev in seen)  # the progress bar was told about the stall
    assert (stage / "manifest.jsonl").exists()
    BlockingSource.release.set()
    written = write_pyramid(source=ArraySource(a), options=WriteOptions(scheduler="threads"), **kw)
    assert written.result.resumed_shards == 2
    np.testing.assert_array_equal(zarr.open_group(str(zroot), mode="r")["0"][:], a)
    assert written.engine.kind == "threads"


# --- headers that claim huge dimensions -----------------------------------------------------


def hostile_tiff(path: Path, pages: int = 100_000, claim: int = 100_000) -> Path:
    """A classic TIFF (11 MB, as in issue 12) whose every page claims claim x claim uint8
    pixels in 16 bytes."""
    entries = [(256, 4, claim), (257, 4, claim), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (277, 3, 1), (278, 4, claim), (279, 4, 16)]
    out = bytearray(b"II*\x00" + struct.pack("<I", 24) + bytes(16))
    for k in range(pages):
        ifd = len(out)
        nxt = ifd + 2 + 12 * len(entries) + 4 if k < pages - 1 else 0
        out += struct.pack("<H", len(entries))
        for code, typ, value in entries:
            out += struct.pack("<HHI", code, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3
                                                          else struct.pack("<I", value))
        out += struct.pack("<I", nxt)
    path.write_bytes(bytes(out))
    return path


def hostile_dm(src: Path, dst: Path) -> Path:
    """The 3D DM4 fixture with its image's three dimensions patched to 100000."""
    b = bytearray(src.read_bytes())
    at = b.rfind(b"Dimensions")
    for value in (64, 65, 66):
        needle = b"\x05" + struct.pack("<I", value)
        i = b.find(needle, at)
        b[i + 1:i + 5] = struct.pack("<I", 100_000)
    dst.write_bytes(bytes(b))
    return dst


def test_tiff_claiming_huge_dimensions_is_refused_at_once(tmp_path):
    path = hostile_tiff(tmp_path / "huge.tif")
    t0 = time.monotonic()
    with pytest.raises(CorruptSourceError, match="claims more image data than the file can hold"):
        open_source([path])
    assert time.monotonic() - t0 < 5


def test_dm_claiming_huge_dimensions_is_refused_at_once(shared_data, tmp_path):
    path = hostile_dm(shared_data / "dm" / "dmTest_3D_int16_64-65-66.dm4", tmp_path / "huge.dm4")
    t0 = time.monotonic()
    with pytest.raises(CorruptSourceError, match="claims more image data") as err:
        open_source([path])
    assert "100000×100000×100000" in str(err.value)
    assert time.monotonic() - t0 < 5


def test_volume_larger_than_the_free_space_is_refused(tmp_path):
    with pytest.raises(InsufficientSpaceError, match="free space"):
        check_space(tmp_path, (100_000, 100_000, 100_000), "uint8", "huge.tif")
    check_space(tmp_path, (10, 10, 10), "uint8", "small.tif")


def test_cli_refuses_a_hostile_header_in_one_line(archive, tmp_path):
    path = hostile_tiff(tmp_path / "huge.tif")
    md = write_metadata(tmp_path / "m.yaml", {"z": 8, "y": 8, "x": 8})
    head = dlo.head(archive)
    env = {**os.environ, "CURATION_LOG": str(tmp_path / "curate.log")}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "curation", "ingest", str(archive), str(path), "--metadata", str(md),
                        "--name", "huge"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    assert time.monotonic() - t0 < 30
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and "huge.tif" in lines[0] and "claims" in lines[0]
    assert dlo.head(archive) == head
    staging = archive / ".curation" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_engine_kind_follows_the_job_size():
    from curation.engine import CLUSTER_MIN_BYTES, choose_kind

    assert choose_kind(None, job_bytes=10 * 1024**2) == "threads"
    assert choose_kind(None, job_bytes=CLUSTER_MIN_BYTES) == "cluster"
    assert choose_kind("processes") == "processes"
    assert choose_kind("tcp://127.0.0.1:8786") == "external"
    assert choose_kind(None, client=object()) == "client"
    assert choose_kind(None) == "cluster"  # a caller driving the engine itself, as before
