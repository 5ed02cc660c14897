#!/usr/bin/env python
"""Dice against training budget on real serial block-face SEM (../shared/data/sbem-mito).

Usage::

    .venv/bin/python benchmarks/train_sbem.py [--budgets 5 15 45] [--out DIR] [--threads N]

The data: 20 consecutive slices (1024 x 1024, about 5.9 x 5.9 x 40 nm) with mitochondria
ground truth. For each budget (minutes) it trains the shipped ``mitochondria-2d`` pipeline
from scratch with ``max_minutes`` = budget on slices 0-11 (one of them held out for
checkpoint selection), predicts all 20 slices blockwise, and reports Dice:

* held-out: slices 15-19, three or more slices away from any training slice (neighbouring
  slices flatter a model, so this is the figure that counts);
* train: slices 0-11 (how well the model fits what it saw: under-training shows here);
* validation: the best Dice on the held-out training slice during the run.

Each budget is its own run, its learning-rate schedule fitted to its budget. The machine's
load average is printed with every row: on a shared machine other jobs slow training down,
and the run fits fewer iterations into the same minutes. It writes ``train_sbem.json``, a
plot ``dice_vs_budget.png`` and, for the largest budget, an overlay of a held-out slice
(``heldout_overlay.png``: green agreement, red false positive, blue false negative).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep on a busy machine

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curation.segmentation.inference import Predictor, plan_inference, predict_array  # noqa: E402
from curation.segmentation.metrics import dice_score  # noqa: E402
from curation.segmentation.pipeline import load_pipeline, with_overrides  # noqa: E402
from curation.segmentation.train import train  # noqa: E402

DATA = Path(os.environ.get("CURATION_SHARED_DATA", REPO.parent / "shared" / "data")) / "sbem-mito"
VOXEL_SIZE_NM = (40.0, 5.9, 5.9)
TRAIN = list(range(12))
HELD_OUT = list(range(15, 20))


def load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import imageio.v3 as iio

    image = np.stack([iio.imread(folder / "images" / f"images.{i:03d}.png") for i in range(10, 30)])
    labels = np.stack([iio.imread(folder / "labels" / f"mitos_3D.{i:03d}.png")[..., 0] for i in range(10, 30)])
    return image, labels.astype(np.uint8)


def one_budget(pipeline_name: str, minutes: float, image, labels, threads: int | None, seed: int) -> dict:
    pipeline = with_overrides(load_pipeline(pipeline_name), {"training.max_minutes": minutes,
                                                             "training.iterations": None, "training.seed": seed})
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = train(pipeline, image, labels, TRAIN, VOXEL_SIZE_NM, threads=threads)
    train_s = time.perf_counter() - t0
    plan = plan_inference(pipeline, image.shape, VOXEL_SIZE_NM, normalization=result.normalization)
    t1 = time.perf_counter()
    prob, pred = predict_array(plan, Predictor(result.model, threads=result.threads), image)
    predict_s = time.perf_counter() - t1
    truth = labels == 1
    row = {
        "budget_min": minutes,
        "iterations": result.iterations,
        "threads": result.threads,
        "precision": result.precision,
        "s_per_iteration": round(train_s / max(result.iterations, 1), 3),
        "plan": result.plan,
        "train_s": round(train_s, 1),
        "predict_s": round(predict_s, 1),
        "dice_heldout": round(dice_score(pred[HELD_OUT], truth[HELD_OUT]), 4),
        "dice_heldout_per_slice": [round(dice_score(pred[z], truth[z]), 4) for z in HELD_OUT],
        "dice_train": round(dice_score(pred[TRAIN], truth[TRAIN]), 4),
        "dice_validation_best": round(result.best.dice, 4) if result.best and result.best.dice is not None else None,
        "validation_slices": result.validation_slices,
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    return row | {"_prob": prob, "_pred": pred}


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # the plot is a convenience; the JSON and the table hold the figures
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    b = [r["budget_min"] for r in rows]
    ax.plot(b, [r["dice_heldout"] for r in rows], "o-", label="held-out slices 15-19")
    ax.plot(b, [r["dice_train"] for r in rows], "s--", label="training slices 0-11")
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    for r in rows:
        ax.annotate(f"{r['iterations']} it", (r["budget_min"], r["dice_heldout"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=7)
    ax.set_xlabel("training budget (minutes, this machine)")
    ax.set_ylabel("Dice")
    ax.set_title("mitochondria-2d on sbem-mito")
    ax.set_ylim(0.5, 1.0)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, path: Path) -> None:
    import imageio.v3 as iio

    rgb = np.stack([image.astype(np.float32)] * 3, axis=-1) * 0.7
    for mask, colour, keep in ((pred & truth, (0, 200, 0), 0.5), (pred & ~truth, (255, 0, 0), 0.3),
                               (~pred & truth, (0, 80, 255), 0.3)):
        rgb[mask] = rgb[mask] * keep + np.array(colour, np.float32) * (1 - keep)
    iio.imwrite(path, rgb.clip(0, 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", nargs="+", type=float, default=[5, 15, 45], help="minutes")
    ap.add_argument("--pipeline", default="mitochondria-2d")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the faster of 1 and all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmark-output"))
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found (set CURATION_SHARED_DATA)")
    args.out.mkdir(parents=True, exist_ok=True)
    image, labels = load(DATA)
    rows = []
    print(f"{'budget':>7} {'iter':>6} {'thr':>3} {'s/it':>6} {'held-out':>9} {'train':>6} {'valid':>6} "
          f"{'predict':>8} {'load':>10}")
    for minutes in args.budgets:
        row = one_budget(args.pipeline, minutes, image, labels, args.threads, args.seed)
        row.pop("_prob")
        pred = row.pop("_pred")
        rows.append(row)
        print(f"{minutes:6.0f}m {row['iterations']:6d} {row['threads']:3d} {row['s_per_iteration']:6.3f} "
              f"{row['dice_heldout']:9.4f} {row['dice_train']:6.4f} {row['dice_validation_best'] or 0:6.4f} "
              f"{row['predict_s']:7.1f}s {row['load_average'][0]:4.1f}->{row['load_average'][1]:<4.1f}", flush=True)
        (args.out / "train_sbem.json").write_text(json.dumps(rows, indent=2))
    plot(rows, args.out / "dice_vs_budget.png")
    z = HELD_OUT[2]
    overlay(image[z], pred[z].astype(bool), labels[z] == 1, args.out / "heldout_overlay.png")
    best = max(rows, key=lambda r: r["budget_min"])
    print(f"held-out Dice at {best['budget_min']:g} min: {best['dice_heldout']:.4f} "
          f"(target >= 0.80, aim >= 0.90); files in {args.out}")


if __name__ == "__main__":
    main()
