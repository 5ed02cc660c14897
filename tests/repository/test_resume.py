"""Terabyte-scale guarantees on small volumes: kill -9 and resume, torn shards, concurrency,
and one result whatever the Dask cluster."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curation.repository import datalad_ops as dlo
from curation.repository.archive import init_archive
from curation.repository.ingest import ingest
from curation.repository.verify import verify
from curation.testing import em_like_volume, write_metadata

SMALL = {"chunk": "8,32,32", "shard": "8,64,64"}


def _env() -> dict:
    return {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    vol = em_like_volume((48, 192, 160), "uint16", seed=11)
    folder = base / "stack"
    folder.mkdir()
    for z in range(vol.shape[0]):
        tifffile.imwrite(folder / f"z{z:03d}.tif", vol[z])
    md = write_metadata(base / "m.yaml", {"z": 8, "y": 8, "x": 8})
    return folder, md, vol


def _curate(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "curate"), *args]


def _ingest_cmd(arch: Path, folder: Path, md: Path, *extra: str) -> list[str]:
    return _curate("ingest", str(arch), str(folder), "--metadata", str(md), "--name", "vol",
                   "--chunk", SMALL["chunk"], "--shard", SMALL["shard"], "--no-progress", *extra)


def _zarr_bytes(arch: Path) -> dict[str, bytes]:
    root = arch / "acquisitions" / "vol" / "vol.ome.zarr"
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_shards(arch: Path) -> int:
    m = arch / ".curation" / "staging" / "vol" / "manifest.jsonl"
    try:
        return sum(1 for line in m.read_text().splitlines() if '"shard"' in line)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory):
    folder, md, _ = stack
    arch = tmp_path_factory.mktemp("ref") / "arch"
    init_archive(arch)
    subprocess.run(_ingest_cmd(arch, folder, md), check=True, env=_env(), capture_output=True)
    return _zarr_bytes(arch)


def test_kill_minus_nine_at_random_points_then_resume(stack, reference, tmp_path):
    folder, md, vol = stack
    arch = tmp_path / "arch"
    init_archive(arch)
    head = dlo.head(arch)
    rng = random.Random(1234)
    n_total = 6 * 3 * 3 + 3 * 2 * 2 + 2 * 1 * 1 + 1  # shards over the pyramid's levels
    kills = 0
    for _attempt in range(3):
        target = _manifest_shards(arch) + rng.randint(2, 12)
        proc = subprocess.Popen(_ingest_cmd(arch, folder, md), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _manifest_shards(arch) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            # killed mid-way: the archive itself is untouched
            assert dlo.head(arch) == head
            assert dlo.status(arch, recursive=True) == []
            assert not (arch / "acquisitions" / "vol").exists()
        else:
            break
    assert kills >= 1, "the ingest finished before it could be killed"
    done_before = _manifest_shards(arch)
    assert 0 < done_before < n_total + 10
    out = subprocess.run(_ingest_cmd(arch, folder, md, "--json"), env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    rec = json.loads(out.stdout)
    assert rec["resumed_shards"] > 0
    assert _zarr_bytes(arch) == reference  # bit-identical to an uninterrupted ingest
    assert not (arch / ".curation" / "staging" / "vol").exists()
    assert not list((arch / "acquisitions").rglob("*.partial"))
    [v] = verify(arch, "vol")
    assert v.status.value == "ok", v.message


def test_corrupt_shard_is_named_by_verify(stack, tmp_path):
    folder, md, _ = stack
    arch = tmp_path / "arch"
    init_archive(arch)
    ingest(arch, [folder], md, name="vol", chunk=(8, 32, 32), shard=(8, 64, 64))
    shard = arch / "acquisitions/vol/vol.ome.zarr/0/c/2/1/1"
    target = shard.resolve()
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[100:140] = b"\0" * 40
    target.write_bytes(bytes(data))
    [v] = verify(arch, "vol")
    assert v.status.value == "error"
    assert "0/c/2/1/1" in v.message and v.data["corrupt"] == ["0/c/2/1/1"]
    # a torn (truncated) shard and a missing one are named too
    target.write_bytes(bytes(data[: len(data) // 2]))
    other = arch / "acquisitions/vol/vol.ome.zarr/1/c/0/0/0"
    other.unlink()
    [v] = verify(arch, "vol", annex=False)
    assert v.data["corrupt"] == ["0/c/2/1/1"] and v.data["missing"] == ["1/c/0/0/0"]
    out = subprocess.run(_curate("verify", str(arch), "vol"), env=_env(), capture_output=True, text=True)
    assert out.returncode == 1 and "0/c/2/1/1" in out.stdout


def test_two_concurrent_ingests_queue_and_both_succeed(stack, tmp_path):
    folder, md, _ = stack
    arch = tmp_path / "arch"
    init_archive(arch)
    procs = [subprocess.Popen(_curate("ingest", str(arch), str(folder), "--metadata", str(md), "--name", name,
                                      "--wait", "300", "--no-progress"),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("first", "second")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert dlo.status(arch, recursive=True) == []
    for v in verify(arch):
        assert v.status.value == "ok", v.message
    log = dlo.log(arch)
    assert sum(1 for c in log if c["subject"].startswith("Ingest ")) == 2


def test_explicit_two_process_cluster_gives_the_same_bytes(stack, reference, tmp_path):
    from distributed import LocalCluster

    folder, md, _ = stack
    arch = tmp_path / "arch"
    init_archive(arch)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = subprocess.run(_ingest_cmd(arch, folder, md, "--scheduler", cluster.scheduler_address),
                             env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert _zarr_bytes(arch) == reference
    np.testing.assert_array_equal  # noqa: B018 - bytes equality above is the strict check
