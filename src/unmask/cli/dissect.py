"""``unmask dissect``: network dissection of one or more layers, written as JSON, pictures and a page.

    unmask dissect --layer _blocks.2 --layer _blocks.10            # EfficientNet-Lite0, generated concepts
    unmask dissect --model concept-net                              # all six layers of unmask's small model
    unmask dissect --concepts path/to/broden1_224 --categories color texture --limit 2000
    unmask dissect --layer _blocks.4 --axis-alignment 5 --perturb noise:10 rotate:45 shuffle:4

Writes OUT/dissect.json (every unit: concept, IoU, threshold, top images; unique detectors per category
and layer), OUT/detectors.png (bar chart; needs matplotlib), OUT/<layer>/unit_NNNN.png (top images of the
best units with the unit's region and the concept's mask outlined) and OUT/index.html.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._args import EXIT_OK, UsageError, add_model_options, positive_int
from ._run import run_command
from ._args import check_device, output_folder

#: Layers dissected when none are named, per zoo model.
DEFAULT_LAYERS = {
    "efficientnet-lite0": ["_bn0", "_blocks.2", "_blocks.4", "_blocks.7", "_blocks.10", "_blocks.15"],
    "concept-net": ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6"],
}
DEFAULT_IMAGES = 500


DESCRIPTION = """Network dissection (Bau et al. 2017): for every unit of a layer, the concept its strongest
activations overlap best (IoU), and per layer the number of unique detectors per concept category.

""" + __doc__.split("\n", 1)[1].strip("\n")

EPILOG = """\
concepts:
  generated                   unmask's own images of colours, textures and shapes (--images, --seed)
  generated:n=200,seed=3      the same with parameters
  FOLDER                      a Broden-format folder (index.csv, label.csv, images/)

perturbations (Bau et al. 2017): noise:A adds A * U[0,1] on the 0..255 scale, rotate:D rotates by D
degrees,
shuffle:G rearranges G x G patches.

exit codes: 0 done; 1 the dissection failed; 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask dissect`` to ``parser``."""
    add_model_options(parser)
    parser.add_argument("--layer", "-l", dest="layers", action="extend", nargs="+", metavar="NAME", help="module name(s) from model.named_modules() (default: a spread of layers for zoo models)")
    parser.add_argument("--concepts", "-c", default="generated", metavar="SPEC", help="'generated' (default), 'generated:n=...,seed=...' or a Broden-format folder")
    parser.add_argument("--images", type=positive_int, default=None, metavar="N", help=f"images of the generated concept set (default: {DEFAULT_IMAGES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated concept set and of the random rotations (default: 0)")
    parser.add_argument("--categories", nargs="+", metavar="CAT", help="Broden categories to use (default: all)")
    parser.add_argument("--split", metavar="NAME", help="only rows of this Broden split (train, val)")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images")
    parser.add_argument("--quantile", type=float, default=0.005, help="top activation quantile that counts as 'on' (default: 0.005)")
    parser.add_argument("--iou-threshold", type=float, default=0.04, help="IoU above which a unit is a detector (default: 0.04)")
    parser.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="images per forward pass (default: 16)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--image-size", type=positive_int, metavar="PX", help="input size for models not from the zoo (default: 224)")
    parser.add_argument("--axis-alignment", type=positive_int, metavar="REPEATS", help="also dissect REPEATS random rotations of each layer's unit basis")
    parser.add_argument("--perturb", nargs="+", metavar="SPEC", help="also dissect perturbed images: noise:A, rotate:D, shuffle:G")
    parser.add_argument("--units-shown", type=int, default=24, metavar="N", help="units per layer with pictures of their top images (default: 24)")
    parser.add_argument("--top-images", type=positive_int, default=6, metavar="N", help="top images per unit (default: 6)")
    parser.add_argument("--out", "-o", default="out/dissect", metavar="DIR", help="output folder (default: out/dissect)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _concepts(args: argparse.Namespace, size: int) -> Any:
    from ..data.broden import BrodenDataset
    from ..data.concepts import GeneratedConcepts, load_concepts

    spec = str(args.concepts)
    if spec == "generated" or spec.startswith("generated:"):
        if args.categories or args.split:
            raise UsageError("--categories and --split are for Broden-format folders")
        options = {"n": args.images or DEFAULT_IMAGES, "size": size, "seed": args.seed}
        dataset = load_concepts(spec, **{k: v for k, v in options.items() if f"{k}=" not in spec})
        assert isinstance(dataset, GeneratedConcepts)
        return dataset
    if args.images:
        raise UsageError("--images is for the generated concept set; use --limit with a Broden-format folder")
    return BrodenDataset(spec, categories=args.categories, split=args.split, limit=args.limit)


def _layers(args: argparse.Namespace, net: Any) -> list[str]:
    if args.layers:
        return list(dict.fromkeys(args.layers))
    if net.name in DEFAULT_LAYERS:
        return DEFAULT_LAYERS[net.name]
    candidates = [n for n, m in net.model.named_modules() if n and ("Conv" in type(m).__name__ or "Norm" in type(m).__name__)]
    raise UsageError(
        "name the layer(s) to dissect with --layer; convolution and normalisation layers of this model: "
        + (", ".join(candidates[:30]) + (" ..." if len(candidates) > 30 else "") if candidates else "none found")
    )


def run(args: argparse.Namespace) -> int:
    """Run ``unmask dissect`` for parsed ``args``; returns the exit code."""
    return run_command("dissect", _run, args)


def _run(args: argparse.Namespace) -> int:

    from .. import __version__, cli
    from ..analyze import dissect_report
    from ..analyze.dissect import RobustnessResult, axis_alignment, dissect, parse_perturbation

    started = time.perf_counter()
    if not 0 < args.quantile < 1:
        raise UsageError(f"--quantile must be in (0, 1), got {args.quantile}")
    if not 0 <= args.iou_threshold <= 1:
        raise UsageError(f"--iou-threshold must be in [0, 1], got {args.iou_threshold}")
    check_device(args.device)
    output_folder(args.out)  # before the dissection, not after it
    perturbations = [parse_perturbation(p, seed=args.seed) for p in (args.perturb or [])]
    net = cli.load_model_spec(args.model, arch=args.arch, trust_pickle=args.trust_pickle, device=args.device, image_size=args.image_size or 224)
    layers = _layers(args, net)
    dataset = _concepts(args, net.preprocessing.size)
    options = dict(
        quantile=args.quantile,
        iou_threshold=args.iou_threshold,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        top_images=args.top_images,
        limit=args.limit,
    )
    say = (lambda message: print(f"unmask: {message}", file=sys.stderr, flush=True)) if not args.no_progress else (lambda message: None)
    say(f"dissecting {', '.join(layers)} of {net.name} with {dataset!r}")
    axis = []
    if args.axis_alignment:
        axis = axis_alignment(net, layers, dataset, repeats=args.axis_alignment, seed=args.seed, **options)
        results = [a.identity for a in axis]
    else:
        results = dissect(net, layers, dataset, **options)
    robustness = []
    if perturbations:
        perturbed = {}
        for p in perturbations:
            say(f"dissecting under {p}")
            perturbed[str(p)] = dissect(net, layers, dataset, perturbation=p, **options)
        robustness = [
            RobustnessResult(layer=r.layer, baseline=r, perturbed={name: runs[i] for name, runs in perturbed.items()})
            for i, r in enumerate(results)
        ]
    seconds = time.perf_counter() - started
    meta = {
        "model": net.name,
        "description": net.description,
        "concepts": getattr(dataset, "description", repr(dataset)),
        "quantile": args.quantile,
        "iou_threshold": args.iou_threshold,
        "device": args.device,
        "seconds": seconds,
    }
    data = {
        "unmask_version": __version__,
        **meta,
        "images": results[0].n_images,
        "layers": [r.to_dict(matrix=True) for r in results],
        "axis_alignment": [a.to_dict() for a in axis],
        "robustness": [r.to_dict() for r in robustness],
    }
    try:
        page = dissect_report.write_report(
            args.out, results, dataset, meta, data, units_shown=args.units_shown, images_per_unit=args.top_images,
            axis=axis, robustness=robustness, progress=not args.no_progress,
        )
    except OSError as error:
        raise UsageError(f"cannot write to --out {args.out}: {error.strerror or error}") from None
    for r in results:
        print(r.summary())
    for a in axis:
        print(a.summary())
    for rob in robustness:
        print(rob.summary())
    print(f"report: {page}")
    return EXIT_OK
