"""Samples per second of ``unmask.store.attribute``: one process against a local Ray cluster, side by side.

    python benchmarks/bench_attribute.py                             # Clever Hans model, 512 samples, CPU
    python benchmarks/bench_attribute.py --model efficientnet-lite0 --n 128 --method lrp.epsilon_plus_flat
    python benchmarks/bench_attribute.py --device cuda               # one process on one GPU vs a task per GPU
    python benchmarks/bench_attribute.py --json out.json

Same model, data, method, batch and shard sizes for both engines; each writes a fresh store. The local
engine is one process (torch uses every core; on CUDA one GPU). The Ray engine starts a local cluster
with ``--ray-workers`` task slots (CPUs, or GPUs with ``--device cuda``; default: the cores or the
GPUs). Both engines run twice: "cold" includes the first explainer of the process and, on Ray, starting
the worker processes (importing torch and unmask); "warm" reuses them, which is what a long run sees. The cluster's start-up is reported
apart. After the runs the stores are compared sample by sample (largest relevance difference relative
to the largest relevance). Data: the Clever Hans set for its model, random 224 x 224 inputs for
EfficientNet-Lite0 (speed does not depend on the content).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


class RandomImages:
    """``n`` inputs of shape ``(3, size, size)``, seeded by index (picklable, so Ray workers can read it)."""

    def __init__(self, n: int, size: int = 224) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        import torch

        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.size, self.size, generator=g), -1, f"random/{i}"


def load(model_name: str, n: int):
    from unmask import zoo

    model = zoo.load(model_name)
    if model_name == "cleverhans":
        from unmask.data.cleverhans import CleverHans

        return model, CleverHans("test", n)
    return model, RandomImages(n)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cleverhans", help="a zoo model: cleverhans (default) or efficientnet-lite0")
    parser.add_argument("--method", default="lrp.epsilon_plus_flat")
    parser.add_argument("--n", type=int, default=512, help="samples (default: 512)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--ray-workers", type=int, default=None, help="Ray task slots (default: the cores, or the GPUs)")
    parser.add_argument("--object-store-mb", type=int, default=300, help="Ray object store of the local cluster (default: 300 MB)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    import ray
    import torch

    from unmask.store import attribute

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here", file=sys.stderr)
        return 2
    slots = args.ray_workers or (torch.cuda.device_count() if cuda else os.cpu_count() or 1)
    model, data = load(args.model, args.n)
    settings = dict(method=args.method, batch_size=args.batch_size, shard_size=args.shard_size, progress=False)
    load_average = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load_average[0]:.1f}; {args.model}, {args.method}, {args.n} samples, "
          f"batch {args.batch_size}, shard {args.shard_size}, device {args.device}", flush=True)
    report: dict[str, object] = {"cores": os.cpu_count(), "load_average": load_average, "model": args.model, "method": args.method,
                                 "n": args.n, "device": args.device, "ray_slots": slots}
    work = Path(tempfile.mkdtemp(prefix="bench_attribute_"))
    try:
        for run in ("cold", "warm"):  # cold: the first explainer in this process (tracing, allocator warm-up)
            local, seconds = timed(attribute, model, data, work / f"local-{run}", device=args.device, **settings)
            report[f"local_{run}_samples_per_s"] = args.n / seconds
            print(f"one process {run:4s} ({torch.get_num_threads()} threads): {seconds:7.1f} s  {args.n / seconds:8.1f} samples/s", flush=True)

        _, started = timed(ray.init, num_cpus=max(slots, 1) if not cuda else None, num_gpus=slots if cuda else None,
                           object_store_memory=args.object_store_mb * 2**20, include_dashboard=False, log_to_driver=False)
        report["ray_start_s"] = started
        print(f"ray: local cluster with {slots} {'GPU' if cuda else 'CPU'} slots started in {started:.1f} s", flush=True)
        ratio = {}
        for run in ("cold", "warm"):
            store, seconds = timed(attribute, model, data, work / f"ray-{run}", device=args.device, engine="ray", **settings)
            rate = args.n / seconds
            report[f"ray_{run}_samples_per_s"] = rate
            ratio[run] = rate / report[f"local_{run}_samples_per_s"]
            print(f"ray {run:4s} ({slots} tasks x 1 {'GPU' if cuda else 'thread'}): {seconds:7.1f} s  {rate:8.1f} samples/s  "
                  f"= {ratio[run]:.2f} x one process {run}", flush=True)
        scale = float(np.abs(local.relevance()).max()) or 1.0
        difference = float(np.abs(store.relevance() - local.relevance()).max()) / scale
        same_predictions = bool(np.array_equal(store.predictions, local.predictions))
        report.update(ray_over_local=ratio, relevance_difference_relative=difference, same_predictions=same_predictions)
        print(f"stores: same predictions {same_predictions}, largest relevance difference {difference:.2e} of the largest relevance", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
