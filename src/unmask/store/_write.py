"""Writing a store: explanations for a whole data set, shard by shard, resumable; and merging shards."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .._io import json_safe
from .._utils.progress import Progress, progress_bar
from ..models import as_module, model_device, on_device
from ._ray import ENGINES
from ._guard import acquire_writer_lock, check_merge_target, release
from ._skip import Skipped, Tolerant, explain_tolerant, first_loadable, record_skipped
from ._format import (
    FORMAT,
    MANIFEST,
    SHARDS,
    VERSION,
    Store,
    StoreError,
    _h5py,
    parse_shard_name,
    read_manifest,
    shard_name,
    shard_ranges,
)

#: Settings that change the numbers in a store: a resumed run must use the same ones.
NUMBER_SETTINGS = (
    "method", "params", "model", "model_hash", "target", "relevance", "pool", "batch_size",
    "shard_size", "dtype",
)
RELEVANCE_MODES = ("full", "sum", "pooled")


# ---------------------------------------------------------------------------------------------- items


def _scalar(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def normalize_item(item: Any, index: int) -> dict[str, Any]:
    """A data set item as ``{"input", "label", "path", "box", "mask", "extra"}``.

    Accepted items: a tensor; ``(input,)``, ``(input, label)``, ``(input, label, path)``; or a dict with
    ``input`` (or ``image``) and optional ``label``, ``path``, ``box`` (x0, y0, x1, y1), ``mask`` (H, W)
    and any other numeric values (kept as extra fields, e.g. ground truth).
    """
    import torch

    extra: dict[str, float] = {}
    box = mask = None
    label: Any = None
    path: Any = None
    if isinstance(item, torch.Tensor):
        x = item
    elif isinstance(item, dict):
        x = item.get("input", item.get("image"))
        label, path, box, mask = item.get("label"), item.get("path"), item.get("box"), item.get("mask")
        for key, value in item.items():
            if key in ("input", "image", "label", "path", "box", "mask"):
                continue
            number = _scalar(value)
            if number is not None:
                extra[str(key)] = number
    elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 3:
        x = item[0]
        label = item[1] if len(item) > 1 else None
        path = item[2] if len(item) > 2 else None
    else:
        raise StoreError(
            f"data set item {index} is a {type(item).__name__}; expected a tensor, (input, label[, path]) or a dict with 'input'"
        )
    if not isinstance(x, torch.Tensor):
        raise StoreError(f"data set item {index}: the input is a {type(x).__name__}, not a tensor (give the data set a transform)")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3:
        raise StoreError(f"data set item {index}: input shaped {tuple(x.shape)}; expected (C, H, W)")
    if label is None:
        label_value = -1
    else:
        number = _scalar(label)
        if number is None or number != int(number):
            raise StoreError(f"data set item {index}: label {label!r} is not an integer class index")
        label_value = int(number)
    if box is not None:
        box = np.asarray(box.tolist() if hasattr(box, "tolist") else box, dtype=np.float32).reshape(-1)
        if box.shape != (4,):
            raise StoreError(f"data set item {index}: box must be (x0, y0, x1, y1), got {box.tolist()}")
    if mask is not None:
        mask = np.asarray(mask.cpu().numpy() if hasattr(mask, "cpu") else mask).astype(bool)
        if mask.shape != tuple(x.shape[-2:]):
            raise StoreError(f"data set item {index}: mask shaped {mask.shape} for an input of {tuple(x.shape[-2:])}")
    return {
        "input": x,
        "label": label_value,
        "path": "" if path is None else str(path),
        "box": box,
        "mask": mask,
        "extra": extra,
    }


# ---------------------------------------------------------------------------------------------- helpers


def _describe(value: Any) -> Any:
    """How the manifest records a setting JSON has no type for (the ``default`` of :func:`json_safe`): a small
    tensor or array as its values, a large one by shape and hash, anything else by its ``repr``."""
    import torch

    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist() if value.numel() <= 64 else f"tensor{tuple(value.shape)} sha1:{_tensor_hash([value])}"
    return repr(value)


def _tensor_hash(tensors: Iterable[Any]) -> str:
    digest = hashlib.sha1()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def model_hash(model: Any) -> str:
    """A short hash of a model's parameters and buffers (a resumed run must use the same weights)."""
    state = model.state_dict()
    return _tensor_hash(state[key] for key in sorted(state))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def shard_file(shards: Path, start: int, stop: int) -> Iterator[Any]:
    """An open HDF5 file for the shard of samples ``[start, stop)``: written under a temporary name, fsynced
    and moved into place with one ``os.replace`` when the block ends, removed if it fails, so a shard on
    disk is complete or absent."""
    final = shards / shard_name(start, stop)
    tmp = shards / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with _h5py().File(tmp, "w") as handle:
            yield handle
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(shards)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_manifest_once(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create ``store.json`` if absent (atomically, even with several workers); return the one on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARDS).mkdir(exist_ok=True)
    target = folder / MANIFEST
    if target.exists():
        return read_manifest(folder)
    tmp = folder / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    try:
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.link(tmp, target)  # fails if another worker made it first
        _fsync_dir(folder)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return read_manifest(folder)


def _check_compatible(existing: dict[str, Any], wanted: dict[str, Any], where: Any) -> None:
    problems = []
    for key in ("size",):
        if existing.get(key) != wanted.get(key):
            problems.append(f"{key}: store has {existing.get(key)!r}, this run {wanted.get(key)!r}")
    old, new = existing.get("settings", {}), wanted.get("settings", {})
    for key in NUMBER_SETTINGS + ("dataset",):
        if old.get(key) != new.get(key):
            problems.append(f"{key}: store has {old.get(key)!r}, this run {new.get(key)!r}")
    if existing.get("fields") != wanted.get("fields"):
        problems.append(f"fields: store has {existing.get('fields')}, this run {wanted.get('fields')}")
    if problems:
        raise StoreError(
            f"{where} was made with other settings, so resuming would mix numbers: "
            + "; ".join(problems)
            + ". Resume with the same settings or write to a new store."
        )


# ---------------------------------------------------------------------------------------------- attribute


def attribute(
    model: Any,
    dataset: Any,
    store: str | os.PathLike[str],
    method: str = "lrp.epsilon_plus_flat",
    *,
    params: dict[str, Any] | None = None,
    target: str | int = "predicted",
    relevance: str = "sum",
    pool: int = 20,
    batch_size: int = 32,
    shard_size: int = 256,
    device: str | None = None,
    worker: int = 0,
    workers: int = 1,
    num_workers: int = 0,
    save_logits: bool = False,
    model_name: str | None = None,
    classes: Sequence[str] | None = None,
    progress: Progress = True,
    on_shard: Callable[[int, int], None] | None = None,
    skip_bad: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    ray_options: dict[str, Any] | None = None,
) -> Store:
    """Explain every sample of ``dataset`` with ``method`` and write the results to the store folder ``store``.

    Per sample the store keeps the relevance (``relevance="full"`` (C, H, W), ``"sum"`` over channels
    (H, W, the default) or ``"pooled"``: summed over channels and average-pooled to ``pool`` x ``pool``),
    the prediction, the explained class and its logit and probability, the label, the source path, and
    boxes, masks and other numeric values when the data set gives them; ``store.json`` keeps the settings.

    Resumable: samples are written in shards of ``shard_size`` (each shard goes to a temporary file that
    is moved into place when complete), so a run killed at any point, even by ``kill -9``, loses at most
    the shard in progress; running the same call again computes only the missing shards. Batches never
    cross a shard boundary, so a resumed store holds exactly the numbers an uninterrupted run writes.
    Memory is bounded by one batch. ``worker``/``workers`` split the shards between processes (worker
    ``i`` of ``n`` does shards ``i, i + n, ...``); they can share one folder or write separate folders
    that :func:`merge` combines. ``skip_bad``: a sample that fails to load (a damaged image) is skipped
    instead of stopping the run; its row has prediction -1 and NaN relevance, and :attr:`Store.skipped`
    lists it with the reason.

    ``model`` is an ``nn.Module`` or a :class:`unmask.zoo.ZooModel`; ``dataset`` anything with ``len``
    and ``[i]`` returning a tensor, ``(input, label[, path])`` or a dict (see :func:`normalize_item`);
    ``target`` is ``"predicted"``, ``"label"`` or a class index. Returns the store opened for reading.

    ``engine="ray"`` explains the shards as Ray tasks on the cluster this process is connected to, the
    one at ``ray_address``, or a local one it starts (one CPU per task; one GPU per task when ``device``
    is CUDA; ``ray_options`` go to the tasks' ``.options()``). This process writes every finished shard
    as above, so the store is the same as the local engine's; a killed worker's shard is computed again
    (see :mod:`unmask.store._ray`).

    >>> store = unmask.store.attribute(net, unmask.data.ImageFolder("photos", transform=net.preprocessing),
    ...                                "runs/photos", method="lrp.epsilon_plus_flat", batch_size=16)
    """
    import torch

    from .. import __version__, get_method

    if relevance not in RELEVANCE_MODES:
        raise StoreError(f"relevance must be one of {', '.join(RELEVANCE_MODES)}, got {relevance!r}")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size), ("workers", workers), ("pool", pool)):
        if not isinstance(value, int) or value < 1:
            raise StoreError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= worker < workers:
        raise StoreError(f"worker must be in 0 .. {workers - 1}, got {worker}")
    if engine not in ENGINES:
        raise StoreError(f"engine must be 'local' or 'ray', got {engine!r}")
    if isinstance(target, str) and target not in ("predicted", "label"):
        raise StoreError(f"target must be 'predicted', 'label' or a class index, got {target!r}")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise StoreError(f"dataset must support len() and [i] (a torch Dataset), got a {type(dataset).__name__}")
    size = len(dataset)
    if size == 0:
        raise StoreError("the data set is empty")

    try:
        user_net = as_module(model)
    except TypeError as error:
        raise StoreError(str(error)) from None
    name = model_name or getattr(model, "name", None) or type(user_net).__name__
    if classes is None:
        classes = list(getattr(model, "classes", None) or getattr(dataset, "classes", None) or [])
    torch_device = model_device(user_net) if device is None else torch.device(device)
    # the user's model is never moved nor switched to eval mode: a copy where either is needed (on Ray the
    # workers move it to their devices)
    net, _ = on_device(user_net, torch_device if engine == "local" else "cpu")
    if any(m.training for m in net.modules()):
        net = (copy.deepcopy(net) if net is user_net else net).eval()

    if skip_bad:
        dataset = Tolerant(dataset)
    first = normalize_item(*first_loadable(dataset, range(size))) if skip_bad else normalize_item(dataset[0], 0)
    last_item = dataset[size - 1] if size > 1 else None
    last = first if last_item is None or isinstance(last_item, Skipped) else normalize_item(last_item, size - 1)
    input_shape = tuple(first["input"].shape)
    if relevance == "full":
        rel_shape = input_shape
    elif relevance == "sum":
        rel_shape = input_shape[1:]
    else:
        rel_shape = (pool, pool)
    describe = getattr(dataset, "describe", None)
    dataset_info = describe() if callable(describe) else {
        "type": type(dataset).__name__,
        "size": size,
        "first": first["path"],
        "last": last["path"],
    }
    fields: dict[str, Any] = {"relevance": list(rel_shape), "input": list(input_shape), "extra": sorted(first["extra"])}
    if first["box"] is not None:
        fields["box"] = [4]
    if first["mask"] is not None:
        fields["mask"] = list(input_shape[1:])
    method_params = dict(params or {})
    settings = {
        "method": method,
        "params": json_safe(method_params, default=_describe),
        "model": name,
        "model_hash": model_hash(net),
        "target": target,
        "relevance": relevance,
        "pool": pool if relevance == "pooled" else None,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "dtype": "float32",
        "dataset": json_safe(dataset_info, default=_describe),
        "classes": list(classes),
        "unmask_version": __version__,
        "torch_version": torch.__version__,
        "device": str(torch_device),
        "save_logits": bool(save_logits),
    }
    manifest = {"format": FORMAT, "version": VERSION, "size": size, "shard_size": shard_size, "settings": settings, "fields": fields}
    folder = Path(store)
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder} exists and is not a folder; a store is a folder (merged stores are read-only)")
    explainer = get_method(method)(net, **method_params)  # a bad parameter fails before store.json is written
    on_disk = _write_manifest_once(folder, manifest)
    try:
        _check_compatible(on_disk, manifest, folder)
    except StoreError:
        if any((folder / SHARDS).iterdir()):  # finished or running shards depend on these settings
            raise
        (folder / MANIFEST).unlink()  # no sample was written under these settings: the corrected run may start over
        _check_compatible(_write_manifest_once(folder, manifest), manifest, folder)
    lock = acquire_writer_lock(folder, worker, workers)

    shards = folder / SHARDS
    ranges = shard_ranges(size, shard_size)
    mine = [(i, r) for i, r in enumerate(ranges) if i % workers == worker]
    done = {parse_shard_name(p.name) for p in shards.glob("*.h5")}
    pending = [(i, r) for i, r in mine if r not in done]
    for i, (start, stop) in mine:  # temporary files of this worker's shards are left-overs of a killed run
        for stale in shards.glob(f".{shard_name(start, stop)}.*.tmp"):
            stale.unlink(missing_ok=True)
    total = sum(stop - start for _, (start, stop) in mine)
    finished = total - sum(stop - start for _, (start, stop) in pending)
    if not pending:
        release(lock)
        return Store(folder)
    if engine == "ray":
        from ._ray import explain_on_ray

        job = {"method": method, "params": method_params, "target": target, "relevance": relevance, "pool": pool,
               "batch_size": batch_size, "fields": fields, "device": str(torch_device), "rel_shape": list(rel_shape)}
        bar = progress_bar(progress, total, f"attribute {folder.name} (ray)", "sample", initial=finished, leave=True)
        try:
            explain_on_ray(net, dataset, [span for _, span in pending], shards=shards, job=job, rel_shape=rel_shape, fields=fields,
                           save_logits=save_logits, ray_address=ray_address, ray_options=ray_options, bar=bar, on_shard=on_shard)
        finally:
            bar.close()
            release(lock)
        return Store(folder)

    batches: list[list[int]] = []
    for _, (start, stop) in pending:
        batches.extend(list(range(b, min(b + batch_size, stop))) for b in range(start, stop, batch_size))
    loader = _loader(dataset, batches, num_workers)
    bar = progress_bar(progress, total, f"attribute {folder.name}", "sample", initial=finished, leave=True)
    _h5py()  # fails here, before any work, when h5py (the analyze extra) is missing
    try:
        batch_iter = iter(loader)
        for _, (start, stop) in pending:
            with shard_file(shards, start, stop) as handle:
                count = stop - start
                data = _create_datasets(handle, count, rel_shape, fields, save_logits, classes=None)
                at = 0
                skipped: list[dict[str, Any]] = []
                non_finite: list[int] = []
                while at < count:
                    items = next(batch_iter)
                    rows = explain_tolerant(
                        lambda good, first_index: _explain_batch(explainer, good, first_index, target, relevance, pool, torch_device, fields),
                        items, start + at, rel_shape, fields,
                    )
                    skipped.extend(rows.get("skipped", []))
                    non_finite.extend(rows.get("non_finite", []))
                    _write_rows(handle, data, at, rows, save_logits)
                    at += len(items)
                    bar.update(len(items))
                handle.attrs["device"] = str(torch_device)
                record_skipped(handle, skipped, non_finite)
            if on_shard is not None:
                on_shard(start, stop)
    finally:
        bar.close()
        release(lock)
    return Store(folder)


def _loader(dataset: Any, batches: list[list[int]], num_workers: int) -> Iterable[list[Any]]:
    if num_workers <= 0:
        return ([dataset[i] for i in batch] for batch in batches)
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=list)


def _create_datasets(handle: Any, count: int, rel_shape: tuple[int, ...], fields: dict[str, Any], save_logits: bool, classes: Any) -> dict[str, Any]:
    h5py = _h5py()
    out = {
        "index": handle.create_dataset("index", (count,), dtype="int64"),
        "relevance": handle.create_dataset("relevance", (count, *rel_shape), dtype="float32"),
        "prediction": handle.create_dataset("prediction", (count,), dtype="int64"),
        "target": handle.create_dataset("target", (count,), dtype="int64"),
        "target_logit": handle.create_dataset("target_logit", (count,), dtype="float32"),
        "target_probability": handle.create_dataset("target_probability", (count,), dtype="float32"),
        "label": handle.create_dataset("label", (count,), dtype="int64"),
        "path": handle.create_dataset("path", (count,), dtype=h5py.string_dtype("utf-8")),
    }
    if "box" in fields:
        out["box"] = handle.create_dataset("box", (count, 4), dtype="float32")
    if "mask" in fields:
        out["mask"] = handle.create_dataset("mask", (count, *fields["mask"]), dtype="uint8")
    for name in fields.get("extra", []):
        out[f"extra/{name}"] = handle.create_dataset(f"extra/{name}", (count,), dtype="float64")
    return out


def _explain_batch(
    explainer: Any, raw: list[Any], first_index: int, target: Any, relevance: str, pool: int, device: Any, fields: dict[str, Any]
) -> dict[str, Any]:
    import torch

    items = [normalize_item(item, first_index + j) for j, item in enumerate(raw)]
    shapes = {tuple(item["input"].shape) for item in items}
    if len(shapes) > 1 or tuple(fields["input"]) not in shapes:
        raise StoreError(
            f"samples {first_index}..{first_index + len(items) - 1} have input shapes {sorted(shapes)}, but the store "
            f"holds {tuple(fields['input'])}: give the data set a transform that resizes every image to one size"
        )
    inputs = torch.stack([item["input"] for item in items]).to(device)
    labels = torch.tensor([item["label"] for item in items], dtype=torch.long)
    if target == "label":
        if (labels < 0).any():
            bad = first_index + int((labels < 0).nonzero()[0])
            raise StoreError(f"target='label' but sample {bad} has no label")
        explain_target: Any = labels.to(device)
    elif target == "predicted":
        explain_target = None
    else:
        explain_target = int(target)
    explanation = explainer.explain(inputs, target=explain_target)
    rel = explanation.relevance.detach().float()
    if rel.shape != inputs.shape:
        raise StoreError(f"the method returned relevance shaped {tuple(rel.shape)} for inputs {tuple(inputs.shape)}")
    if relevance != "full":
        rel = rel.sum(1)
        if relevance == "pooled":
            rel = torch.nn.functional.adaptive_avg_pool2d(rel.unsqueeze(1), (pool, pool)).squeeze(1)
    output = explanation.output.detach().float()
    if output.dim() != 2:
        raise StoreError(f"the model's output is shaped {tuple(output.shape)}, not (batch, classes)")
    chosen = explanation.target if explanation.target is not None else output.argmax(1)
    chosen = chosen.to(output.device)
    logits = output.gather(1, chosen.view(-1, 1)).squeeze(1)
    probability = output.softmax(1).gather(1, chosen.view(-1, 1)).squeeze(1)
    extras = {name: np.array([item["extra"].get(name, np.nan) for item in items], dtype=np.float64) for name in fields.get("extra", [])}
    rows = {
        "index": np.arange(first_index, first_index + len(items), dtype=np.int64),
        "relevance": rel.cpu().numpy(),
        "prediction": output.argmax(1).cpu().numpy(),
        "target": chosen.cpu().numpy(),
        "target_logit": logits.cpu().numpy(),
        "target_probability": probability.cpu().numpy(),
        "label": labels.numpy(),
        "path": [item["path"] for item in items],
        "logits": output.cpu().numpy(),
        "extra": extras,
    }
    if "box" in fields:
        rows["box"] = np.stack([item["box"] if item["box"] is not None else np.full(4, np.nan, np.float32) for item in items])
    if "mask" in fields:
        shape = tuple(fields["mask"])
        rows["mask"] = np.stack([item["mask"] if item["mask"] is not None else np.zeros(shape, bool) for item in items]).astype(np.uint8)
    return rows


def _write_rows(handle: Any, data: dict[str, Any], at: int, rows: dict[str, Any], save_logits: bool) -> None:
    n = len(rows["index"])
    part = slice(at, at + n)
    for name in ("index", "relevance", "prediction", "target", "target_logit", "target_probability", "label", "box", "mask"):
        if name in data:
            data[name][part] = rows[name]
    data["path"][part] = rows["path"]
    for name, values in rows["extra"].items():
        data[f"extra/{name}"][part] = values
    if save_logits and rows["logits"] is not None:  # None: every sample of the batch was skipped (rows stay NaN)
        if "logits" not in data:
            width = rows["logits"].shape[1]
            data["logits"] = handle.create_dataset("logits", (data["index"].shape[0], width), dtype="float32", fillvalue=np.nan)
        data["logits"][part] = rows["logits"]


# ---------------------------------------------------------------------------------------------- merge


def merge(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    allow_incomplete: bool = False,
    chunk: int = 1024,
) -> Store:
    """Combine the shards of one or more store folders into one HDF5 file ``out`` (written atomically).

    Several workers may each have written a folder (``attribute(..., worker=i, workers=n)``); their
    settings must agree. Every sample must be present exactly once (a shard present in two folders is
    the same computation and is taken once); with ``allow_incomplete`` missing ranges are left out.
    Copies a slice at a time, so memory stays bounded. Returns the merged store opened for reading.
    """
    h5py = _h5py()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    check_merge_target(Path(out), [Path(s) for s in sources])  # before reading the sources: never destroy a file
    stores = [Store(s) for s in sources]
    if not stores:
        raise StoreError("merge needs at least one store")
    base = stores[0].manifest
    for other in stores[1:]:
        _check_compatible(base, other.manifest, other.path)
    parts: dict[tuple[int, int], Any] = {}
    for source in stores:
        for part in source._parts:
            parts.setdefault((part.start, part.stop), part)
    spans = sorted(parts)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        if b0 < a1:
            raise StoreError(f"shards [{a0}, {a1}) and [{b0}, {b1}) overlap: were the stores made with different shard sizes?")
    size = int(base["size"])
    covered = sum(b - a for a, b in spans)
    if covered != size and not allow_incomplete:
        missing = size - covered
        raise StoreError(f"the stores hold {covered} of {size} samples ({missing} missing); finish them first or pass allow_incomplete=True")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    manifest = dict(base)
    manifest["merged_from"] = [str(s.path) for s in stores]
    try:
        with h5py.File(tmp, "w") as dst:
            created: dict[str, Any] = {}
            skipped_here: list[dict[str, Any]] = []
            non_finite_here: list[int] = []
            at = 0
            for span in spans:
                part = parts[span]
                with h5py.File(part.path, "r") as src:
                    skipped_here.extend(json.loads(src.attrs.get("skipped", "[]")))
                    non_finite_here.extend(json.loads(src.attrs.get("non_finite", "[]")))
                    names: list[str] = []
                    src.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
                    for name in names:
                        data = src[name]
                        if name not in created:
                            created[name] = dst.create_dataset(name, (covered, *data.shape[1:]), dtype=data.dtype)
                        for begin in range(0, part.count, chunk):
                            end = min(begin + chunk, part.count)
                            created[name][at + begin : at + end] = data[begin:end]
                at += part.count
            manifest["skipped"], manifest["non_finite"] = skipped_here, non_finite_here
            dst.attrs["unmask_store"] = json.dumps(manifest, sort_keys=True)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Store(out)


def open_store(path: str | os.PathLike[str]) -> Store:
    """Open a store folder (complete or not) or a merged store file for reading."""
    return Store(path)
