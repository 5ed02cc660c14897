#!/usr/bin/env python
"""Prediction and training speed: the blockwise pipeline against the bare network.

Usage::

    .venv/bin/python benchmarks/inference.py [--pipelines mitochondria-2d nuclear-pores-3d]
        [--shape 20 1024 1024] [--voxel-size 40 5.9 5.9] [--device cpu|cuda] [--precision fp32|bf16|fp16]
        [--threads N] [--tri-axis]

For each pipeline, on one volume (the real sbem-mito slices when present and the shape
matches, else a generated EM-like volume) stored as a zarr array on disk:

(a) the pipeline: ``predict_blockwise`` from the zarr image to uint8 probability and
    prediction zarr arrays: reading, normalising, resampling, tiling with halo, batching,
    blending, resampling back, thresholding, writing;
(b) the bare forward pass of the same network on exactly the tiles (a) fed it, already in
    memory, in the same batches;

and prints voxels per second of the image for both and the ratio (a)/(b) (target >= 0.8).
Then it times training iterations of the pipeline (patch, batch and precision as declared)
and reports iterations per second and the share of the data path (sampling and
augmentation) in an iteration.

The network is freshly initialised (speed does not depend on the weights). Load average is
printed: the machine may be shared.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from curation.segmentation.architectures import build_network  # noqa: E402
from curation.segmentation.augment import PatchSampler  # noqa: E402
from curation.segmentation.data import percentiles, prepare  # noqa: E402
from curation.segmentation.inference import Predictor, plan_inference, predict_blockwise  # noqa: E402
from curation.segmentation.pipeline import load_pipeline, with_overrides  # noqa: E402
from curation.segmentation.train import _optimizer, masked_loss, resolve_precision  # noqa: E402

SBEM = Path(os.environ.get("CURATION_SHARED_DATA", REPO.parent / "shared" / "data")) / "sbem-mito"


def volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sbem-mito image and labels when the shape fits, else an EM-like texture with blobs."""
    if shape == (20, 1024, 1024) and SBEM.is_dir():
        import imageio.v3 as iio

        image = np.stack([iio.imread(SBEM / "images" / f"images.{i:03d}.png") for i in range(10, 30)])
        labels = np.stack([iio.imread(SBEM / "labels" / f"mitos_3D.{i:03d}.png")[..., 0] for i in range(10, 30)])
        return image, labels.astype(np.uint8)
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 3)
    blobs = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 6)
    fg = blobs > np.percentile(blobs, 90)
    image = np.clip(140 + 25 * field / field.std() - 60 * fg + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
    return image, fg.astype(np.uint8)


def bench_pipeline(name: str, image: np.ndarray, labels: np.ndarray, voxel_size, args, work: Path) -> None:
    import zarr

    over = {}
    if args.precision:
        over["inference.precision"] = args.precision
    pipeline = with_overrides(load_pipeline(name), over) if over else load_pipeline(name)
    torch.manual_seed(0)
    net = build_network(pipeline.architecture).eval()
    norm = percentiles(image, pipeline.normalization.low, pipeline.normalization.high)
    tap = args.tri_axis if pipeline.inference.tri_axis is False else True
    if tap and pipeline.architecture.dims != "3d" and not pipeline.inference.tri_axis:
        tap = False
    plan = plan_inference(pipeline, image.shape, voxel_size, normalization=norm, tri_axis=tap or None)
    src = zarr.create_array(str(work / f"{name}-image.zarr"), shape=image.shape, dtype="uint8",
                            chunks=(min(16, image.shape[0]), 512, 512), overwrite=True)
    src[:] = image
    chunks = tuple(min(b, n) for b, n in zip(plan.block_shape, plan.shape))
    prob = zarr.create_array(str(work / f"{name}-prob.zarr"), shape=image.shape, dtype="uint8", chunks=chunks,
                             overwrite=True)
    pred = zarr.create_array(str(work / f"{name}-pred.zarr"), shape=image.shape, dtype="uint8", chunks=chunks,
                             overwrite=True)
    predictor = Predictor(net, batch=pipeline.inference.batch, device=args.device,
                          precision=pipeline.inference.precision, threads=args.threads, record_tiles=True)
    warm = Predictor(net, batch=pipeline.inference.batch, device=args.device, precision=pipeline.inference.precision,
                     threads=args.threads)
    first = plan.blocks()[0]
    predict_blockwise(plan, warm, src, prob, pred, blocks=[first])  # warm-up: kernels, allocator
    load0 = os.getloadavg()[0]
    summary = predict_blockwise(plan, predictor, src, prob, pred)
    voxels = int(np.prod(image.shape))
    # (b) the same tiles, in the same batches, straight through the network
    batches = predictor.recorded or []
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(pipeline.inference.precision)
    net = predictor.model  # the same module, in the layout the predictor chose
    with torch.inference_mode():
        if args.threads:
            torch.set_num_threads(args.threads)
        tensors = [torch.from_numpy(b).to(args.device) for b in batches]
        if predictor.layout is not None:
            tensors = [t.contiguous(memory_format=predictor.layout) for t in tensors]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for x in tensors:
            with torch.autocast(torch.device(args.device).type, dtype=dtype, enabled=dtype is not None):
                y = net(x)
            torch.sigmoid(y.float())
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        bare = time.perf_counter() - t0
    tile_vox = sum(int(np.prod(b.shape[2:])) * b.shape[0] for b in batches)
    print(f"\n{name}: volume {image.shape} at {voxel_size} nm -> model grid {plan.model_shape} "
          f"(factors {plan.factors}), views {[('z', 'y', 'x')[v] for v in plan.views]}, {summary.blocks} blocks, "
          f"{summary.tiles} tiles ({tile_vox / 1e6:.1f} Mvox of tiles for {voxels / 1e6:.1f} Mvox), "
          f"{pipeline.inference.precision}, device {args.device}, threads {torch.get_num_threads()}, "
          f"load {load0:.1f}", flush=True)
    a = voxels / summary.seconds
    b = voxels / bare
    print(f"  (a) pipeline           {summary.seconds:8.2f} s  {a / 1e6:8.3f} Mvox/s")
    print(f"  (b) bare forward pass  {bare:8.2f} s  {b / 1e6:8.3f} Mvox/s")
    print(f"  (a)/(b) = {a / b:.2f}  (target >= 0.8); forward share inside (a): "
          f"{summary.forward_seconds / summary.seconds:.2f}", flush=True)
    bench_training(pipeline, image, labels, voxel_size, args)


def bench_training(pipeline, image, labels, voxel_size, args, steps: int = 8) -> None:
    n = image.shape[0]
    zs = list(range(0, n, max(1, n // 6)))[:6]
    material = prepare(pipeline, image, labels, zs, voxel_size)
    dev = torch.device(args.device)
    precision = resolve_precision(pipeline.training.precision, dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    torch.manual_seed(0)
    net = build_network(pipeline.architecture).to(dev)
    two_d = pipeline.architecture.spatial_dims == 2
    if two_d:
        net = net.to(memory_format=torch.channels_last)
    opt = _optimizer(pipeline, net.parameters())
    sampler = PatchSampler(material.train, pipeline, np.random.default_rng(0))
    if args.threads:
        torch.set_num_threads(args.threads)
    t_data = t_step = 0.0
    for i in range(steps + 2):
        t0 = time.perf_counter()
        x, t, w = sampler.batch(pipeline.training.batch)
        t1 = time.perf_counter()
        x, t, w = (a.to(dev) for a in (x, t, w))
        if two_d:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            logits = net(x)
        loss = masked_loss(logits, t, w, pipeline)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i >= 2:
            t_data += t1 - t0
            t_step += t2 - t1
    per = (t_data + t_step) / steps
    print(f"  training: {1 / per:.2f} it/s ({per:.3f} s/it, patch {pipeline.training.patch} x batch "
          f"{pipeline.training.batch}, {precision}, threads {torch.get_num_threads()}); data path "
          f"{t_data / (t_data + t_step):.1%} of an iteration", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", nargs="+", default=["mitochondria-2d", "nuclear-pores-3d"])
    ap.add_argument("--shape", nargs=3, type=int, default=None, help="z y x (default: per pipeline)")
    ap.add_argument("--voxel-size", nargs=3, type=float, default=None, help="z y x nm (default: per pipeline)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tri-axis", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="curation-bench-") as tmp:
        for name in args.pipelines:
            three_d = load_pipeline(name).architecture.dims == "3d" or load_pipeline(name).inference.tri_axis
            shape = tuple(args.shape) if args.shape else ((48, 192, 192) if three_d else (20, 1024, 1024))
            vs = tuple(args.voxel_size) if args.voxel_size else ((8.0, 8.0, 8.0) if three_d else (40.0, 5.9, 5.9))
            image, labels = volume(shape)  # type: ignore[arg-type]
            bench_pipeline(name, image, labels, vs, args, Path(tmp))


if __name__ == "__main__":
    main()
