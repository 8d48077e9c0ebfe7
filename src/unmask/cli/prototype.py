"""``unmask prototype``: what a class (or a unit, channel, direction) looks like to the model.

    unmask prototype --target goose --target 281                  # EfficientNet-Lite0 classes
    unmask prototype --model concept-net --target "striped star" --steps 128
    unmask prototype --target channel:_blocks.4:7 unit:_blocks.10:3 --param pixel --tv 0.05

Writes one PNG per target, OUT/prototypes.npy (the optimised inputs, normalised as the model expects),
OUT/prototypes.json (per target the model's top-5 classes on its own prototype) and OUT/index.html.
"""
from __future__ import annotations

import argparse
import re
import time
from typing import Any

from ._args import EXIT_OK, add_model_options, positive_int
from ._run import run_command
from ._args import check_device, output_folder


DESCRIPTION = """Class prototypes by activation maximisation: optimise an input so that a class logit (or a unit,
channel or direction of a layer) is as large as possible, with a Fourier or pixel parameterisation,
random jitter/scale/rotation and optional L2, total-variation and blur regularisers.

""" + __doc__.split("\n", 1)[1].strip("\n")

EPILOG = """\
targets:
  100, goose                  a class index or name (logit:100 too)
  channel:LAYER:C             mean of channel C of a layer
  unit:LAYER:C[:Y:X]          one neuron (default: the centre position)
  direction:LAYER:FILE.npy    a direction in the layer's channel space

exit codes: 0 done; 1 the optimisation failed; 2 usage error."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask prototype`` to ``parser``."""
    add_model_options(parser)
    parser.add_argument("--target", "-t", dest="targets", action="extend", nargs="+", required=True, metavar="T", help="one or more targets (see below); one image each")
    parser.add_argument("--steps", type=positive_int, default=256, metavar="N", help="optimisation steps (default: 256)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    parser.add_argument("--param", choices=("fourier", "pixel"), default="fourier", help="parameterisation (default: fourier)")
    parser.add_argument("--no-decorrelate", action="store_true", help="optimise plain RGB instead of decorrelated colour")
    parser.add_argument("--no-transforms", action="store_true", help="no random jitter, scale and rotation")
    parser.add_argument("--jitter", type=float, default=None, metavar="PX", help="random shift per step, pixels (default: 1/28 of the image side, 8 at 224)")
    parser.add_argument("--scale", type=float, nargs=2, default=(0.9, 1.1), metavar=("LOW", "HIGH"), help="random scale range (default: 0.9 1.1)")
    parser.add_argument("--rotate", type=float, default=10.0, metavar="DEG", help="random rotation range, degrees (default: 10)")
    parser.add_argument("--l2", type=float, default=0.0, help="weight of the L2 regulariser (default: 0)")
    parser.add_argument("--tv", type=float, default=0.0, help="weight of the total-variation regulariser (default: 0)")
    parser.add_argument("--blur", type=float, default=0.0, help="weight of the blur regulariser (default: 0)")
    parser.add_argument("--objective", choices=("logit", "log_softmax"), default="logit", help="for class targets (default: logit)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="targets optimised together (default: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--image-size", type=positive_int, metavar="PX", help="input size for models not from the zoo (default: 224)")
    parser.add_argument("--classes", metavar="FILE", help="class names, one per line, for models not from the zoo; 'imagenet' for ImageNet-1k")
    parser.add_argument("--out", "-o", default="out/prototype", metavar="DIR", help="output folder (default: out/prototype)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``unmask prototype`` for parsed ``args``; returns the exit code."""
    return run_command("prototype", _run, args)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "target"


def _run(args: argparse.Namespace) -> int:

    import numpy as np
    import torch

    from .. import __version__, cli
    from ..analyze import prototype_report
    from ..analyze.prototypes import Logit, evaluate, parse_target, prototype, to_pixels
    from .._io import write_json, write_npy, write_png
    from ..viz import to_image

    started = time.perf_counter()
    check_device(args.device)
    net = cli.load_model_spec(args.model, arch=args.arch, trust_pickle=args.trust_pickle, device=args.device, image_size=args.image_size or 224, classes=args.classes)
    targets = [parse_target(text, net.classes) for text in args.targets]
    settings = dict(
        steps=args.steps, lr=args.lr, param=args.param, decorrelate=not args.no_decorrelate, transforms=not args.no_transforms,
        jitter=args.jitter, scale=tuple(args.scale), rotate=args.rotate, l2=args.l2, tv=args.tv, blur=args.blur,
        objective=args.objective, seed=args.seed,
    )
    out = output_folder(args.out)

    inputs = []
    for start in range(0, len(targets), args.batch_size):
        chunk = targets[start : start + args.batch_size]
        inputs.append(prototype(net, chunk, progress=not args.no_progress, **settings))
    x = torch.cat(inputs)
    with torch.no_grad():
        logits = net.model(x)
    # a multi-label model (unmask's concept-net) gives independent sigmoid probabilities, else softmax
    multi_label = bool(getattr(net.model, "multi_label", False))
    probabilities = logits.sigmoid() if multi_label else logits.softmax(1)
    values, indices = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
    top5 = [[(int(j), net.class_name(int(j)), float(p)) for p, j in zip(vs, js)] for vs, js in zip(values.cpu(), indices.cpu())]
    entries = []
    for i, (text, target) in enumerate(zip(args.targets, targets)):
        title = net.class_name(target.index) if isinstance(target, Logit) else str(target)
        name = f"{i:02d}_{_slug(text)}.png"
        write_png(out / name, to_image(to_pixels(x[i : i + 1], net.preprocessing.mean, net.preprocessing.std)[0]))
        entry: dict[str, Any] = {
            "target": str(target),
            "title": f"{target.index} {title}" if isinstance(target, Logit) else title,
            "image": name,
            "top5": [{"index": j, "name": n, "probability": p} for j, n, p in top5[i]],
        }
        if isinstance(target, Logit):
            probability = float(probabilities[i, target.index])
            entry.update(class_index=target.index, class_name=title, probability=probability, objective=float(logits[i, target.index]))
        else:
            value = evaluate(net, x[i : i + 1], [target], args.objective)
            entry.update(objective=float(value[0]))
        entries.append(entry)
    write_npy(out / "prototypes.npy", x.cpu().numpy().astype(np.float32))
    seconds = time.perf_counter() - started
    meta = {
        "unmask_version": __version__,
        "model": net.name,
        "probabilities": "sigmoid (multi-label)" if multi_label else "softmax",
        "description": net.description,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
        "device": args.device,
        "seconds": seconds,
    }
    write_json(out / "prototypes.json", {**meta, "prototypes": entries})
    page = prototype_report.write_page(out, entries, meta)
    for entry in entries:
        verdict = f" -> fed back: {entry['probability']:.1%} {entry['class_name']}" if "probability" in entry else f" -> objective {entry['objective']:.4g}"
        print(f"{entry['title']}{verdict}; top class {entry['top5'][0]['name']} ({entry['top5'][0]['probability']:.1%})")
    print(f"report: {page}")
    return EXIT_OK
