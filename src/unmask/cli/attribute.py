"""``unmask attribute``: explanations for a whole data set, into a resumable on-disk store.

    unmask attribute photos/ --out runs/photos                    # class sub-folders, EfficientNet-Lite0
    unmask attribute cleverhans:test --out runs/ch                # unmask's Clever Hans set and its model
    unmask attribute list.csv --out runs/x --model net.pt --arch mymodule:build --method lrp.epsilon_plus
    unmask attribute data/ --out runs/x --worker 0 --workers 2    # two processes, one folder each or shared
    unmask attribute --merge runs/x0 runs/x1 --out runs/x.h5      # one file from several workers' stores
    unmask attribute data/ --out runs/x --engine ray              # shards as Ray tasks on a local cluster
    unmask attribute data/ --out runs/x --ray-address auto --device cuda   # a running cluster, one GPU per task

Under torchrun (RANK, WORLD_SIZE) or SLURM (an array job's SLURM_ARRAY_TASK_ID/COUNT, srun's
SLURM_PROCID/NTASKS) --worker and --workers are read from the environment when not given.

Killed (Ctrl-C, kill -9, a crash) and started again with the same arguments, it computes only what is
missing; the finished store holds every sample once with the numbers of an uninterrupted run.
Read the store in Python with ``unmask.store.open_store(STORE)``; cluster it with ``unmask spray``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ._args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_model_options, non_negative_int, positive_int
from ._args import error as _error
from ._run import run_command
from ._args import check_device
from ._params import one_method_params

DEFAULT_METHOD = "lrp.epsilon_plus_flat"


DESCRIPTION = """\
Explain every sample of a data set and write relevance, predictions, target logits, labels and paths
to a chunked HDF5 store that survives being killed and resumes where it stopped."""

EPILOG = """\
data:
  FOLDER                 class sub-folders of images (like torchvision's ImageFolder), or images at the top
  LIST.txt / LIST.csv    a file list: 'PATH [LABEL]' lines, or a CSV with path, label, x0, y0, x1, y1
  cleverhans[:SPLIT[:N]] unmask's shapes with a planted tag (split test, train or val; N samples)

relevance kept per sample: sum (over channels, H x W; default), full (C x H x W), pooled (P x P).

exit codes: 0 done; 1 the explanation failed; 2 usage error; 130 interrupted (start again to resume)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``unmask attribute`` to ``parser``."""
    parser.add_argument("data", nargs="*", metavar="DATA", help="folder, file list or cleverhans[:split[:n]]; with --merge: the stores to merge")
    parser.add_argument("--out", "-o", required=True, metavar="STORE", help="the store folder (created, or resumed if it exists); with --merge: the merged .h5 file")
    add_model_options(parser, None, "cleverhans for the cleverhans data, else efficientnet-lite0")
    parser.add_argument("--method", "-m", default=DEFAULT_METHOD, help=f"attribution method (default: {DEFAULT_METHOD}); see 'unmask methods'")
    parser.add_argument("--param", "-p", dest="params", action="append", metavar="KEY=VALUE", help="a method parameter (VALUE is a Python literal); repeatable")
    parser.add_argument("--target", default="predicted", metavar="T", help="'predicted' (default), 'label', or a class index or name")
    parser.add_argument("--relevance", choices=("sum", "full", "pooled"), default="sum", help="what to keep per sample (default: sum)")
    parser.add_argument("--pool", type=positive_int, default=20, metavar="P", help="side of the pooled heatmap for --relevance pooled (default: 20)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="samples per forward/backward pass (default: 32)")
    parser.add_argument("--shard-size", type=positive_int, default=256, metavar="N", help="samples per shard file (default: 256)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--worker", type=non_negative_int, default=None, metavar="I", help="this process's number when several share the work (default: from torchrun/SLURM, else 0)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N", help="how many processes share the work (default: from torchrun/SLURM, else 1)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help="CPU threads of this process (default: all cores, or cores / --workers when several workers share the machine)")
    parser.add_argument("--num-workers", type=non_negative_int, default=0, metavar="N", help="data loading processes (default: 0, in this process)")
    parser.add_argument("--engine", choices=("local", "ray"), default=None, help="local: this process (default); ray: one Ray task per shard")
    parser.add_argument("--ray-address", metavar="ADDRESS", help="Ray cluster to use (auto, HOST:PORT, ray://HOST:10001; implies --engine ray; default: start a local one)")
    parser.add_argument("--ray-cpus", type=positive_int, default=1, metavar="N", help="CPUs (torch threads) per Ray task (default: 1)")
    parser.add_argument("--save-logits", action="store_true", help="also keep every sample's whole output")
    parser.add_argument("--image-size", type=positive_int, default=224, metavar="PX", help="input size for models not from the zoo (default: 224)")
    parser.add_argument("--classes", metavar="FILE", help="class names, one per line, for models not from the zoo")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=True, help="skip samples that cannot be loaded (damaged images), listing them in the store, instead of stopping (default: on)")
    parser.add_argument("--merge", action="store_true", help="merge the stores given as DATA into the file --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _note(message: str) -> None:
    print(f"unmask: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run ``unmask attribute`` for parsed ``args``; returns the exit code."""
    return run_command("attribute", _run, args, on_interrupt="run the same command again to resume")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Relabelled:
    """A data set whose labels (indices into its own class names) are mapped to the model's class indices."""

    def __init__(self, dataset: Any, mapping: list[int], classes: list[str]) -> None:
        self.dataset, self.mapping, self.classes = dataset, mapping, classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        x, label, *rest = self.dataset[index]
        return (x, self.mapping[label] if label >= 0 else label, *rest)

    def describe(self) -> dict[str, Any]:
        info = dict(self.dataset.describe()) if hasattr(self.dataset, "describe") else {"size": len(self)}
        return {**info, "labels_mapped_to_model_classes": dict(zip(info.get("classes", []), self.mapping)), "classes": self.classes}


def _labels_as_model_classes(dataset: Any, model_classes: list[str], target: str) -> Any:
    """Folder (or list) labels in the model's class indices when every label name is a model class name;
    otherwise the labels keep their own names, and ``--target label`` is refused (it would explain the
    model class that happens to have the folder's index)."""
    names = list(getattr(dataset, "classes", None) or [])
    if not names or not model_classes or names == model_classes[: len(names)]:
        return dataset
    lookup = {}
    for index, name in enumerate(model_classes):
        for alias in {name, *name.split(",")}:
            lookup.setdefault(alias.strip().lower(), index)
    mapping = [lookup.get(name.strip().lower().replace("_", " "), lookup.get(name.strip().lower())) for name in names]
    if all(m is not None for m in mapping):
        _note(f"labels: the data set's class names mapped to the model's classes ({', '.join(f'{n}->{m}' for n, m in list(zip(names, mapping))[:5])}{' ...' if len(names) > 5 else ''})")
        return _Relabelled(dataset, mapping, model_classes)
    if target == "label":
        missing = [n for n, m in zip(names, mapping) if m is None]
        raise UsageError(
            f"--target label: the data set's labels ({', '.join(names[:5])}{' ...' if len(names) > 5 else ''}) are not the "
            f"model's class names (not a model class: {', '.join(missing[:5])}); name the class folders after the "
            "model's classes, or use --target predicted or a class"
        )
    return dataset


def parse_data(spec: str, transform: Any) -> Any:
    """A DATA argument as a data set: ``cleverhans[:split[:n]]``, a folder or a file list."""
    from ..data import folders

    if spec == "cleverhans" or spec.startswith("cleverhans:"):
        from ..data.cleverhans import CleverHans

        parts = spec.split(":")[1:]
        split = parts[0] if parts and parts[0] else "test"
        size = None
        if len(parts) > 1:
            try:
                size = int(parts[1])
            except ValueError:
                raise UsageError(f"{spec!r}: the size after the split must be a number (cleverhans:test:500)") from None
        if len(parts) > 2:
            raise UsageError(f"{spec!r} is not of the form cleverhans[:SPLIT[:N]]")
        try:
            return CleverHans(split, size)
        except ValueError as error:
            raise UsageError(f"{spec!r}: {error}") from None
    return folders.from_path(spec, transform)


def _worker_and_workers(worker: int | None, workers: int | None) -> tuple[int, int]:
    """--worker/--workers as given, else from torchrun's or SLURM's environment, else (0, 1)."""
    if worker is not None or workers is not None:
        return (worker or 0), (workers or 1)
    from ..store._ranks import worker_from_env

    found = worker_from_env()
    if found is None:
        return 0, 1
    _note(f"worker {found[0]} of {found[1]} (from {found[2]})")
    return found[0], found[1]


def _run(args: argparse.Namespace) -> int:
    import torch

    from .. import cli, get_method
    from .. import store as store_module

    started = time.perf_counter()
    if args.merge:
        if len(args.data) < 1:
            raise UsageError("--merge needs the store folders to merge as arguments")
        merged = store_module.merge(args.data, args.out)
        print(f"unmask: merged {len(merged)} samples from {len(args.data)} store(s) into {args.out}", flush=True)
        return EXIT_OK
    if len(args.data) != 1:
        raise UsageError(f"give exactly one DATA (a folder, a file list or cleverhans[:split]), got {len(args.data)}")
    args.engine = args.engine or ("ray" if args.ray_address else "local")
    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    args.worker, args.workers = _worker_and_workers(args.worker, args.workers)
    if not 0 <= args.worker < args.workers:
        raise UsageError(f"--worker must be in 0 .. {args.workers - 1} for --workers {args.workers}, got {args.worker}")
    if args.engine == "local":  # a Ray cluster's workers may have devices this machine lacks
        check_device(args.device)
        threads = args.threads or (max(1, _cores() // args.workers) if args.workers > 1 else None)
        if threads is not None:  # several workers each on every core run many times slower than one
            torch.set_num_threads(threads)
    try:
        method_class = get_method(args.method)
    except ValueError as error:
        raise UsageError(str(error)) from None
    params = one_method_params(args.method, method_class, args.params)
    data_spec = args.data[0]
    is_cleverhans = data_spec == "cleverhans" or data_spec.startswith("cleverhans:")
    model_spec = args.model or ("cleverhans" if is_cleverhans else "efficientnet-lite0")
    net = cli.load_model_spec(
        model_spec, arch=args.arch, trust_pickle=args.trust_pickle, device=args.device if args.engine == "local" else "cpu", image_size=args.image_size, classes=args.classes
    )
    dataset = parse_data(data_spec, net.preprocessing)
    if args.method.endswith("_box") and "low" not in params and "high" not in params:
        params["low"], params["high"] = net.low, net.high
    classes = list(net.classes or getattr(dataset, "classes", []) or [])
    dataset = _labels_as_model_classes(dataset, list(net.classes or []), args.target)
    target: Any = args.target
    if target not in ("predicted", "label"):
        if target.lstrip("-").isdigit():
            target = int(target)
        elif target in classes:
            target = classes.index(target)
        else:
            raise UsageError(f"--target {args.target!r} is not 'predicted', 'label', a class index or a class name")
    _note(f"explaining {len(dataset)} samples of {data_spec} with {args.method} on {net.name} into {args.out}")
    store = store_module.attribute(
        net,
        dataset,
        args.out,
        method=args.method,
        params=params,
        target=target,
        relevance=args.relevance,
        pool=args.pool,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        device=args.device,
        worker=args.worker,
        workers=args.workers,
        num_workers=args.num_workers,
        save_logits=args.save_logits,
        model_name=model_spec,
        classes=classes,
        progress=not args.no_progress,
        skip_bad=args.skip_bad,
        engine=args.engine,
        ray_address=args.ray_address,
        ray_options={"num_cpus": args.ray_cpus} if args.engine == "ray" else None,
    )
    seconds = time.perf_counter() - started
    state = "complete" if store.complete else f"{len(store)} of {store.size} samples (other workers' shards missing)"
    print(f"unmask: store {args.out}: {state}, {seconds:.1f} s", flush=True)
    non_finite = store.non_finite
    if non_finite:
        _error(f"{len(non_finite)} sample(s) have NaN or infinite relevance (listed in store.non_finite; spray leaves "
               f"them out), e.g. sample {non_finite[0]}")
    skipped = store.skipped
    if skipped:
        first = skipped[0]
        _error(f"{len(skipped)} sample(s) could not be loaded and were skipped (listed in store.skipped), "
               f"e.g. sample {first['index']}: {first['error']}")
        return EXIT_USAGE
    return EXIT_FAILED if non_finite else EXIT_OK
