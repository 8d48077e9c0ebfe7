"""Speed of unmask's attribution methods next to Captum 0.9.0 on the same model, in one process.

    python benchmarks/bench_attribution.py [--device cuda] [--batch 8] [--size 64] [--repeats 3]

The model is a small VGG-style network written here (torchvision is not needed). Each line gives the
best of ``--repeats`` runs per batch for unmask and Captum, and the max deviation relative to Captum's
largest absolute value (not for SmoothGrad: the noise differs, and Captum's ``stdevs`` is absolute).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import captum.attr as ca
import torch
from torch import nn

import unmask


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


def best(function: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> tuple[float, torch.Tensor]:
    times, result = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = vgg_like().to(device).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    target = model(x).argmax(1)
    last_conv = model[12]
    size = (args.size, args.size)

    cases: dict[str, tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]] = {
        "gradient": (
            lambda: unmask.explain(model, x, "gradient", target=target).relevance,
            lambda: ca.Saliency(model).attribute(x, target=target, abs=False),
        ),
        "integrated_gradients (50 steps)": (
            lambda: unmask.explain(model, x, "integrated_gradients", target=target, batch_size=200).relevance,
            lambda: ca.IntegratedGradients(model).attribute(x, target=target, internal_batch_size=200),
        ),
        "smoothgrad (20 samples)": (
            lambda: unmask.explain(model, x, "smoothgrad", target=target, samples=20, batch_size=160).relevance,
            lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=20, nt_samples_batch_size=20, stdevs=0.15, target=target, abs=False
            ),
        ),
        "guided_backprop": (
            lambda: unmask.explain(model, x, "guided_backprop", target=target).relevance,
            lambda: ca.GuidedBackprop(model).attribute(x, target=target),
        ),
        "gradcam": (
            lambda: unmask.explain(model, x, "gradcam", target=target).relevance,
            lambda: ca.LayerAttribution.interpolate(
                ca.LayerGradCam(model, last_conv).attribute(x, target=target, relu_attributions=True), size, "bilinear"
            ).expand_as(x),
        ),
        "occlusion (8x8, stride 4)": (
            lambda: unmask.explain(model, x, "occlusion", target=target, window=8, stride=4, batch_size=256).relevance,
            lambda: ca.Occlusion(model).attribute(
                x,
                sliding_window_shapes=(3, 8, 8),
                strides=(3, 4, 4),
                target=target,
                perturbations_per_eval=max(1, 256 // args.batch),
            ),
        ),
    }
    print(f"device {device}, batch {args.batch}, 3x{args.size}x{args.size}, best of {args.repeats}; ms per image")
    print(f"{'method':34s} {'unmask':>9s} {'captum':>9s} {'max rel dev':>12s}")
    for name, (ours, theirs) in cases.items():
        ours_time, ours_result = best(ours, args.repeats, device)
        their_time, their_result = best(theirs, args.repeats, device)
        deviation = ((ours_result - their_result).abs().max() / their_result.abs().max()).item()
        shown = "-" if name.startswith("smoothgrad") else f"{deviation:.1e}"
        per_image = 1000 / args.batch
        print(f"{name:34s} {ours_time * per_image:9.2f} {their_time * per_image:9.2f} {shown:>12s}")


if __name__ == "__main__":
    main()
