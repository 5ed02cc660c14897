#!/usr/bin/env python
"""The ground-truth learning curve on real serial block-face SEM (../shared/data/sbem-mito).

Usage::

    .venv/bin/python benchmarks/learning_curve_sbem.py [--slices 1 2 4 8] [--repeats 3] \
        [--minutes 1] [--held-out 5] [--gap 2] [--add 2] [--out /tmp/curve]

The data: 20 consecutive slices (1024 x 1024, 5.9 x 5.9 x 40 nm) with mitochondria ground
truth on every slice. It runs what ``curate experiment learning-curve`` runs, in memory
(:mod:`curation.analysis.curve`): the held-out slices chosen as training chooses its
validation slices (farthest from the rest), slices within ``--gap`` of them never train,
``--repeats`` random draws of k training slices (and seeds) for each k, each trained with
the shipped ``mitochondria-2d`` pipeline for ``--minutes`` (a time budget: the run fits its
iterations and schedule to it) and scored on the held-out slices. Then a model on every
pool slice (the "current" ground truth) and the curve's projection for ``--add`` more.

Each draw's scores go to ``draws.json`` as they finish (a rerun skips those done). It
writes ``curve.csv``, ``draws.csv``, ``learning_curve.png`` and ``report.md`` into ``--out``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.analysis.curve import DrawScore, hold_out, plan_draws, run_draw  # noqa: E402
from curation.segmentation.pipeline import load_pipeline  # noqa: E402

DATA = Path(os.environ.get("CURATION_SHARED_DATA", REPO.parent / "shared" / "data")) / "sbem-mito"
VOXEL_SIZE_NM = (40.0, 5.9, 5.9)


def load(folder: Path):
    import imageio.v3 as iio
    import numpy as np

    image = np.stack([iio.imread(folder / "images" / f"images.{i:03d}.png") for i in range(10, 30)])
    labels = np.stack([iio.imread(folder / "labels" / f"mitos_3D.{i:03d}.png")[..., 0] for i in range(10, 30)])
    return image, labels.astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=None, help="training budget per draw (a time budget)")
    ap.add_argument("--iterations", type=int, default=120,
                    help="iterations per draw (default; unlike a time budget, the machine's load cannot change them)")
    ap.add_argument("--held-out", type=int, default=5)
    ap.add_argument("--gap", type=int, default=2)
    ap.add_argument("--add", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-current", action="store_true", help="skip the model on every pool slice")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pipeline", default="mitochondria-2d")
    ap.add_argument("--out", type=Path, default=Path("/tmp/curve"))
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found (set CURATION_SHARED_DATA)")
    args.out.mkdir(parents=True, exist_ok=True)
    image, labels = load(DATA)
    pipeline = load_pipeline(args.pipeline)
    held, pool = hold_out(range(20), args.held_out, gap=args.gap)
    draws = plan_draws(pool, args.slices, args.repeats, args.seed)
    store = args.out / "draws.json"
    done = {d["key"]: d for d in json.loads(store.read_text())} if store.exists() else {}
    budget = f"{args.minutes:g} min" if args.minutes else f"{args.iterations} iterations"
    print(f"held out {held}; pool {pool}; {len(draws)} draws, {budget} each", flush=True)
    from curation.analysis.curve import Draw

    everything = draws + ([] if args.no_current else [Draw(len(pool), 0, tuple(pool), draws[-1].seed ^ 0x5EED)])
    for d in everything:
        if d.key in done:
            continue
        t0 = time.perf_counter()
        s = run_draw(pipeline, image, labels, d, held, VOXEL_SIZE_NM, max_minutes=args.minutes,
                     iterations=None if args.minutes else args.iterations,
                     threads=args.threads)
        done[d.key] = {"key": d.key, **asdict(s), "load": os.getloadavg()[0]}
        store.write_text(json.dumps(list(done.values()), indent=1))
        print(f"k={d.k} r={d.repeat} slices={list(d.slices)} it={s.iterations} Dice {s.dice:.4f} IoU {s.iou:.4f} "
              f"({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
    scores = [DrawScore(**{k: (tuple(v) if k == "slices" else v) for k, v in r.items() if k not in ("key", "load")})
              for r in done.values()]
    from curation.analysis.experiment import write_curve_files

    current = next((s for s in scores if s.k == len(pool)), None)
    files = write_curve_files(args.out, [s for s in scores if s is not current], held=held, pool=pool, add=args.add,
                              seed=args.seed, title=f"{args.pipeline} on sbem-mito, {budget} per training (CPU)",
                              budget=budget, current=current)
    print("wrote", ", ".join(str(args.out / f) for f in files))


if __name__ == "__main__":
    main()
