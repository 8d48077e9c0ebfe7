"""EfficientNet-Lite0 (ImageNet weights, chelsea): unmask against Zennit 0.5.1 in float32 and float64, per setting.

    python benchmarks/lite0_agreement.py [--presets epsilon_plus_flat epsilon_alpha2_beta1] [--threads 1]

Columns (max abs difference / max abs of the second, one image): each side's float32 result against its own
float64 result; the two sides in float64 and in float32, Zennit merging the BatchNorms itself (exactly,
``tests/zennit_oracle.py``); and float32 against Zennit on the same float32 network (BatchNorms folded in
float64 and rounded once, as unmask folds them), which isolates the rules' round-off from the forward's.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import unmask  # noqa: E402
from zennit_oracle import (efficientnet_lite_batchnorms, efficientnet_lite_canonizers,  # noqa: E402
                           fold_batchnorms_in_float64, import_zennit)

THEIRS = {"epsilon_plus_flat": "EpsilonPlusFlat", "epsilon_alpha2_beta1": "EpsilonAlpha2Beta1"}


def zennit_relevance(model, x, preset, target, zero_bias, merge=True):
    zennit = import_zennit()
    params = {"zero_params": "bias"} if zero_bias else {}
    composite = getattr(zennit.composites, THEIRS[preset])(canonizers=efficientnet_lite_canonizers(model, merge),
                                                           **params)
    output = model(x)
    with zennit.attribution.Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, torch.eye(output.shape[1], dtype=x.dtype)[target] * output)
    return relevance


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(THEIRS), choices=list(THEIRS))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from unmask import zoo
    from unmask.data import sample_photos

    net = zoo.load("efficientnet-lite0")
    image = net.preprocess(sample_photos(["chelsea"])["chelsea"])
    columns = ("ours 32-64", "zennit 32-64", "64 vs 64", "32 vs 32", "32 vs 32 same net", "share")
    print(f"{'preset':22s} {'zero_bias':9s} " + " ".join(f"{c:>17s}" for c in columns))
    for preset in args.presets:
        for zero_bias in (False, True):
            ours, theirs = {}, {}
            for dtype in (torch.float64, torch.float32):
                model, x = copy.deepcopy(net.model).to(dtype), image.to(dtype)
                explanation = unmask.explain(model, x, f"lrp.{preset}", zero_bias=zero_bias)
                target = explanation.target
                ours[dtype] = explanation.relevance
                theirs[dtype] = zennit_relevance(model, x, preset, target, zero_bias)
                if dtype == torch.float32:
                    share = explanation.conserved_share().item()
                    fold_batchnorms_in_float64(model, efficientnet_lite_batchnorms(model))
                    same_net = zennit_relevance(model, x, preset, target, zero_bias, merge=False)
            row = (relative(ours[torch.float32], ours[torch.float64]),
                   relative(theirs[torch.float32], theirs[torch.float64]),
                   relative(ours[torch.float64], theirs[torch.float64]),
                   relative(ours[torch.float32], theirs[torch.float32]),
                   relative(ours[torch.float32], same_net), share)
            print(f"{preset:22s} {str(zero_bias):9s} " + " ".join(f"{v:17.2e}" for v in row), flush=True)


if __name__ == "__main__":
    main()
