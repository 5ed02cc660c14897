"""Run the table of hostile inputs through the real ``curate`` CLI, one subprocess each.

    python benchmarks/hostile_inputs.py [--timeout 60] [--keep DIR] [--json]

Builds a tiny archive (:func:`curation.testing.hostile.build_workspace`), then runs every
case of :data:`curation.testing.hostile.CASES` as ``python -m curation ...`` with a
timeout, and after each runs ``git status --porcelain`` in the archive (and in the
acquisition datasets) to see whether anything was left dirty. Prints one line per case and
the totals: bad inputs tried, refused cleanly, "unexpected", wrong (refused, but not in the
expected words or in more than one line), accepted (exit 0), hangs, archives left dirty.
Exit status 1 when any case is not refused cleanly or an archive is dirty.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.testing.hostile import CASES, Outcome, build_workspace, verdict  # noqa: E402


def _dirty(archive: Path) -> list[str]:
    out = []
    for repo in [archive, *sorted((archive / "acquisitions").glob("*"))]:
        if not (repo / ".git").exists():
            continue
        res = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
        out += [f"{repo.name}: {line}" for line in res.stdout.splitlines()]
    return out


def _run(argv: list[str], timeout: float) -> Outcome:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.monotonic()
    try:
        res = subprocess.run([sys.executable, "-m", "curation", *argv], capture_output=True, text=True,
                             timeout=timeout, env=env, errors="replace")
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, str(exc.stdout or ""), str(exc.stderr or ""), time.monotonic() - t0)
    return Outcome(res.returncode, res.stdout, res.stderr, time.monotonic() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--keep", type=Path, help="build the workspace here and keep it")
    ap.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = ap.parse_args()

    tmp = None
    if args.keep:
        root = args.keep
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="hostile-")
        root = Path(tmp.name)
    for k, v in {"GIT_AUTHOR_NAME": "Hostile Bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
                 "GIT_COMMITTER_NAME": "Hostile Bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}.items():
        os.environ.setdefault(k, v)
    t0 = time.monotonic()
    ws = build_workspace(root / "ws")
    print(f"workspace built in {time.monotonic() - t0:.1f} s: {ws.archive}")
    counts: Counter[str] = Counter()
    dirty_after = 0
    slowest = (0.0, "")
    for case in CASES:
        out = _run(case.build(ws), args.timeout)
        v = verdict(case, out)
        counts[v] += 1
        dirty = _dirty(ws.archive)
        if dirty:
            dirty_after += 1
        slowest = max(slowest, (out.seconds, case.id))
        last = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or [""])[-1]
        print(f"{v:10} {out.seconds:6.2f} s  {case.id:30} {last[:150]}")
        if dirty:
            print(f"           archive left dirty: {dirty[:3]}")
    total = len(CASES)
    summary = {"bad inputs tried": total, "refused cleanly": counts["refused"], "unexpected": counts["unexpected"],
               "wrong message": counts["wrong"], "accepted": counts["accepted"], "hangs": counts["hang"],
               "archives left dirty": dirty_after, "slowest case": f"{slowest[1]} {slowest[0]:.2f} s",
               "timeout per case s": args.timeout}
    print()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            print(f"{k:22} {v}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if counts["refused"] == total and dirty_after == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
