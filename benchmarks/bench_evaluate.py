"""Region perturbation (100 steps of 9x9 regions) with unmask.evaluate next to Quantus 0.6.0's
RegionPerturbation on the same model, images, heatmaps and settings, in one process.

    python benchmarks/bench_evaluate.py [--device cuda] [--batch 8] [--size 64] [--steps 100] [--region 9]
                                        [--model vgg|efficientnet-lite0] [--repeats 3] [--batch-size N] [--threads N]

Settings made equal: a constant replacement value (Quantus's uniform baseline fills a whole region with one
draw, ours draws per pixel, so a deterministic baseline is the fair comparison), logits, no normalisation
and no abs in Quantus, an image size divisible by the region (Quantus centres its grid otherwise).
unmask scores all steps of all images in forward passes of ``--batch-size`` inputs; Quantus runs one
forward pass per step over the batch, with NumPy work between. Each line is the best of ``--repeats``
runs, the two alternating; the curves are checked to agree.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unmask import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from zennit_oracle import import_zennit  # noqa: E402


def vgg_like(classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 32, "M", 64, 64, "M", 128, 128, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.ReLU()]
            channels = int(width)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, classes))


def import_quantus():
    """Quantus imports zennit when present, which needs the torchvision stand-in of the tests first."""
    import_zennit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
    return quantus


def timed(function: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8, help="images")
    parser.add_argument("--size", type=int, default=99, help="image side (vgg model); divisible by --region")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--region", type=int, default=9)
    parser.add_argument("--model", default="vgg", choices=("vgg", "efficientnet-lite0"))
    parser.add_argument("--batch-size", type=int, default=None, help="unmask: perturbed inputs per forward pass (default: 4 on a CPU, 128 on a GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quantus = import_quantus()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.model == "vgg":
        model, size = vgg_like().to(device).eval(), args.size
    else:
        from unmask import zoo

        model, size = zoo.load("efficientnet-lite0", device=device).model, 224
    if size % args.region:
        raise SystemExit(f"image size {size} must be divisible by --region {args.region} for equal settings")
    x = torch.randn(args.batch, 3, size, size, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)
    heatmaps = torch.rand(args.batch, 1, size, size, device=device)
    x_np, y_np, a_np = x.cpu().numpy(), y.cpu().numpy(), heatmaps.cpu().numpy()

    def ours():
        return evaluate.region_perturbation(model, x, heatmaps, y, region=args.region, steps=args.steps,
                                            perturbation="constant", value=0.0, batch_size=args.batch_size)

    def theirs():
        metric = quantus.RegionPerturbation(patch_size=args.region, regions_evaluation=args.steps, perturb_baseline=0.0,
                                            normalise=False, abs=False, disable_warnings=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, softmax=False,
                                     device=str(device), channel_first=True, batch_size=args.batch))

    ours()  # warm-up (first CUDA / oneDNN calls)
    # interleaved, best of --repeats each: a busy machine slows both alike
    times_ours, times_theirs = [], []
    for _ in range(args.repeats):
        seconds, result = timed(ours, device)
        times_ours.append(seconds)
        seconds, reference = timed(theirs, device)
        times_theirs.append(seconds)
    t_ours, t_theirs = min(times_ours), min(times_theirs)
    deviation = float(np.abs(result.curves[:, 1:].numpy() - reference).max())
    scale = float(np.abs(reference).max()) or 1.0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"region perturbation: {args.model}, {args.batch} images {size}x{size}, {args.region}x{args.region} regions, "
          f"{args.steps} steps, {name}, torch {torch.__version__}")
    chunk = args.batch_size or evaluate.perturbation.default_batch_size(device)
    print(f"  unmask.evaluate   {t_ours * 1000:9.1f} ms   (forward passes of {chunk})")
    print(f"  quantus 0.6.0     {t_theirs * 1000:9.1f} ms")
    print(f"  ratio             {t_theirs / t_ours:9.2f} x faster; max |difference| of the curves {deviation:.2e} "
          f"({deviation / scale:.1e} of the largest value)")


if __name__ == "__main__":
    main()
