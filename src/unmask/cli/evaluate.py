"""``unmask evaluate``: how faithful are the heatmaps of several methods on the same images?

Explains each image with every ``--method``, runs region perturbation most relevant first (MoRF) and least
relevant first (LeRF) for all methods in one batched sweep (Samek et al. 2017: 9x9 regions, 100 steps,
uniform noise in the valid pixel range), plus the other ``--metric`` choices, and writes
``OUT/evaluation.json``, ``OUT/aopc_curves.png`` and ``OUT/index.html``. With no images it evaluates
scikit-image's sample photos; with no ``--model`` the ImageNet EfficientNet-Lite0 of the zoo.

The ``unmask`` command registers it as a subcommand::

    sub = commands.add_parser("evaluate", help=evaluate.HELP, description=evaluate.DESCRIPTION)
    evaluate.configure(sub)
    sub.set_defaults(run=evaluate.run)
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from .._utils.errors import one_line
from .._utils.progress import progress_bar
from ._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_model_options, check_device, non_negative_int
from ._args import error as _error
from ._args import output_folder, positive_int, unique_name
from ._run import run_command

HELP = "score heatmaps: pixel flipping / AOPC, selectivity and other metrics -> evaluation.json, plot, page"
DESCRIPTION = __doc__.split("\n\n")[1].replace("\n", " ")

DEFAULT_METHODS = ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box", "sensitivity", "random")
DEFAULT_METRICS = ("morf", "lerf", "selectivity")
METRIC_CHOICES = ("morf", "lerf", "selectivity", "conservation", "continuity", "randomisation")
DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_OUT = "out/evaluate"
#: Images per explanation pass (the perturbation sweep uses --batch-size).
EXPLAIN_BATCH = 8


EPILOG = """\
metrics: morf, lerf (AOPC of region perturbation), selectivity (MoRF - LeRF), conservation (|sum R -
logit| / |logit|), continuity (shifted inputs, costs 9 explanations per image), randomisation
(Adebayo et al.: cascading over the top --randomisation-layers layers).
exit codes: 0 done; 1 a method failed (the others are still evaluated); 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``unmask evaluate`` to ``parser``."""
    parser.add_argument("inputs", nargs="*", metavar="IMAGE", help="image files or folders (default: scikit-image sample photos)")
    add_model_options(parser, DEFAULT_MODEL)
    parser.add_argument("--method", "-m", dest="methods", action="extend", nargs="+", metavar="METHOD", help=f"methods to evaluate (default: {', '.join(DEFAULT_METHODS)})")
    parser.add_argument("--param", "-p", dest="params", action="append", metavar="[METHOD:]KEY=VALUE", help="a method parameter, e.g. lrp.epsilon_gamma_box:gamma=0.5 (VALUE is a Python literal); repeatable")
    parser.add_argument("--metric", dest="metrics", action="extend", nargs="+", choices=METRIC_CHOICES, metavar="METRIC", help=f"metrics to compute: {', '.join(METRIC_CHOICES)} (default: {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--target", default="predicted", metavar="T", help="'predicted' (default), a class index, or a class name")
    parser.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--steps", type=positive_int, default=100, metavar="N", help="perturbation steps (default: 100)")
    parser.add_argument("--region", type=positive_int, default=9, metavar="N", help="side of the square regions in pixels; 1 flips single pixels (default: 9)")
    parser.add_argument("--perturbation", choices=("uniform", "blur", "mean", "constant"), default="uniform", help="what replaces a region (default: uniform noise in the valid pixel range)")
    parser.add_argument("--score", choices=("logit", "probability"), default="logit", help="score the target's logit (default) or softmax probability")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="N", help="seed of the uniform noise (default: 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N", help="perturbed images per forward pass (default: 4 on a CPU, 128 on a GPU)")
    parser.add_argument("--image-size", type=positive_int, default=224, metavar="PX", help="input size for models not from the zoo (default: 224)")
    parser.add_argument("--classes", metavar="FILE", help="class names, one per line, for models not from the zoo; 'imagenet' for the ImageNet-1k list")
    parser.add_argument("--photos", nargs="+", metavar="NAME", help="scikit-image sample photos to use when no images are given ('all' for every one)")
    parser.add_argument("--randomisation-layers", type=positive_int, default=5, metavar="N", help="top layers randomised by --metric randomisation (default: 5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _say(message: str) -> None:
    print(f"unmask: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``unmask evaluate``; returns the exit code (usage errors: one line on stderr, code 2)."""
    return run_command("evaluate", _run, args)


def _images(args: argparse.Namespace, failures: list[dict[str, Any]]) -> tuple[list[tuple[str, str, Any]], int]:
    """``[(name, source, PIL image)]`` and the number of inputs that could not be used."""
    from .. import data as data_module

    problems = 0
    items: list[tuple[str, str, Any]] = []
    taken: set[str] = set()
    if args.inputs:
        if args.photos:
            raise UsageError("--photos is for runs without image arguments; give either images or --photos")
        files, missing = data_module.expand_inputs(args.inputs)
        for problem in missing:
            failures.append({"source": problem.path, "method": None, "error": str(problem)})
            _error(str(problem))
            problems += 1
        for path in files:
            try:
                image = data_module.load_image(path)
            except data_module.ImageLoadError as error:
                failures.append({"source": str(path), "method": None, "error": str(error)})
                _error(str(error))
                problems += 1
                continue
            items.append((unique_name(path.stem, taken), str(path), image))
        return items, problems
    names = data_module.photo_names() if args.photos == ["all"] else (args.photos or list(data_module.DEFAULT_PHOTOS))
    for name in names:
        if name not in data_module.photo_names():
            raise UsageError(f"unknown sample photo {name!r}; known: {', '.join(data_module.photo_names())}")
    try:
        photos = data_module.sample_photos(names)
    except ImportError as error:
        raise UsageError(f"no images given and {one_line(error)}") from None
    return [(unique_name(name, taken), f"skimage.data: {name}", photo) for name, photo in photos.items()], 0


def _run(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__, evaluate
    from .. import methods as registered
    from ..models.spec import load_model_spec
    from ._params import method_params, parse_params, parse_target
    from ..evaluate import report
    from ..registry import get as get_method
    from ..report import write_json

    started = time.perf_counter()
    device = torch.device(check_device(args.device))

    known = registered()
    if args.methods:
        method_names = list(dict.fromkeys(args.methods))
        for name in method_names:
            if name not in known:
                raise UsageError(f"unknown method {name!r}; run 'unmask methods' to list the {len(known)} known methods")
    else:
        method_names = [name for name in DEFAULT_METHODS if name in known]
        if not method_names:
            raise UsageError(f"none of the default methods ({', '.join(DEFAULT_METHODS)}) is registered; name one with --method")
    metrics = list(dict.fromkeys(args.metrics or DEFAULT_METRICS))
    orders = [order for order in ("morf", "lerf") if order in metrics or "selectivity" in metrics]

    net = load_model_spec(args.model, arch=args.arch, trust_pickle=args.trust_pickle, device=args.device,
                          image_size=args.image_size, classes=args.classes)
    size = net.preprocessing.size
    regions = math.ceil(size / args.region) ** 2
    if orders and args.steps > regions:
        raise UsageError(f"--steps {args.steps} exceeds the {regions} regions of {args.region}x{args.region} pixels "
                         f"in a {size}x{size} input; use fewer steps or a smaller --region")
    target_index = parse_target(args.target, net.classes)
    params = parse_params(args.params)
    for method, key, _ in params:
        if method is not None and method not in method_names:
            raise UsageError(f"--param {method}:{key}: {method!r} is not one of the methods evaluated ({', '.join(method_names)})")
    method_params = {name: method_params(name, get_method(name), net, params) for name in method_names}

    failures: list[dict[str, Any]] = []
    items, input_problems = _images(args, failures)
    if not items:
        raise UsageError("no usable images" + (" (see above)" if input_problems else ""))
    out = output_folder(args.out)

    inputs = torch.cat([net.preprocessing.to_tensor(net.resized(image)) for _, _, image in items]).to(device)
    try:
        with torch.no_grad():
            output = torch.cat([net.model(inputs[s : s + EXPLAIN_BATCH]) for s in range(0, len(inputs), EXPLAIN_BATCH)])
        if output.dim() != 2:
            raise ValueError(f"the model's output is shaped {tuple(output.shape)}, not (batch, classes)")
    except Exception as error:
        raise UsageError(f"the model cannot process {size}x{size} RGB images: {one_line(error)}") from None
    if target_index is not None and not 0 <= target_index < output.shape[1]:
        raise UsageError(f"--target {target_index} is out of range for a model with {output.shape[1]} classes")
    targets = output.argmax(1) if target_index is None else torch.full((len(items),), target_index, dtype=torch.long, device=device)
    probabilities = output.softmax(1)
    finite_rows = torch.isfinite(output).all(1)
    left_out = int((~finite_rows).sum())
    if left_out:  # scores of an image whose logits are NaN would be NaN: list it, evaluate the others
        for (_, source, _), ok in zip(items, finite_rows.tolist()):
            if not ok:
                message = f"{source}: the model's output is not finite (NaN or infinite logits); left out of the evaluation"
                failures.append({"source": source, "method": None, "error": message})
                _error(message)
        if left_out == len(items):
            raise UsageError("the model's output is not finite for any image; nothing to evaluate")
        items = [item for item, ok in zip(items, finite_rows.tolist()) if ok]
        inputs, output, targets, probabilities = inputs[finite_rows], output[finite_rows], targets[finite_rows], probabilities[finite_rows]

    # explanations ----------------------------------------------------------------------------------
    relevances: dict[str, torch.Tensor] = {}
    explanations: dict[str, Any] = {}
    runtime_errors = left_out
    bar = progress_bar(not args.no_progress, len(method_names) * len(items), "explaining")
    for name in method_names:
        try:
            method = get_method(name)(net.model, **method_params[name])
            pieces = []
            for start in range(0, len(items), EXPLAIN_BATCH):
                explanation = method.explain(inputs[start : start + EXPLAIN_BATCH], target=targets[start : start + EXPLAIN_BATCH])
                pieces.append(explanation)
                bar.update(explanation.relevance.shape[0])
            relevance = torch.cat([p.relevance for p in pieces]).detach()
            if relevance.shape != inputs.shape:
                raise ValueError(f"relevance shaped {tuple(relevance.shape)} for inputs {tuple(inputs.shape)}")
            if not torch.isfinite(relevance).all():
                raise ValueError("the relevance contains NaN or Inf values")
            relevances[name] = relevance
            explanations[name] = pieces
        except Exception as error:  # one method failing must not lose the others
            runtime_errors += 1
            message = f"{name} failed: {type(error).__name__}: {one_line(error)}"
            failures.append({"source": None, "method": name, "error": message})
            bar.clear()
            _error(message)
    bar.close()
    if not relevances:
        raise UsageError("none of the methods could explain this model (see above)")

    # metrics ---------------------------------------------------------------------------------------
    results: dict[str, dict[str, Any]] = {name: {} for name in relevances}
    if orders:
        curves = evaluate.perturbation_curves(
            net.model, inputs, relevances, targets, orders=orders, region=args.region, steps=args.steps,
            perturbation=args.perturbation, score=args.score, low=net.low, high=net.high, seed=args.seed,
            batch_size=args.batch_size, progress=not args.no_progress,
        )
        for name, by_order in curves.items():
            for order, result in by_order.items():
                entry = result.to_dict()
                if order in metrics:
                    results[name][order] = {key: entry[key] for key in ("aopc", "curve", "aopc_per_image")}
            if "selectivity" in metrics:
                results[name]["selectivity"] = evaluate.SelectivityResult(by_order["morf"], by_order["lerf"]).to_dict()
                results[name]["selectivity"].pop("metric")
    for name in list(relevances):
        try:
            if "conservation" in metrics:
                outputs = torch.cat([p.output for p in explanations[name]])
                explained = outputs.gather(1, targets.view(-1, 1)).squeeze(1)
                entry = evaluate.conservation(relevances[name], explained).to_dict()
                entry.pop("metric")
                results[name]["conservation"] = entry
            if "continuity" in metrics:
                entry = evaluate.continuity(net.model, inputs, name, targets, params=method_params[name],
                                            batch_size=EXPLAIN_BATCH).to_dict()
                entry.pop("metric")
                results[name]["continuity"] = entry
            if "randomisation" in metrics:
                entry = evaluate.model_randomization(net.model, inputs, name, targets, params=method_params[name],
                                                     layers=args.randomisation_layers, seed=args.seed,
                                                     batch_size=EXPLAIN_BATCH).to_dict()
                entry.pop("metric")
                results[name]["randomisation"] = entry
        except Exception as error:
            runtime_errors += 1
            message = f"{name}: a metric failed: {type(error).__name__}: {one_line(error)}"
            failures.append({"source": None, "method": name, "error": message})
            _error(message)

    # files -----------------------------------------------------------------------------------------
    def plain(value: Any) -> Any:
        return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)

    evaluation: dict[str, Any] = {
        "settings": {
            "unmask_version": __version__,
            "model": args.model,
            "model_name": net.name,
            "model_description": net.description,
            "input_size": size,
            "methods": list(relevances),
            "params": {name: {k: plain(v) for k, v in method_params[name].items() if k not in ("low", "high")}
                       for name in relevances},
            "metrics": metrics,
            "target": args.target if target_index is None else target_index,
            "score": args.score,
            "region": args.region,
            "steps": args.steps,
            "perturbation": args.perturbation,
            "perturbation_range": "the model's valid input range per channel (zoo low/high)" if args.perturbation == "uniform" else None,
            "seed": args.seed,
            "device": str(device),
            "batch_size": args.batch_size or evaluate.perturbation.default_batch_size(device),
            "images": [name for name, _, _ in items],
        },
        "methods": results,
        "images": [
            {
                "name": name,
                "source": source,
                "target": int(targets[row]),
                "target_name": net.class_name(int(targets[row])),
                "logit": float(output[row, targets[row]]),
                "probability": float(probabilities[row, targets[row]]),
            }
            for row, (name, source, _) in enumerate(items)
        ],
        "failures": failures,
        "notes": [],
    }
    curves_file: str | None = None
    if orders:
        try:
            report.write_curves(results, out / "aopc_curves.png", score=args.score,
                                title=f"{net.name}: {len(items)} images, {args.region}x{args.region} regions, {args.perturbation}")
            curves_file = "aopc_curves.png"
        except ImportError as error:
            evaluation["notes"].append(f"no plot: {one_line(error)}")
            _say(f"no plot: {one_line(error)}")
    evaluation["summary"] = {"images": len(items) + input_problems, "methods": len(relevances),
                             "seconds": round(time.perf_counter() - started, 2)}
    write_json(out / "evaluation.json", evaluation)
    index = report.write_page(evaluation, out, curves_file)

    columns = [m for m in ("morf", "lerf", "selectivity", "conservation", "continuity", "randomisation") if m in metrics]
    width = max(len(name) for name in results)
    print(f"{'method'.ljust(width)}  " + "  ".join(c.rjust(13) for c in columns))
    for name, entry in results.items():
        cells = []
        for column in columns:
            value = entry.get(column, {}).get("aopc", entry.get(column, {}).get("value"))
            cells.append((f"{value:.4f}" if isinstance(value, float) else "-").rjust(13))
        print(f"{name.ljust(width)}  " + "  ".join(cells))
    print(f"unmask: evaluated {len(relevances)} method{'s' if len(relevances) != 1 else ''} on {len(items)} image"
          f"{'s' if len(items) != 1 else ''} ({args.score}) in {evaluation['summary']['seconds']:.1f} s; open {index}",
          flush=True)
    if input_problems:
        return EXIT_USAGE
    return EXIT_FAILED if runtime_errors else EXIT_OK
