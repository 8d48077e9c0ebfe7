"""The LRP engine over timm's CNN zoo (random weights, model code untouched): one row per model.

    python benchmarks/zoo.py [--models resnet50 ...] [--size 64] [--repeats 3] [--markdown]

Per model: whether it traced (``generic``: one graph for every shape; ``shape``: traced for the input's
shape), the BatchNorms folded and left, LRP time (``lrp.epsilon_plus_flat``) as a multiple of the plain
input gradient (medians, interleaved, same process), the conserved share ``sum(R) / logit`` (minimum over
the batch) of ``lrp.epsilon_plus_flat`` and ``lrp.epsilon_gamma_box`` with zero biases (BatchNorm
statistics estimated on 8 random images, then every bias and BatchNorm mean zero, as
tests/test_lrp_timm.py does), of ``lrp.epsilon_plus_flat`` with ``zero_bias=True`` on the model as
initialised (fresh BatchNorm statistics: activations may decay to ~1e-5, where the 1e-6 stabilisers take
a visible share) and with its biases, and LRP-0 against gradient x input in float64 with all biases and
BatchNorm shifts zero (max error / max value).
Needs timm 1.0.31 (``make install-test``).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from models import calibrate_batchnorm, zero_shifts  # noqa: E402
from torchvision_standin import install  # noqa: E402

install()
import timm  # noqa: E402

import unmask  # noqa: E402

MODELS = [
    "resnet50", "densenet121", "res2net50_26w_4s", "cspresnet50", "cspdarknet53", "regnetx_016", "regnety_016",
    "repvgg_a0", "dla34", "hrnet_w18_small", "inception_v3", "vgg16_bn", "darknet53", "skresnet18", "mixnet_s",
    "mixnet_m", "efficientnet_b0", "tf_efficientnet_lite0", "mobilenetv3_large_100", "tf_mobilenetv3_large_100",
    "ghostnet_100", "rexnet_100", "nfnet_l0", "dm_nfnet_f0", "dpn68", "resnext50_32x4d", "seresnet50",
]


def gradient(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    leaf = x.clone().requires_grad_(True)
    model(leaf)[:, target].sum().backward()
    return leaf.grad


MIN_SIZE = {"inception_v3": 75}  # the smallest input it takes


def row(name: str, size: int, repeats: int) -> dict:
    size = max(size, MIN_SIZE.get(name, 0))
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    result: dict = {"model": name}
    try:
        explainer = unmask.LRP(model, "epsilon_plus_flat")
        explanation = explainer.explain(x, target=3)
    except Exception as error:
        result["traced"] = f"fails: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
        return result
    graph = explainer.graph
    kinds = [s.kind for s in graph.ordered()]
    result["traced"] = "generic" if graph.shape is None else "shape"
    result["bn folded"] = sum(1 for s in graph.ordered() for m in s.merged if "Norm" in m or "norm" in m)
    result["bn left"] = kinds.count("batchnorm")
    times: dict[str, list[float]] = {"gradient": [], "lrp": []}
    for _ in range(repeats):
        for key in times:
            start = time.perf_counter()
            gradient(model, x, 3) if key == "gradient" else explainer.explain(x, target=3)
            times[key].append(time.perf_counter() - start)
    result["lrp / gradient"] = statistics.median(times["lrp"]) / statistics.median(times["gradient"])
    calibration = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(1))
    unbiased = zero_shifts(calibrate_batchnorm(copy.deepcopy(model), calibration))
    for method in ("epsilon_plus_flat", "epsilon_gamma_box"):
        share = unmask.explain(unbiased, x, f"lrp.{method}", target=3, zero_bias=True).conserved_share()
        result[f"share {method}"] = share.min().item()
    share = unmask.explain(model, x, "lrp.epsilon_plus_flat", target=3, zero_bias=True).conserved_share()
    result["share flat, as initialised"] = share.min().item()
    result["share (biases)"] = explanation.conserved_share().min().item()
    double = zero_shifts(copy.deepcopy(model).double())
    xd = x.double()
    lrp0 = unmask.LRP(double, unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0)).explain(xd, target=3)
    expected = gradient(double, xd, 3) * xd
    result["lrp0 error"] = ((lrp0.relevance - expected).abs().max() / expected.abs().max()).item()
    return result


COLUMNS = ["model", "traced", "bn folded", "bn left", "lrp / gradient", "share epsilon_plus_flat",
           "share epsilon_gamma_box", "share flat, as initialised", "share (biases)", "lrp0 error"]


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2e}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--size", type=int, default=96, help="input size in pixels (default: 96)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)) if args.markdown else "  ".join(COLUMNS),
          flush=True)
    for name in args.models:
        values = row(name, args.size, args.repeats)
        cells = [cell(values.get(c)) for c in COLUMNS]
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
