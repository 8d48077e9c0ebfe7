"""Time lrp.attnlrp (AttnLRP and CP-LRP) against the forward pass and the plain gradient, in one process.

    python benchmarks/bench_transformer.py [--device cpu|cuda] [--batch 8] [--repeats 3] [--size 224]
        [--models vit_small_patch16_224 convnext_tiny]

timm models with random weights (timm is a test-only dependency: ``make install-test``; torchvision is
stood in for where it does not import). Each measurement is the median of ``--repeats`` runs after one
warm-up, the methods interleaved within each repeat so that machine noise hits them alike; ratios are to
the input gradient (forward + backward, frozen parameters) on the same model, batch and device. The
floor for any LRP is about one forward and one backward, i.e. ~1x the gradient.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import unmask  # noqa: E402
from _timing import baseline_runs, interleaved_medians, print_medians  # noqa: E402
from torchvision_standin import install  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["vit_small_patch16_224", "convnext_tiny"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    install()
    import timm
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, timm {timm.__version__}, device {device}, threads {torch.get_num_threads()}")
    for model_name in args.models:
        model = timm.create_model(model_name, pretrained=False).eval().to(device)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        explainers = {mode: unmask.LRP(model, composite="attnlrp", attention=mode) for mode in ("attnlrp", "cp")}
        for batch in args.batch:
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            target = torch.zeros(batch, dtype=torch.long, device=device)
            runs = baseline_runs(model, x, target)
            for mode, explainer in explainers.items():
                runs[f"lrp.attnlrp attention={mode}"] = lambda e=explainer: e.explain(x, target=target)
            medians = interleaved_medians(runs, args.repeats, device)
            print_medians(f"{model_name}, batch {batch}, {args.size}x{args.size} (median of {args.repeats})", medians, 30)


if __name__ == "__main__":
    main()
