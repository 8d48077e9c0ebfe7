"""The ``unmask`` command line.

``unmask explain [IMAGES or FOLDERS ...]`` explains a model's decisions on images with one or more
methods and writes heatmaps, relevance arrays, ``results.json`` and a browsable ``index.html``.
With no images it explains scikit-image's sample photos; with no ``--model`` the ImageNet
EfficientNet-Lite0 from the zoo.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import math
import os
import pickle
import re
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .commands._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_model_options, positive_int
from .commands._args import error as _error

#: Methods ``unmask explain`` runs when no ``--method`` is given (those that are installed).
DEFAULT_METHODS = ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box", "gradient_x_input", "integrated_gradients")
DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_OUT = "out"
# The report's pictures (unmask.viz): red positive, blue negative, the top 0.5 % of |relevance| saturated;
# overlays over a grayscale copy of the input, opaque where the relevance is strong.
HEATMAP_STYLE: dict[str, Any] = {"cmap": "bwr", "percentile": 99.5}
OVERLAY_STYLE: dict[str, Any] = {**HEATMAP_STYLE, "alpha": "relevance", "gray": True}


# --------------------------------------------------------------------------------------------------
# argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unmask",
        description="Explain, evaluate and audit PyTorch vision models.",
        epilog="Run 'unmask explain --help' for the options of a command.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"unmask {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    explain = commands.add_parser(
        "explain",
        help="heatmaps for images: PNG, .npy, results.json and index.html",
        description=(
            "Explain a model's decision on each image with one or more attribution methods. Writes\n"
            "OUT/<image>/<method>.png (heatmap) and .npy (relevance, C x H x W), an overlay and a\n"
            "comparison grid per image, OUT/results.json and OUT/index.html. Give images before\n"
            "--method (or after --), since --method takes several names."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "model specs:\n"
            "  efficientnet-lite0          a zoo model (unmask.zoo.names())\n"
            "  package.module:function     a function returning an nn.Module (or a unmask.zoo.ZooModel)\n"
            "  path/to/file.py:function    the same, from a file\n"
            "  model.pt                    a TorchScript file (torch.jit.save)\n"
            "  weights.pt --arch MOD:FN    a state dict, loaded with torch.load(weights_only=True)\n"
            "Models that are not from the zoo get a 256 resize + centre crop to --image-size and the\n"
            "ImageNet mean/std.\n\n"
            "exit codes: 0 all explained; 1 an explanation failed; 2 usage error or an unusable input\n"
            "(the other inputs are still processed; failures are listed in results.json)."
        ),
    )
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
    explain.set_defaults(run=run_explain)

    for name in SUBCOMMANDS:
        _add_subcommand(commands, name)

    methods = commands.add_parser("methods", help="list the registered attribution methods")
    methods.set_defaults(run=run_methods)
    return parser


#: Further subcommands, each a module ``unmask.commands.<name>`` with ``configure(parser)`` and
#: ``run(args) -> int`` (and optionally ``HELP`` / ``DESCRIPTION``); a missing module is left out.
SUBCOMMANDS = ("evaluate", "attribute", "spray", "dissect", "prototype")


def _add_subcommand(commands: Any, name: str) -> None:
    module_name = f"unmask.commands.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name in (module_name, "unmask.commands"):
            return
        raise
    doc = (module.__doc__ or "").strip()
    summary = doc.split("\n", 1)[0]
    summary = summary.split(": ", 1)[1] if ": " in summary else summary
    parser = commands.add_parser(
        name,
        help=getattr(module, "HELP", summary),
        description=getattr(module, "DESCRIPTION", doc),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure(parser)
    parser.set_defaults(run=module.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unmask`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as error:
        _error(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except OSError as error:  # e.g. the output folder is not writable or the disk is full
        _error(f"{error.filename + ': ' if getattr(error, 'filename', None) else ''}{error.strerror or error}")
        return EXIT_FAILED


def _note(message: str) -> None:
    print(f"unmask: {message}", file=sys.stderr, flush=True)


def run_methods(args: argparse.Namespace) -> int:
    from . import methods

    for name in methods():
        print(name)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# model specs


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_callable(spec: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function`` -> the function (attribute paths allowed)."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"{spec!r} is not of the form module:function")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"cannot load {spec!r}: no such file {module_name!r}")
            unique = "_unmask_user_" + re.sub(r"\W", "_", str(path.resolve()))
            module_spec = importlib.util.spec_from_file_location(unique, path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"cannot load {spec!r}: {module_name!r} is not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[unique] = module
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except UsageError:
        raise
    except AttributeError as error:
        raise UsageError(f"cannot load {spec!r}: {_one_line(error)}") from None
    except Exception as error:  # the user's module failed to import: report it, no traceback
        raise UsageError(f"cannot load {spec!r}: {type(error).__name__}: {_one_line(error)}") from None
    if not callable(target):
        raise UsageError(f"{spec!r} is not callable (a {type(target).__name__})")
    return target


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _pickled_globals(path: Path, error: Exception) -> str | None:
    """What a torch.save file that ``weights_only`` refused needs to import, or ``None`` if it is no such file."""
    try:
        from torch.serialization import get_unsafe_globals_in_checkpoint

        names = get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # older torch, or a legacy (non-zip) file
        names = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if not names:
        return None
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _unwrap_state_dict(obj: Any) -> Any:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _build(factory_spec: str) -> Any:
    factory = load_callable(factory_spec)
    try:
        return factory()
    except Exception as error:
        raise UsageError(f"{factory_spec!r} failed: {type(error).__name__}: {_one_line(error)}") from None


def load_model_spec(
    spec: str,
    *,
    arch: str | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
    image_size: int = 224,
    classes: str | None = None,
) -> "Any":
    """Resolve a ``--model`` spec to a :class:`unmask.zoo.ZooModel` in eval mode on ``device``."""
    import torch
    from torch import nn

    from . import zoo

    if spec in zoo.names():
        if arch:
            raise UsageError(f"--arch is for state-dict files, not the zoo model {spec!r}")
        try:
            return zoo.load(spec, device=device)
        except ImportError as error:
            raise UsageError(f"cannot load {spec!r}: {_one_line(error)}") from None

    path = Path(spec)
    if path.is_file():
        if _is_torchscript(path):
            if arch:
                raise UsageError(f"{spec} is a TorchScript file; it needs no --arch")
            try:
                with warnings.catch_warnings():  # torch 2.10+ calls TorchScript deprecated; it is still the user's file
                    warnings.simplefilter("ignore", DeprecationWarning)
                    model = torch.jit.load(str(path), map_location=device)
            except Exception as error:
                raise UsageError(f"cannot load TorchScript file {spec}: {_one_line(error)}") from None
        else:
            try:
                obj = torch.load(str(path), map_location=device, weights_only=True)
            except pickle.UnpicklingError as error:
                needs = _pickled_globals(path, error)
                if needs is None:
                    raise UsageError(f"cannot load {spec}: not a TorchScript file nor a file written by torch.save") from None
                if not trust_pickle:
                    raise UsageError(
                        f"{spec} is a full pickle (of {needs}), which can run arbitrary code when loaded; save a state dict "
                        "(torch.save(model.state_dict(), ...)) or TorchScript instead, or pass --trust-pickle "
                        "if you trust the file"
                    ) from None
                try:
                    obj = torch.load(str(path), map_location=device, weights_only=False)
                except Exception as error:
                    raise UsageError(f"cannot load {spec}: {_one_line(error)}") from None
            except Exception as error:
                raise UsageError(
                    f"cannot load {spec}: not a TorchScript file nor a file written by torch.save "
                    f"({type(error).__name__}: {_one_line(error)})"
                ) from None
            if isinstance(obj, nn.Module):
                if arch:
                    raise UsageError(f"{spec} holds a whole model; it needs no --arch")
                model = obj
            else:
                state = _unwrap_state_dict(obj)
                if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                    raise UsageError(f"{spec} holds a {type(obj).__name__}, neither a model nor a state dict")
                if not arch:
                    raise UsageError(f"{spec} is a state dict; name the network it belongs to with --arch module:function")
                model = _build(arch)
                if not isinstance(model, nn.Module):
                    raise UsageError(f"--arch {arch!r} returned a {type(model).__name__}, not a torch.nn.Module")
                if state and all(k.startswith("module.") for k in state):
                    state = {k[len("module."):]: v for k, v in state.items()}
                try:
                    model.load_state_dict(state, strict=True)
                except RuntimeError as error:
                    raise UsageError(f"the state dict {spec} does not fit --arch {arch!r}: {_one_line(error)}") from None
    elif ":" in spec:
        if arch:
            raise UsageError("--arch is for state-dict files given as --model")
        model = _build(spec)
        if isinstance(model, zoo.ZooModel):
            model.model.eval()
            return model.to(device)
        if not isinstance(model, nn.Module):
            raise UsageError(f"{spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    else:
        raise UsageError(
            f"unknown model {spec!r}: not a zoo model ({', '.join(zoo.names())}), not an existing file, "
            "and not of the form module:function"
        )
    model = model.to(device).eval()
    name = path.name if path.is_file() else spec
    return zoo.ZooModel(
        name=name,
        model=model,
        classes=_class_names(classes),
        preprocessing=zoo.Preprocessing(size=image_size, resize=max(image_size, round(image_size * 256 / 224))),
        description=f"{type(model).__name__} from {spec}",
    )


def _class_names(classes: str | None) -> list[str]:
    from . import zoo

    if classes is None:
        return []
    if classes == "imagenet":
        return list(zoo.imagenet_classes())
    try:
        return [line.strip() for line in Path(classes).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read --classes {classes}: {_one_line(error)}") from None


def parse_target(text: str, classes: Sequence[str]) -> int | None:
    """``'predicted'`` -> None; ``'281'`` -> 281; a class name (case-insensitive) -> its index."""
    if text == "predicted":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    lowered = text.strip().lower()
    from . import zoo

    full = zoo.imagenet_classes(full=True) if list(classes) == list(zoo.imagenet_classes()) else ()
    for index, name in enumerate(classes):
        if name.lower() == lowered or (full and lowered in (n.strip().lower() for n in full[index].split(","))):
            return index
    raise UsageError(f"--target {text!r} is neither 'predicted', a class index, nor a class name of the model")


# --------------------------------------------------------------------------------------------------
# explain


@dataclass
class _Item:
    """One image to explain."""

    name: str
    source: str
    load: Callable[[], Any]
    record: dict[str, Any] = field(default_factory=dict)


def _unique(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.\-]+", "_", name).strip("._") or "image"
    candidate, k = base, 2
    while candidate.lower() in taken:
        candidate, k = f"{base}-{k}", k + 1
    taken.add(candidate.lower())
    return candidate


#: Parameters the command line gives methods that accept them, unless --param says otherwise:
#: small internal batches keep integrated gradients / SmoothGrad / occlusion fast and light on a CPU.
CLI_DEFAULT_PARAMS = {"internal_batch_size": 16}


def parse_params(specs: Sequence[str] | None) -> list[tuple[str | None, str, Any]]:
    """``["steps=16", "lrp.epsilon:epsilon=1e-3"]`` -> ``[(None, "steps", 16), ("lrp.epsilon", "epsilon", 0.001)]``.

    Values are Python literals (numbers, booleans, tuples, strings in quotes); anything else stays a string.
    """
    parsed = []
    for spec in specs or []:
        key, sep, raw = spec.partition("=")
        method, colon, key = key.rpartition(":") if ":" in key else (None, "", key)
        key = key.strip()
        if not sep or not key.isidentifier() or (colon and not method):
            raise UsageError(f"--param {spec!r} is not of the form KEY=VALUE or METHOD:KEY=VALUE")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        parsed.append((method or None, key, value))
    return parsed


def _parameter_names(name: str, cls: type) -> frozenset[str] | None:
    """Keyword parameters the method ``name`` takes, or ``None`` when they cannot be told in advance.

    Read from the constructor's signature; a constructor taking ``**params`` lists them in a class
    attribute ``parameters`` (as the LRP presets do).
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    named = {
        key for key, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) and key != "model"
    }
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return frozenset(named)
    listed = getattr(cls, "parameters", None)
    if isinstance(listed, (tuple, list, frozenset, set)) and all(isinstance(k, str) for k in listed):
        return frozenset(named | set(listed))
    return None


def _accepts(name: str, cls: type) -> Callable[[str], bool]:
    names = _parameter_names(name, cls)
    return (lambda key: True) if names is None else names.__contains__


def _method_params(name: str, cls: type, net: Any, params: list[tuple[str | None, str, Any]]) -> dict[str, Any]:
    """Keyword arguments for method ``name``: box bounds (the z^B rule needs the valid input range) and
    :data:`CLI_DEFAULT_PARAMS` where the method is known to take them, then the user's ``--param`` values."""
    known = _parameter_names(name, cls)
    chosen: dict[str, Any] = {}
    if known is not None and {"low", "high"} <= known:
        chosen.update(low=net.low, high=net.high)
    if known is not None:
        chosen.update({key: value for key, value in CLI_DEFAULT_PARAMS.items() if key in known})
    for method, key, value in params:
        if method is None and (known is None or key in known):
            chosen[key] = value
    for method, key, value in params:
        if method == name:
            if known is not None and key not in known:
                raise UsageError(f"--param {method}:{key}: method {name!r} has no parameter {key!r}; it takes {', '.join(sorted(known))}")
            chosen[key] = value
    return chosen


def _resolve_methods(requested: list[str] | None) -> list[str]:
    from . import methods as registered

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


def _progress(total: int, disable: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the cli extra; without it, no bar
        return None
    return tqdm(total=total, file=sys.stderr, unit="explanation", disable=True if disable else None, dynamic_ncols=True)


def run_explain(args: argparse.Namespace) -> int:
    import torch

    from . import __version__, get_method
    from . import data as data_module
    from . import report, viz

    started = time.perf_counter()
    device = args.device
    try:
        torch_device = torch.device(device)
    except RuntimeError as error:
        raise UsageError(f"--device {device!r}: {_one_line(error)}") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
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
        if method is None and not any(_accepts(name, get_method(name))(key) for name in method_names):
            raise UsageError(f"--param {key}: none of the methods run ({', '.join(method_names)}) has a parameter {key!r}")
    methods: dict[str, Any] = {}
    method_params: dict[str, dict[str, Any]] = {}
    unusable: dict[str, str] = {}  # methods that cannot explain this model, and why
    for name in method_names:
        cls = get_method(name)
        kwargs = _method_params(name, cls, net, params)
        method_params[name] = {k: v for k, v in kwargs.items() if k not in ("low", "high")}
        try:
            methods[name] = cls(net.model, **kwargs)
        except Exception as error:  # e.g. a layer the method has no rule for: the other methods still run
            unusable[name] = f"{type(error).__name__}: {_one_line(error)}"
            _error(f"method {name!r} cannot explain this model: {unusable[name]}")
    if not methods:
        raise UsageError("none of the methods can explain this model (see above)")

    # inputs --------------------------------------------------------------------------------------
    failures: list[dict[str, Any]] = []
    conserved: dict[str, list[float]] = {}  # per method: relevance sum / explained logit, per image
    items: list[_Item] = []
    taken: set[str] = set()
    input_problems = 0
    if args.inputs:
        files, problems = data_module.expand_inputs(args.inputs)
        input_problems = len(problems)
        for problem in problems:
            failures.append({"source": problem.path, "method": None, "error": str(problem)})
            _error(str(problem))
        for path in files:
            items.append(_Item(_unique(path.stem, taken), str(path), lambda p=path: data_module.load_image(p)))
    else:
        try:
            names = data_module.photo_names() if args.photos == ["all"] else (args.photos or list(data_module.DEFAULT_PHOTOS))
            for name in names:
                if name not in data_module.photo_names():
                    raise UsageError(f"unknown sample photo {name!r}; known: {', '.join(data_module.photo_names())}")
            photos = data_module.sample_photos(names)
        except ImportError as error:
            raise UsageError(f"no images given and {_one_line(error)}") from None
        for name, photo in photos.items():
            items.append(_Item(_unique(name, taken), f"skimage.data: {name}", lambda p=photo: p))

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create --out {out}: {error.strerror or error}") from None

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
        "params": {name: {k: _jsonable(v) for k, v in p.items()} for name, p in method_params.items()},
        "target": args.target if target_index is None else target_index,
        "device": str(torch_device),
        "images": [],
        "failures": failures,
        "summary": {},
    }

    bar = _progress(len(items) * len(methods), args.no_progress)

    def say(message: str, error: bool = True) -> None:
        if bar is not None:
            bar.clear()
        (_error if error else _note)(message)
        if bar is not None:
            bar.refresh()

    user_errors = input_problems
    runtime_errors = len(unusable)
    for start in range(0, len(items), args.batch_size):
        batch_items = []
        crops = []
        for item in items[start : start + args.batch_size]:
            try:
                image = item.load()
            except data_module.ImageLoadError as error:
                failures.append({"source": item.source, "method": None, "error": str(error)})
                say(str(error))
                user_errors += 1
                if bar is not None:
                    bar.update(len(methods))
                continue
            crops.append(net.resized(image))
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
                output = net.model(inputs)
            if output.dim() != 2:
                raise ValueError(f"the model's output is shaped {tuple(output.shape)}, not (batch, classes)")
        except Exception as error:
            message = f"the model cannot process {net.preprocessing.size}x{net.preprocessing.size} RGB images: {_one_line(error)}"
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
                {"index": int(i), "name": net.class_name(int(i)), "probability": _finite(float(p))}
                for p, i in zip(top_p[row], top_i[row])
            ]
            t = int(targets[row])
            record["target"] = {
                "index": t,
                "name": net.class_name(t),
                "logit": _finite(float(output[row, t])),
                "probability": _finite(float(probabilities[row, t])),
            }
            viz.to_png(crop, out / item.name / "input.png")

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
                message = f"{name} failed on {', '.join(i.source for i in batch_items)}: {type(error).__name__}: {_one_line(error)}"
                say(message)
                runtime_errors += len(batch_items)
                for item in batch_items:
                    item.record["errors"].append({"method": name, "error": f"{type(error).__name__}: {_one_line(error)}"})
                    failures.append({"source": item.source, "method": name, "error": message})
                if bar is not None:
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
                heat = torch.nan_to_num(r.sum(0), nan=0.0, posinf=0.0, neginf=0.0)  # draw NaN/Inf as 0
                picture, overlaid = viz.heatmap(heat, **HEATMAP_STYLE), viz.overlay(crop, heat, **OVERLAY_STYLE)
                viz.to_png(picture, out / item.name / f"{name}.png")
                viz.to_png(overlaid, out / item.name / f"{name}.overlay.png")
                pictures[row].append((name, picture, overlaid))
                item.record["methods"][name] = {
                    "png": f"{item.name}/{name}.png",
                    "overlay": f"{item.name}/{name}.overlay.png",
                    "npy": f"{item.name}/{name}.npy",
                    "relevance_sum": _finite(float(sums[row])),
                    "explained_logit": None if explained is None else _finite(float(explained[row])),
                    "conserved_share": None if shares is None else _finite(float(shares[row])),
                    "seconds": round(seconds, 4),
                }
            if bar is not None:
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
    if bar is not None:
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
    report.write_json(out / "results.json", results)
    index = report.write_index(results, out)
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
