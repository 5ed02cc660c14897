"""A short coverage-guided run (atheris) of the DM and TIFF header readers on the real
files as seeds: every input is read or refused with a CurationError (issue 12).

Skips when atheris (the ``fuzz`` extra) is not installed; the long run is
``benchmarks/fuzz_readers.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_readers.py"


@pytest.mark.parametrize("target", ["dm", "tiff"])
def test_header_readers_survive_a_short_fuzz(target, shared_data, tmp_path):
    runs = os.environ.get("CURATION_FUZZ_RUNS", "80")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--target", target, "--runs", runs, "--seconds", "10",
                           "--timeout", "30", "--findings", str(tmp_path / "findings"), "--json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CURATION_SHARED_DATA": str(shared_data)})
    (stats,) = json.loads(proc.stdout[proc.stdout.index("["):])
    assert stats["seeds"] > 0 and stats["executions"] > 0, proc.stderr[-2000:]
    assert stats["findings"] == {}, json.dumps(stats["findings"], indent=1)
    assert proc.returncode == 0
