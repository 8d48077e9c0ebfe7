"""Time unmask's LRP against the plain gradient and Zennit, in one process, and print ratios.

    python benchmarks/bench_lrp.py [--device cpu|cuda] [--batch 1 8] [--repeats 5] [--models vgg16 efficientnet-lite0]

Each measurement is the median of ``--repeats`` runs after one warm-up; the methods are interleaved
within each repeat so that machine noise hits them alike. Ratios are to the plain input gradient
(forward + backward with frozen parameters) on the same model, batch and device.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import unmask  # noqa: E402
from _timing import baseline_runs, interleaved_medians, print_medians  # noqa: E402
from zennit_oracle import import_zennit  # noqa: E402

COMPOSITES = {
    "epsilon_plus_flat": "EpsilonPlusFlat",
    "epsilon_gamma_box": "EpsilonGammaBox",
    "epsilon_alpha2_beta1": "EpsilonAlpha2Beta1",
}


def vgg16() -> nn.Module:
    """torchvision's VGG-16 layout (random weights), or torchvision itself when it imports."""
    try:
        import torchvision

        return torchvision.models.vgg16()
    except Exception:
        pass
    layers: list[nn.Module] = []
    channels = 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return nn.Sequential(
        nn.Sequential(*layers), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
        nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, 1000),
    )


def efficientnet_lite0() -> nn.Module:
    return unmask.zoo.load("efficientnet-lite0").model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["vgg16", "efficientnet-lite0"])
    parser.add_argument("--no-zennit", action="store_true", help="skip the Zennit side")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    zennit = None if args.no_zennit else import_zennit()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    for model_name in args.models:
        model = (vgg16() if model_name == "vgg16" else efficientnet_lite0()).eval().to(device)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for batch in args.batch:
            x = torch.randn(batch, 3, 224, 224, device=device)
            low = torch.full((1, 3, 1, 1), -2.2, device=device)
            high = torch.full((1, 3, 1, 1), 2.7, device=device)
            target = torch.zeros(batch, dtype=torch.long, device=device)
            runs = baseline_runs(model, x, target)
            for ours, theirs in COMPOSITES.items():
                box = {"low": low, "high": high} if ours == "epsilon_gamma_box" else {}
                explainer = unmask.LRP(model, composite=ours, **box)
                runs[f"unmask {ours}"] = (lambda e=explainer: e.explain(x, target=target))
                if zennit is not None:
                    composite = getattr(zennit.composites, theirs)(**box)

                    def zennit_run(composite=composite):
                        from zennit.attribution import Gradient

                        with Gradient(model=model, composite=composite) as attributor:
                            attributor(x, torch.eye(1000, device=device)[target])

                    runs[f"zennit {ours}"] = zennit_run
            medians = interleaved_medians(runs, args.repeats, device)
            print_medians(f"{model_name}, batch {batch}, 224x224 (median of {args.repeats})", medians)
            if zennit is not None:
                for ours in COMPOSITES:
                    ratio = medians[f"zennit {ours}"] / medians[f"unmask {ours}"]
                    print(f"  zennit / unmask {ours}: {ratio:.2f}")


if __name__ == "__main__":
    main()
