"""explain: heatmaps for images: PNG, .npy, results.json and index.html.

``unmask explain [IMAGES or FOLDERS ...]`` explains a model's decisions on images with one or more
methods and writes heatmaps, relevance arrays, ``results.json`` and a browsable ``index.html``.
With no images it explains scikit-image's sample photos; with no ``--model`` the ImageNet
EfficientNet-Lite0 from the zoo.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .._utils.progress import progress_bar
from .._utils.validation import ParameterError
from ..checks import check_output
from .._utils.errors import one_line
from ..models.spec import load_model_spec
from ._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_model_options, check_device, output_folder, positive_int, unique_name
from ._args import error as _error
from ._params import accepts, method_params, parse_params, parse_target

#: Methods ``unmask explain`` runs when no ``--method`` is given (those that are installed).
DEFAULT_METHODS = ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box", "gradient_x_input", "integrated_gradients")
DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_OUT = "out"
#: Files of the report at the top of --out: no image's folder may take these names.
REPORT_FILES = ("results.json", "index.html")


HELP = "heatmaps for images: PNG, .npy, results.json and index.html"
DESCRIPTION = """\
Explain a model's decision on each image with one or more attribution methods. Writes
OUT/<image>/<method>.png (heatmap) and .npy (relevance, C x H x W), an overlay and a
comparison grid per image, OUT/results.json and OUT/index.html. Give images before
--method (or after --), since --method takes several names."""
EPILOG = """\
model specs:
  efficientnet-lite0          a zoo model (unmask.zoo.names())
  package.module:function     a function returning an nn.Module (or a unmask.zoo.ZooModel)
  path/to/file.py:function    the same, from a file
  model.pt                    a TorchScript file (torch.jit.save)
  weights.pt --arch MOD:FN    a state dict, loaded with torch.load(weights_only=True)
Models that are not from the zoo get a 256 resize + centre crop to --image-size and the
ImageNet mean/std.

exit codes: 0 all explained; 1 an explanation failed; 2 usage error or an unusable input
(the other inputs are still processed; failures are listed in results.json)."""


def configure(explain: argparse.ArgumentParser) -> None:
    explain.add_argument("inputs", nargs="*", metavar="IMAGE", help="image files or folders (default: scikit-image sample photos)")
    add_model_options(explain, DEFAULT_MODEL)
    explain.add_argument("--method", "-m", dest="methods", action="extend", nargs="+", metavar="METHOD", help=f"one or more registered methods (default: {', '.join(DEFAULT_METHODS)}); see 'unmask methods'")
    explain.add_argument("--param", "-p", dest="params", action="append", metavar="[METHOD:]KEY=VALUE", help="a method parameter, e.g. steps=16 or lrp.epsilon:epsilon=1e-3 (VALUE is a Python literal); repeatable")
    explain.add_argument("--target", default="predicted", metavar="T", help="'predicted' (default), a class index, or a class name")
    explain.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT})")
    explain.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    explain.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="images per forward/backward pass (default: 8)")
    explain.add_argument("--image-size", type=positive_int, default=224, metavar="PX", help="input size for models not from the zoo (default: 224)")
    explain.add_argument("--classes", metavar="FILE", help="class names, one per line, for models not from the zoo; 'imagenet' for the ImageNet-1k list")
    explain.add_argument("--photos", nargs="+", metavar="NAME", help="scikit-image sample photos to explain when no images are given ('all' for every one)")
    explain.add_argument("--no-progress", action="store_true", help="no progress bar")


def _note(message: str) -> None:
    print(f"unmask: {message}", file=sys.stderr, flush=True)


@dataclass
class _Item:
    """One image to explain."""

    name: str
    source: str
    load: Callable[[], Any]
    record: dict[str, Any] = field(default_factory=dict)


def _resolve_methods(requested: list[str] | None) -> list[str]:
    from .. import methods as registered

    known = registered()
    if requested:
        chosen = list(dict.fromkeys(requested))
        for name in chosen:
            if name not in known:
                hint = " (it is a path: give images before --method, or after --)" if os.path.exists(name) else ""
                raise UsageError(f"unknown method {name!r}{hint}; run 'unmask methods' to list the {len(known)} known methods")
        return chosen
    chosen = [name for name in DEFAULT_METHODS if name in known]
    missing = [name for name in DEFAULT_METHODS if name not in known]
    if missing and chosen:
        _note(f"default methods not installed, skipped: {', '.join(missing)}")
    if not chosen:
        raise UsageError(
            f"none of the default methods ({', '.join(DEFAULT_METHODS)}) is registered; name one with --method "
            f"(known: {', '.join(known) or 'none'})"
        )
    return chosen


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__, get_method
    from .. import data as data_module
    from .. import report, viz

    started = time.perf_counter()
    device = args.device
    torch_device = torch.device(check_device(device))
    if args.photos and args.inputs:
        raise UsageError("--photos is for runs without image arguments; give either images or --photos")

    method_names = _resolve_methods(args.methods)
    net = load_model_spec(
        args.model,
        arch=args.arch,
        trust_pickle=args.trust_pickle,
        device=device,
        image_size=args.image_size,
        classes=args.classes,
    )
    target_index = parse_target(args.target, net.classes)
    params = parse_params(args.params)
    for method, key, _ in params:
        if method is not None and method not in method_names:
            raise UsageError(f"--param {method}:{key}: {method!r} is not one of the methods run ({', '.join(method_names)})")
        if method is None and not any(accepts(name, get_method(name))(key) for name in method_names):
            raise UsageError(f"--param {key}: none of the methods run ({', '.join(method_names)}) has a parameter {key!r}")
    methods: dict[str, Any] = {}
    chosen_params: dict[str, dict[str, Any]] = {}
    unusable: dict[str, str] = {}  # methods that cannot explain this model, and why
    for name in method_names:
        cls = get_method(name)
        kwargs = method_params(name, cls, net, params)
        chosen_params[name] = {k: v for k, v in kwargs.items() if k not in ("low", "high")}
        try:
            methods[name] = cls(net.model, **kwargs)
        except ParameterError as error:  # a value the method refuses: the user's to correct
            raise UsageError(f"{name}: {one_line(error)}") from None
        except Exception as error:  # e.g. a layer the method has no rule for: the other methods still run
            unusable[name] = f"{type(error).__name__}: {one_line(error)}"
            _error(f"method {name!r} cannot explain this model: {unusable[name]}")
    if not methods:
        raise UsageError("none of the methods can explain this model (see above)")
    out = output_folder(args.out)  # before any work: an unwritable --out costs a second, not the run

    # inputs --------------------------------------------------------------------------------------
    failures: list[dict[str, Any]] = []
    conserved: dict[str, list[float]] = {}  # per method: relevance sum / explained logit, per image
    items: list[_Item] = []
    taken: set[str] = set(REPORT_FILES)
    input_problems = 0
    if args.inputs:
        files, problems = data_module.expand_inputs(args.inputs)
        input_problems = len(problems)
        for problem in problems:
            failures.append({"source": problem.path, "method": None, "error": str(problem)})
            _error(str(problem))
        for path in files:
            items.append(_Item(unique_name(path.stem, taken), str(path), lambda p=path: data_module.load_image(p)))
    else:
        try:
            names = data_module.photo_names() if args.photos == ["all"] else (args.photos or list(data_module.DEFAULT_PHOTOS))
            for name in names:
                if name not in data_module.photo_names():
                    raise UsageError(f"unknown sample photo {name!r}; known: {', '.join(data_module.photo_names())}")
            photos = data_module.sample_photos(names)
        except ImportError as error:
            raise UsageError(f"no images given and {one_line(error)}") from None
        for name, photo in photos.items():
            items.append(_Item(unique_name(name, taken), f"skimage.data: {name}", lambda p=photo: p))

    failures.extend({"source": None, "method": name, "error": f"method {name!r} cannot explain this model: {why}"}
                    for name, why in unusable.items())
    results: dict[str, Any] = {
        "unmask_version": __version__,
        "model": {
            "spec": args.model,
            "name": net.name,
            "description": net.description,
            "input_size": net.preprocessing.size,
            "mean": list(net.preprocessing.mean),
            "std": list(net.preprocessing.std),
        },
        "methods": method_names,
        "params": {name: dict(p) for name, p in chosen_params.items()},
        "target": args.target if target_index is None else target_index,
        "device": str(torch_device),
        "images": [],
        "failures": failures,
        "summary": {},
    }

    bar = progress_bar(not args.no_progress and sys.stderr.isatty(), len(items) * len(methods), unit="explanation", leave=True)

    def say(message: str, error: bool = True) -> None:
        bar.clear()
        (_error if error else _note)(message)
        bar.refresh()

    user_errors = input_problems
    runtime_errors = len(unusable)
    stopped: BaseException | None = None  # what ended the run early; the finished images are still written
    try:
        for start in range(0, len(items), args.batch_size):
            batch_items = []
            crops = []
            for item in items[start : start + args.batch_size]:
                try:
                    image = item.load()
                    crop = net.resized(image)
                except (data_module.ImageLoadError, MemoryError) as error:  # this image only; the others go on
                    problem = str(error) if isinstance(error, data_module.ImageLoadError) else f"{item.source}: out of memory while resizing it"
                    failures.append({"source": item.source, "method": None, "error": problem})
                    say(problem)
                    user_errors += 1
                    bar.update(len(methods))
                    continue
                crops.append(crop)
                item.record = {
                    "name": item.name,
                    "source": item.source,
                    "note": image.info.get(data_module.NOTE_KEY),
                    "dir": item.name,
                    "size": list(image.size),
                    "input": f"{item.name}/input.png",
                    "top5": [],
                    "target": None,
                    "methods": {},
                    "errors": [],
                }
                if item.record["note"]:
                    say(f"{item.source}: {item.record['note']}", error=False)
                batch_items.append(item)
            if not batch_items:
                continue
            inputs = torch.cat([net.preprocessing.to_tensor(crop) for crop in crops]).to(torch_device)
            try:
                with torch.no_grad():
                    output = check_output(net.model(inputs))
            except Exception as error:
                message = f"the model cannot process {net.preprocessing.size}x{net.preprocessing.size} RGB images: {one_line(error)}"
                if not results["images"]:
                    raise UsageError(message) from None
                say(message)
                user_errors += len(batch_items)
                failures.extend({"source": item.source, "method": None, "error": message} for item in batch_items)
                continue
            if target_index is not None and not 0 <= target_index < output.shape[1]:
                raise UsageError(f"--target {target_index} is out of range for a model with {output.shape[1]} classes")
            probabilities = output.softmax(1).cpu()
            targets = output.argmax(1) if target_index is None else torch.full((len(batch_items),), target_index, dtype=torch.long)
            targets = targets.to(torch_device)
            k = min(5, output.shape[1])
            top_p, top_i = probabilities.topk(k, dim=1)
            for row, (item, crop) in enumerate(zip(batch_items, crops)):
                record = item.record
                record["top5"] = [
                    {"index": int(i), "name": net.class_name(int(i)), "probability": float(p)}
                    for p, i in zip(top_p[row], top_i[row])
                ]
                t = int(targets[row])
                record["target"] = {
                    "index": t,
                    "name": net.class_name(t),
                    "logit": float(output[row, t]),
                    "probability": float(probabilities[row, t]),
                }
                viz.to_png(crop, out / item.name / "input.png")
                if not bool(torch.isfinite(output[row]).all()):  # its prediction and explanation mean nothing
                    problem = "the model's output for this image is not finite (NaN or infinite logits)"
                    say(f"{item.source}: {problem}")
                    runtime_errors += 1
                    record["errors"].append({"method": None, "error": problem})
                    failures.append({"source": item.source, "method": None, "error": f"{item.source}: {problem}"})

            # per row: (method, heatmap image, overlay image)
            pictures: dict[int, list[tuple[str, Any, Any]]] = {row: [] for row in range(len(batch_items))}
            for name, method in methods.items():
                tick = time.perf_counter()
                try:
                    explanation = method.explain(inputs, target=targets)
                    relevance = explanation.relevance.detach()
                    if relevance.shape != inputs.shape:
                        raise ValueError(f"relevance shaped {tuple(relevance.shape)} for inputs {tuple(inputs.shape)}")
                    explained = explanation.explained_output
                except Exception as error:  # one method failing must not lose the others
                    message = f"{name} failed on {', '.join(i.source for i in batch_items)}: {type(error).__name__}: {one_line(error)}"
                    say(message)
                    runtime_errors += len(batch_items)
                    for item in batch_items:
                        item.record["errors"].append({"method": name, "error": f"{type(error).__name__}: {one_line(error)}"})
                        failures.append({"source": item.source, "method": name, "error": message})
                    bar.update(len(batch_items))
                    continue
                seconds = (time.perf_counter() - tick) / len(batch_items)
                relevance = relevance.float().cpu()
                sums = relevance.flatten(1).sum(1)
                shares = None if explained is None else sums / explained.detach().float().cpu()
                if shares is not None:
                    conserved.setdefault(name, []).extend(float(v) for v in shares if math.isfinite(float(v)))
                for row, (item, crop) in enumerate(zip(batch_items, crops)):
                    r = relevance[row]
                    report.write_npy(out / item.name / f"{name}.npy", r.numpy())
                    bad = int((~torch.isfinite(r)).sum())
                    if bad:  # written for inspection, but not counted as explained
                        problem = f"{bad} of {r.numel()} relevance values are NaN or infinite"
                        say(f"{name} on {item.source}: {problem}")
                        runtime_errors += 1
                        item.record["errors"].append({"method": name, "error": problem})
                        failures.append({"source": item.source, "method": name, "error": f"{name} on {item.source}: {problem}"})
                    heat = torch.nan_to_num(r.sum(0), nan=0.0, posinf=0.0, neginf=0.0)  # draw NaN/Inf as 0
                    picture, overlaid = viz.heatmap(heat, **viz.HEATMAP_STYLE), viz.overlay(crop, heat, **viz.OVERLAY_STYLE)
                    viz.to_png(picture, out / item.name / f"{name}.png")
                    viz.to_png(overlaid, out / item.name / f"{name}.overlay.png")
                    pictures[row].append((name, picture, overlaid))
                    item.record["methods"][name] = {
                        "png": f"{item.name}/{name}.png",
                        "overlay": f"{item.name}/{name}.overlay.png",
                        "npy": f"{item.name}/{name}.npy",
                        "relevance_sum": float(sums[row]),
                        "explained_logit": None if explained is None else float(explained[row]),
                        "conserved_share": None if shares is None else float(shares[row]),
                        "seconds": round(seconds, 4),
                    }
                bar.update(len(batch_items))
            for row, (item, crop) in enumerate(zip(batch_items, crops)):
                if pictures[row]:
                    viz.to_png(pictures[row][0][2], out / item.name / "overlay.png")  # the first method's
                    item.record["overlay"] = f"{item.name}/overlay.png"
                tiles = {f"{item.name}: {item.record['target']['name']}": crop}
                tiles.update((method_name, picture) for method_name, picture, _ in pictures[row])
                tile_size = max(96, min(224, crop.size[0]))
                viz.to_png(viz.grid(tiles, size=tile_size), out / item.name / "grid.png")
                item.record["grid"] = f"{item.name}/grid.png"
                results["images"].append(item.record)
    except (Exception, KeyboardInterrupt) as error:
        stopped = error
        failures.append({"source": None, "method": None, "error": f"the run stopped early: {type(error).__name__}: {one_line(error)}"})
    bar.close()

    for line in conservation_lines(conserved):
        print(line, flush=True)
    seconds = time.perf_counter() - started
    explained_images = sum(1 for record in results["images"] if not record["errors"])
    results["summary"] = {
        "images": len(items) + input_problems,
        "explained": explained_images,
        "failed": len({f["source"] for f in failures if f["source"] is not None}),
        "methods": len(method_names),
        "seconds": round(seconds, 2),
    }
    report.write_json(out / "results.json", results, default=repr)
    index = report.write_index(results, out)
    if stopped is not None:
        _note(f"{explained_images} finished image(s) written to {index} before the run stopped")
        raise stopped
    print(
        f"unmask: explained {explained_images} of {results['summary']['images']} images with "
        f"{len(method_names)} method{'s' if len(method_names) != 1 else ''} in {seconds:.1f} s"
        f"{'' if not failures else f'; {len(failures)} failure(s) listed in results.json'}; open {index}",
        flush=True,
    )
    if user_errors:
        return EXIT_USAGE
    if runtime_errors:
        return EXIT_FAILED
    return EXIT_OK


CONSERVED_HINT = 0.10  # below this share of the logit, the hint to leave biases out is shown


def conservation_lines(shares: dict[str, list[float]]) -> list[str]:
    """One line per method: the median share of the explained logit its relevance sums to, with a hint where
    an LRP method keeps under 10% (biases absorbed the rest)."""
    lines = []
    for name, values in shares.items():
        if not values:
            continue
        median = sorted(values)[len(values) // 2]
        line = f"unmask: {name}: relevance sums to {median:.1%} of the explained logit (median of {len(values)})"
        if name.startswith("lrp.") and abs(median) < CONSERVED_HINT:
            line += f"; biases absorb the rest: -p {name}:zero_bias=True leaves them out of the rules"
        lines.append(line)
    return lines
