"""The Ray engine of :func:`unmask.store.attribute`: one Ray task per shard, the driver writes the results.

Each pending shard becomes a task that rebuilds the explainer on its worker, explains the shard's
samples batch by batch exactly as the local engine cuts them (batches never cross a shard boundary)
and returns the rows. The driver, the one process that writes, puts every result into the store as the
local engine does: a temporary file, fsync, one ``os.replace``. So a shard in the store is complete or
absent, the store needs no file system shared with the workers, and no two processes ever write one
shard. A worker that dies (killed, out of memory, its node lost) fails only its task: Ray runs it again
(``max_retries``, default 3) and the shard lands once. A shard still lost after its retries is reported
when the others are done; run the same call again and only the missing shards are computed.

Ray is needed only here (``pip install 'unmask[ray]'``). Tasks ask for one CPU each, and one GPU each
when ``device`` is CUDA (Ray then shows each task only its own GPU); ``ray_options`` changes that
(``{"num_cpus": 4}``, ``{"num_gpus": 0.5}``, ``{"max_retries": 5}``, a ``runtime_env``, ...).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._format import StoreError

ENGINES = ("local", "ray")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("engine='ray' needs Ray: pip install 'unmask[ray]' (or ray)") from None
    return ray


def explain_shard(net: Any, dataset: Any, start: int, stop: int, job: dict[str, Any]) -> dict[str, Any]:
    """On a Ray worker: the rows of samples ``[start, stop)``, one part per batch, and where they were computed."""
    import ray
    import torch

    from .. import get_method
    from ._skip import explain_tolerant
    from ._write import _explain_batch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
    device = torch.device(job["device"])
    if device.type == "cuda":  # Ray shows the task only the GPUs it was given, numbered from 0
        device = torch.device("cuda")
    net = net.to(device).eval()
    explainer = get_method(job["method"])(net, **job["params"])
    parts = []
    batch_size = job["batch_size"]
    explain = lambda good, first: _explain_batch(  # noqa: E731
        explainer, good, first, job["target"], job["relevance"], job["pool"], device, job["fields"])
    for begin in range(start, stop, batch_size):
        items = [dataset[i] for i in range(begin, min(begin + batch_size, stop))]
        # as the local engine: samples that failed to load (skip_bad) get placeholder rows, non-finite ones a flag
        parts.append(explain_tolerant(explain, items, begin, tuple(job["rel_shape"]), job["fields"]))
    return {"parts": parts, "device": str(device), "pid": os.getpid()}


def _write_shard(shards: Path, start: int, stop: int, result: dict[str, Any], rel_shape: tuple[int, ...], fields: dict[str, Any], save_logits: bool) -> None:
    """Write one shard's rows to a temporary file and move it into place (complete or absent)."""
    from ._skip import record_skipped
    from ._write import _create_datasets, _write_rows, shard_file

    parts = result["parts"]
    if not np.array_equal(np.concatenate([rows["index"] for rows in parts]), np.arange(start, stop)):
        raise StoreError(f"the Ray task for samples [{start}, {stop}) returned rows for other samples; the shard was not written")
    with shard_file(shards, start, stop) as handle:
        data = _create_datasets(handle, stop - start, rel_shape, fields, save_logits, classes=None)
        at, skipped, non_finite = 0, [], []
        for rows in parts:
            _write_rows(handle, data, at, rows, save_logits)
            at += len(rows["index"])
            skipped.extend(rows.get("skipped", []))
            non_finite.extend(rows.get("non_finite", []))
        handle.attrs["device"] = result["device"]
        record_skipped(handle, skipped, non_finite)


def _window(ray: Any, options: dict[str, Any]) -> int:
    """Tasks kept in flight: twice what the cluster can run at once, so memory holds a bounded number of results."""
    resources = ray.cluster_resources()
    gpus, cpus = float(options.get("num_gpus") or 0), float(options.get("num_cpus") or 0)
    if gpus > 0:
        slots = resources.get("GPU", 0) / gpus
    elif cpus > 0:
        slots = resources.get("CPU", 1) / cpus
    else:
        slots = resources.get("CPU", 1)
    return max(2, 2 * int(slots))


def explain_on_ray(
    net: Any,
    dataset: Any,
    pending: Sequence[tuple[int, int]],
    *,
    shards: Path,
    job: dict[str, Any],
    rel_shape: tuple[int, ...],
    fields: dict[str, Any],
    save_logits: bool,
    ray_address: str | None,
    ray_options: dict[str, Any] | None,
    bar: Any,
    on_shard: Callable[[int, int], None] | None,
) -> None:
    """Explain the ``pending`` shards ``(start, stop)`` as Ray tasks and write each one into ``shards``.

    Uses the Ray cluster this process is connected to, else connects to ``ray_address`` (``"auto"``,
    ``"ray://host:10001"``, ...), else starts a local one (and shuts it down afterwards).
    """
    ray = _ray()
    started_here = False
    if not ray.is_initialized():
        try:
            if ray_address:
                ray.init(address=ray_address)
            else:  # a local cluster for this call only: no dashboard, the workers' output stays in Ray's logs
                ray.init(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            where = f"the Ray cluster at {ray_address}" if ray_address else "a local Ray cluster"
            raise StoreError(f"cannot connect to {where}: {' '.join(str(error).split())}") from None
        started_here = True
    running: dict[Any, tuple[int, int]] = {}
    try:
        cuda = str(job["device"]).startswith("cuda")
        options = {"num_cpus": 1, "num_gpus": 1 if cuda else 0, "max_retries": 3, **(ray_options or {})}
        task = ray.remote(explain_shard).options(**options)
        try:
            net_ref, data_ref = ray.put(net), ray.put(dataset)
        except Exception as error:  # noqa: BLE001 - pickling errors come in many types
            raise StoreError(
                f"the model or the data set cannot be sent to Ray workers ({type(error).__name__}: {' '.join(str(error).split())}); "
                "define them in an importable module (not in __main__ or a lambda)"
            ) from None
        window = _window(ray, options)
        queue = list(pending)
        lost: list[tuple[tuple[int, int], str]] = []
        while queue or running:
            while queue and len(running) < window:
                start, stop = queue.pop(0)
                running[task.remote(net_ref, data_ref, start, stop, job)] = (start, stop)
            ready, _ = ray.wait(list(running), num_returns=1)
            start, stop = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:  # the explanation itself failed: as the local engine, stop
                cause = getattr(error, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            except ray.exceptions.RayError as error:  # the worker or its node died after all retries
                lost.append(((start, stop), f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"))
                continue
            _write_shard(shards, start, stop, result, rel_shape, fields, save_logits)
            bar.update(stop - start)
            if on_shard is not None:
                on_shard(start, stop)
        if lost:
            spans = ", ".join(f"[{a}, {b})" for (a, b), _ in lost)
            raise StoreError(
                f"{len(lost)} shard(s) were lost on the Ray cluster ({spans}; first: {lost[0][1]}); every other shard is "
                "in the store: run the same call again to compute only the missing ones"
            )
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
