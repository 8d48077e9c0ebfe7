"""Speed of network dissection (images per second for a layer) and of prototypes (steps per second).

    python benchmarks/bench_dissect.py [--device cuda] [--images 64] [--layers _bn0 _blocks.4 _blocks.15]

For each layer of EfficientNet-Lite0 (and of the small ConceptNet) on the generated concept images:

- ``unmask``: ``unmask.analyze.dissect`` end to end (both passes, one layer per run), images/s;
- ``forward only``: the model's forward pass up to that layer over the same images (the floor: what
  any dissection must pay at least once), images/s;
- ``naive``: the obvious implementation: keep every activation, exact per-unit quantile with
  ``numpy.partition``, then one boolean mask per (image, unit, label) in numpy, timed on
  ``--naive-images`` images (its IoU is checked against unmask's on the same images).

Then prototype optimisation steps per second (forward + backward + update) for batches of 1 and 4
targets. Data rendering time is included in the dissection numbers (it is part of a run).
All in one process; best of ``--repeats``.
"""
from __future__ import annotations

import argparse
import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from unmask import zoo
from unmask.analyze import dissect, prototype
from unmask.analyze.dissect import activation_maps
from unmask.models import pixel_model
from unmask.data.concepts import GeneratedConcepts, collate_concepts
from unmask.zoo import concept_net as small


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        function()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def naive_iou(net, layer: str, data: GeneratedConcepts, n: int, quantile: float) -> np.ndarray:
    """Network dissection written the obvious way (numpy, loops over images, units and labels)."""
    batch = collate_concepts([data[i] for i in range(n)])
    with torch.no_grad():
        acts = activation_maps(net, layer, batch.images).cpu().numpy()
    units = acts.shape[1]
    values = acts.transpose(1, 0, 2, 3).reshape(units, -1)
    k = int(math.floor(quantile * values.shape[1] + 1e-9))
    thresholds = np.partition(values, values.shape[1] - 1 - k, axis=1)[:, values.shape[1] - 1 - k]
    planes = batch.planes.numpy()
    labels = len(data.labels)
    inter = np.zeros((units, labels))
    unit_area = np.zeros(units)
    label_area = np.zeros(labels)
    for i in range(n):
        up = F.interpolate(torch.from_numpy(acts[i : i + 1]), size=data.mask_size, mode="bilinear", align_corners=False)[0].numpy()
        masks = [(planes[i] == c).any(0) for c in range(labels)]
        for c in range(1, labels):
            label_area[c] += masks[c].sum()
        for u in range(units):
            m = up[u] > thresholds[u]
            unit_area[u] += m.sum()
            for c in range(1, labels):
                inter[u, c] += (m & masks[c]).sum()
    union = unit_area[:, None] + label_area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0)[:, 1:]


def forward_only(net, layer: str, data: GeneratedConcepts, batch_size: int, device: torch.device) -> None:
    resolved = pixel_model(net)
    module = dict(resolved.module.named_modules())[layer]

    class Stop(Exception):
        pass

    def hook(*_):
        raise Stop

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                batch = collate_concepts([data[i] for i in range(start, min(start + batch_size, len(data)))])
                try:
                    resolved.module(resolved.inputs(batch.images.to(device)))
                except Stop:
                    pass
    finally:
        handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64, help="generated images per dissection run")
    parser.add_argument("--naive-images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--layers", nargs="+", default=["_bn0", "_blocks.4", "_blocks.15"])
    parser.add_argument("--small-layers", nargs="+", default=["conv2", "conv6"])
    parser.add_argument("--prototype-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images, batch {args.batch_size}")
    if device.type == "cuda":
        print(torch.cuda.get_device_name(device))

    cases = [("efficientnet-lite0", zoo.load("efficientnet-lite0", device=device), args.layers, 224),
             ("concept-net", small.load().to(device), args.small_layers, 64)]
    print("\n## dissection (images/s, higher is better)\n")
    print(f"| model | layer | units | map | unmask | forward only | naive ({args.naive_images} images) | naive vs unmask IoU max diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, net, layers, size in cases:
        data = GeneratedConcepts(n=args.images, size=size, seed=0)
        for layer in layers:
            runs = []

            def run(net=net, layer=layer, data=data, runs=runs):
                runs.append(dissect(net, layer, data, batch_size=args.batch_size, progress=False))

            seconds = best(run, args.repeats, device)
            result = runs[-1]
            floor = best(lambda net=net, layer=layer, data=data: forward_only(net, layer, data, args.batch_size, device), args.repeats, device)
            small_data = GeneratedConcepts(n=args.naive_images, size=size, seed=0)
            start = time.perf_counter()
            reference = naive_iou(net, layer, small_data, args.naive_images, 0.005)
            naive = time.perf_counter() - start
            ours = dissect(net, layer, small_data, batch_size=args.batch_size, progress=False)
            diff = float(np.abs(ours.iou - reference).max())
            print(
                f"| {name} | {layer} | {len(result.units)} | {result.activation_size[0]}x{result.activation_size[1]} | "
                f"{args.images / seconds:.1f} | {args.images / floor:.1f} | {args.naive_images / naive:.2f} | {diff:.1e} |",
                flush=True,
            )

    print("\n## prototypes (optimisation steps/s, higher is better)\n")
    print("| model | input | targets per batch | steps/s | images x steps/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, net, _, size in cases:
        for batch in (1, 4):
            targets = list(range(batch))
            steps = args.prototype_steps
            seconds = best(lambda net=net, targets=targets, steps=steps: prototype(net, targets, steps=steps, device=device), args.repeats, device)
            print(f"| {name} | {size}x{size} | {batch} | {steps / seconds:.2f} | {batch * steps / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
