"""``unmask compare``: several models side by side on the same data.

    unmask compare --model tagged=cleverhans --model clean=cleverhans-clean cleverhans:test:300 --out out/compare
    unmask compare --model lite0=efficientnet-lite0 --model mine=net.pt:mymodule:build photos.csv --out out/c
    unmask compare --model a=efficientnet-lite0 --model b=concept-net VOC2007/ --boxes VOC2007/Annotations

Per model: accuracy (with labels), agreement of the predictions, MoRF/LeRF AOPC with the same method
and settings, context use per class (boxes from a CSV file list with x0, y0, x1, y1, a Pascal-VOC XML
folder, or the CleverHans masks), SpRAy strategies per class and how one model's clusters map onto
another's, and the correlation of context use with accuracy. Writes OUT/comparison.json (every number)
and OUT/index.html (tables, charts, a heatmap grid per sample).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._args import EXIT_OK, UsageError, check_device, positive_int
from ._run import run_command

DEFAULT_METHOD = "lrp.epsilon_plus_flat"


EPILOG = """\
models: NAME=SPEC, where SPEC is a zoo name, module:function, a TorchScript file, or
FILE.pt:module:function
  (a state dict and the function building its network); every model keeps its own preprocessing.
data: FOLDER (class sub-folders), LIST.txt / LIST.csv (path, label, x0, y0, x1, y1), a Pascal-VOC folder
  (Annotations/*.xml beside JPEGImages/), or cleverhans[:SPLIT[:N]].

exit codes: 0 done; 1 the comparison failed; 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask compare`` to ``parser``."""
    parser.add_argument("data", metavar="DATA", help="folder, file list, VOC folder or cleverhans[:split[:n]]")
    parser.add_argument("--model", dest="models", action="append", required=True, metavar="NAME=SPEC",
                        help="a model to compare (repeat for each); NAME labels it in the report")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for comparison.json, index.html and pictures")
    parser.add_argument("--method", "-m", default=DEFAULT_METHOD, help=f"attribution method for every model (default: {DEFAULT_METHOD})")
    parser.add_argument("--param", "-p", dest="params", action="append", metavar="KEY=VALUE", help="a method parameter (Python literal); repeatable")
    parser.add_argument("--boxes", metavar="PATH", help="object boxes: a CSV file list (path, x0, y0, x1, y1) or a VOC annotation folder, matched by file name")
    parser.add_argument("--target", choices=("label", "predicted"), help="what each model explains (default: the label when every model knows it)")
    parser.add_argument("--region", type=positive_int, metavar="PX", help="region side for perturbation (default: side / --grid per model)")
    parser.add_argument("--grid", type=positive_int, default=8, metavar="G", help="regions per side when --region is not given (default: 8)")
    parser.add_argument("--steps", type=positive_int, metavar="L", help="perturbation steps (default: every region)")
    parser.add_argument("--perturbation", choices=("uniform", "blur", "mean", "constant"), default="uniform", help="what replaces a region (default: uniform noise)")
    parser.add_argument("--score", choices=("probability", "logit"), default="probability", help="scored output (default: probability)")
    parser.add_argument("--no-faithfulness", action="store_true", help="skip region perturbation")
    parser.add_argument("--no-spray", action="store_true", help="skip SpRAy strategies")
    parser.add_argument("--max-clusters", type=positive_int, default=8, metavar="K", help="most SpRAy strategies per class (default: 8)")
    parser.add_argument("--separation", type=float, default=0.05, metavar="S",
                        help="a SpRAy cluster counts as a strategy while at most this share of its kNN edges leave it (default: 0.05)")
    parser.add_argument("--show", type=int, default=8, metavar="N", help="samples in the heatmap grid (default: 8)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="samples per explanation pass (default: 32)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbation noise and the clustering (default: 0)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow model files that are full pickles")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``unmask compare`` for parsed ``args``; returns the exit code."""
    return run_command("compare", _run, args)


def parse_model(text: str, trust_pickle: bool, device: str) -> tuple[str, Any]:
    """``NAME=SPEC`` as ``(name, zoo model)``; ``SPEC`` may be ``FILE.pt:module:function`` for a state dict."""
    from .. import cli

    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise UsageError(f"--model {text!r} is not of the form NAME=SPEC (e.g. tagged=cleverhans)")
    arch = None
    head, colon, tail = spec.partition(":")
    if colon and head.endswith((".pt", ".pth", ".bin")) and ":" in tail:
        spec, arch = head, tail
    return name, cli.load_model_spec(spec, arch=arch, trust_pickle=trust_pickle, device=device)


def parse_data(spec: str) -> Any:
    """``cleverhans[:split[:n]]`` as the data set; anything else is a path :func:`unmask.analyze.compare` opens."""
    from .attribute import parse_data as parse_dataset

    if spec == "cleverhans" or spec.startswith("cleverhans:"):
        return parse_dataset(spec, None)
    return spec


def _run(args: argparse.Namespace) -> int:
    from .. import get_method
    from ..analyze.compare import compare
    from ..analyze.compare_report import JSON_NAME, write_report
    from ..data.cleverhans import TAG_BOX, CleverHans
    from ._params import one_method_params

    started = time.perf_counter()
    check_device(args.device)
    try:
        params = one_method_params(args.method, get_method(args.method), args.params)
    except ValueError as error:
        raise UsageError(str(error)) from None
    models: dict[str, Any] = {}
    for text in args.models:
        name, net = parse_model(text, args.trust_pickle, args.device)
        if name in models:
            raise UsageError(f"--model name {name!r} is given twice")
        models[name] = net
    data = parse_data(args.data)
    regions = {"tag": TAG_BOX} if isinstance(data, CleverHans) else None
    print(f"unmask: comparing {', '.join(models)} on {args.data} with {args.method}", file=sys.stderr, flush=True)
    try:
        result = compare(
            models, data, args.method, args.boxes, params=params, target=args.target, regions=regions,
            faithfulness=not args.no_faithfulness, grid=args.grid, region=args.region, steps=args.steps,
            perturbation=args.perturbation, score=args.score, strategies=not args.no_spray,
            max_clusters=args.max_clusters, separation=args.separation, show=args.show, batch_size=args.batch_size, seed=args.seed,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    page = write_report(result, args.out)
    summary = ", ".join(
        f"{name}: accuracy {m.accuracy:.3f}" if m.accuracy is not None else name for name, m in result.models.items()
    )
    print(f"unmask: {len(result.labels)} samples ({summary}) in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"unmask: wrote {page} and {page.parent / JSON_NAME}", flush=True)
    return EXIT_OK
