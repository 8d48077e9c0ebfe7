"""The two passes of a dissection over a concept data set: per-unit thresholds (quantiles), then
intersections and unions of thresholded activation maps with label maps (the tally), for any number
of layers and bases at once."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..._utils.progress import Progress, progress_bar
from ...data.concepts import ConceptBatch, ConceptDataset, collate_concepts, load_concepts
from ...models import Capture, eval_mode, on_device, pixel_model, resolve_layer
from .perturbations import Perturbation
from .quantiles import streaming_quantile
from .results import DissectionResult, UnitRecord

__all__ = ["random_rotation"]

DEFAULT_QUANTILE = 0.005
DEFAULT_IOU_THRESHOLD = 0.04


@dataclass
class _View:
    """One basis of one layer to dissect: the units themselves, or a rotation ``basis @ a``."""

    layer: str
    rotation_seed: int | None = None
    name: str = "units"
    basis: torch.Tensor | None = None
    quantile: Any = None
    thresholds: torch.Tensor | None = None
    top_scores: torch.Tensor | None = None
    top_index: torch.Tensor | None = None
    top_maps: torch.Tensor | None = None
    inter: torch.Tensor | None = None
    unit_area: torch.Tensor | None = None

    def project(self, acts: torch.Tensor) -> torch.Tensor:
        if self.basis is None:
            return acts
        return torch.einsum("vu,buhw->bvhw", self.basis, acts)


def random_rotation(units: int, generator: torch.Generator) -> torch.Tensor:
    """A random orthogonal ``(units, units)`` matrix, uniform (Haar) over the orthogonal group."""
    gaussian = torch.randn(units, units, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return (q * torch.sign(torch.diagonal(r))[None, :]).float()


def _check_options(quantile: float, iou_threshold: float, batch_size: int, top_images: int) -> None:
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}; 0.005 is the paper's top 0.5%")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if int(top_images) < 0:
        raise ValueError(f"top_images must be >= 0, got {top_images}")


def _run(
    model: Any,
    views: list[_View],
    concepts: Any,
    *,
    quantile: float,
    iou_threshold: float,
    batch_size: int,
    device: str | torch.device | None,
    progress: Progress,
    top_images: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    image_size: Any,
    perturbation: Perturbation | None,
    limit: int | None,
    num_workers: int,
    quantile_method: str,
    cache_bytes: int,
    exact_limit: int,
) -> list[DissectionResult]:
    started = time.perf_counter()
    _check_options(quantile, iou_threshold, batch_size, top_images)
    resolved = pixel_model(model, mean, std, image_size)
    if isinstance(concepts, str) and concepts.startswith("generated") and "size=" not in concepts and resolved.size:
        dataset = load_concepts(concepts, size=resolved.size[0])  # drawn at the model's input size
    else:
        dataset = load_concepts(concepts)
    layers = list(dict.fromkeys(v.layer for v in views))
    for name in layers:
        resolve_layer(resolved.module, name)
    n_images = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n_images < 1:
        raise ValueError("the concept data set is empty")
    scored = dataset.scored_labels()
    if not scored:
        raise ValueError(f"{dataset!r} has no labels with a category to score")
    n_labels = len(dataset.labels)
    categories = list(dataset.categories)
    label_cat = torch.full((n_labels,), -1, dtype=torch.int64)
    for i in scored:
        label_cat[i] = categories.index(dataset.label_category[i])

    module, dev = on_device(resolved.module, device)
    resolved = dataclasses.replace(resolved, module=module)
    acc_dtype = torch.float64 if dev.type in ("cpu", "cuda") else torch.float32
    label_cat = label_cat.to(dev)

    subset = torch.utils.data.Subset(dataset, range(n_images))
    loader_options = dict(batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers), collate_fn=collate_concepts)

    def batches() -> Iterable[ConceptBatch]:
        return torch.utils.data.DataLoader(subset, **loader_options)

    def prepared(batch: ConceptBatch) -> tuple[torch.Tensor, ConceptBatch]:
        batch = batch.to(dev)
        images, planes = batch.images, batch.planes
        if perturbation is not None:
            images, planes = perturbation.apply(images, planes, batch.indices)
            batch = ConceptBatch(images, planes, batch.image_labels, batch.present, batch.indices, batch.targets, batch.names)
        return resolved.inputs(images), batch

    capture = Capture(module, layers)
    cache: dict[str, list[torch.Tensor]] = {}
    data_cache: list[ConceptBatch] | None = None
    shapes: dict[str, tuple[int, int, int]] = {}
    mask_size: tuple[int, int] = tuple(dataset.mask_size)  # type: ignore[assignment]
    try:
        with eval_mode(module), torch.no_grad():
            # pass 1: thresholds and top images ------------------------------------------------------
            bar = progress_bar(progress, n_images, f"dissect {', '.join(layers)}: quantiles", "img")
            first = True
            cached_layers: set[str] = set()
            for batch in batches():
                inputs, batch = prepared(batch)
                capture.stop_early = not first
                outputs = capture.run(module, inputs)
                if first:
                    for name in layers:
                        _check_output(name, outputs[name], capture.calls[name], type(resolve_layer(module, name)).__name__)
                        shapes[name] = tuple(outputs[name].shape[1:])  # type: ignore[assignment]
                    cached_layers, spare = _plan_cache(shapes, n_images, cache_bytes)
                    data_bytes = _data_bytes(batch) * n_images / max(len(batch), 1)
                    data_cache = [] if len(cached_layers) == len(layers) and data_bytes <= spare else None
                    for view in views:
                        units, h, w = shapes[view.layer]
                        if view.rotation_seed is not None:
                            generator = torch.Generator().manual_seed(view.rotation_seed)
                            view.basis = random_rotation(units, generator).to(dev)
                        view.quantile = streaming_quantile(units, n_images * h * w, quantile, dev, quantile_method, exact_limit)
                        view.top_scores = torch.full((units, 0), -math.inf, device=dev)
                        view.top_index = torch.zeros((units, 0), dtype=torch.int64, device=dev)
                        view.top_maps = torch.zeros((units, 0, h, w), device=dev)
                    first = False
                for name in cached_layers:
                    cache.setdefault(name, []).append(outputs[name].float())
                if data_cache is not None:
                    data_cache.append(_compact(batch))
                    spare -= _data_bytes(data_cache[-1])
                    if spare < 0:  # label maps bigger than the first batch promised: read them again instead
                        data_cache = None
                for view in views:
                    acts = view.project(outputs[view.layer].float())
                    view.quantile.update(acts.transpose(0, 1).reshape(acts.shape[1], -1))
                    if top_images:
                        _update_top(view, acts, batch.indices.to(dev), top_images)
                bar.update(len(batch))
            bar.close()
            for view in views:
                view.thresholds = view.quantile.threshold().to(dev)
                units = view.thresholds.shape[0]
                view.inter = torch.zeros(units, n_labels, dtype=acc_dtype, device=dev)
                view.unit_area = torch.zeros(units, len(categories), dtype=acc_dtype, device=dev)
            label_area = torch.zeros(n_labels, dtype=acc_dtype, device=dev)

            # pass 2: IoU ----------------------------------------------------------------------------
            bar = progress_bar(progress, n_images, f"dissect {', '.join(layers)}: IoU", "img")
            capture.stop_early = True
            source: Iterable[Any] = data_cache if data_cache is not None else batches()
            for position, batch in enumerate(source):
                if data_cache is None:
                    inputs, batch = prepared(batch)
                    needed = [n for n in layers if n not in cached_layers]
                    outputs = capture.run(module, inputs, wanted=needed) if needed else {}
                else:
                    batch = _expand(batch, dev)
                    outputs = {}
                for name in cached_layers:
                    outputs[name] = cache[name][position]
                onehot = _onehot(batch, n_labels) if n_labels <= _ONEHOT_LABELS else None
                label_area += _label_area(batch, n_labels, mask_size, onehot).to(acc_dtype)
                for view in views:
                    _tally(view, view.project(outputs[view.layer].float()), batch, mask_size, n_labels, onehot)
                bar.update(len(batch))
            bar.close()
    finally:
        capture.close()

    seconds = time.perf_counter() - started
    results = []
    scored_index = torch.tensor(scored, dtype=torch.int64, device=dev)
    for view in views:
        cat_of_label = label_cat[scored_index]
        inter = view.inter[:, scored_index]
        union = view.unit_area[:, cat_of_label] + label_area[scored_index][None, :] - inter
        iou = torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter)).float().cpu().numpy()
        results.append(
            _result(view, iou, scored, dataset, categories, quantile, iou_threshold, n_images, shapes[view.layer], mask_size, resolved.name, perturbation, seconds)
        )
    return results


def _check_output(name: str, output: torch.Tensor, calls: int, kind: str) -> None:
    if calls > 1:
        raise ValueError(
            f"layer {name!r} ({kind}) runs {calls} times in one forward pass (a shared module, such as one "
            "activation object used after several convolutions); dissect a module that runs once, e.g. the "
            "convolution or normalisation before it, or the block that contains it"
        )
    if output.ndim != 4:
        raise ValueError(
            f"layer {name!r} ({kind}) gives a tensor of shape {tuple(output.shape)}; dissection needs convolutional "
            "feature maps (batch, units, height, width): pick a convolutional layer or block"
        )
    if not output.dtype.is_floating_point:
        raise ValueError(f"layer {name!r} ({kind}) gives {output.dtype} values; dissection needs real-valued activations")


def _plan_cache(shapes: dict[str, tuple[int, int, int]], n_images: int, cache_bytes: int) -> tuple[set[str], int]:
    """Layers whose activations over the data set fit in ``cache_bytes`` together (smallest first), and
    the bytes left over."""
    chosen, used = set(), 0
    for name, (units, h, w) in sorted(shapes.items(), key=lambda kv: math.prod(kv[1])):
        size = n_images * units * h * w * 4
        if used + size <= cache_bytes:
            chosen.add(name)
            used += size
    return chosen, cache_bytes - used


def _data_bytes(batch: ConceptBatch) -> int:
    """Bytes a batch's labels take when kept between the passes (label maps as 16-bit integers)."""
    return batch.planes.numel() * 2 + batch.image_labels.numel() * 8 + batch.present.numel()


def _compact(batch: ConceptBatch) -> ConceptBatch:
    """A batch without its images and with small integer label maps, to keep between the passes."""
    top = int(batch.planes.max()) if batch.planes.numel() else 0
    dtype = torch.int16 if top < 2**15 else torch.int32
    return ConceptBatch(
        torch.empty(0), batch.planes.to(dtype), batch.image_labels, batch.present, batch.indices, batch.targets, batch.names
    )


def _expand(batch: ConceptBatch, device: torch.device) -> ConceptBatch:
    return ConceptBatch(
        batch.images, batch.planes.long().to(device), batch.image_labels.to(device), batch.present.to(device),
        batch.indices, batch.targets, batch.names,
    )


def _update_top(view: _View, acts: torch.Tensor, indices: torch.Tensor, k: int) -> None:
    """Keep, per unit, the ``k`` images with the largest maximum activation and their activation maps."""
    scores = acts.amax(dim=(2, 3)).transpose(0, 1)  # (U, B)
    index = indices[None, :].expand_as(scores)
    all_scores = torch.cat([view.top_scores, scores], dim=1)
    all_index = torch.cat([view.top_index, index], dim=1)
    all_maps = torch.cat([view.top_maps, acts.transpose(0, 1)], dim=1)  # (U, k + B, h, w)
    best = all_scores.topk(min(k, all_scores.shape[1]), dim=1)
    view.top_scores = best.values
    view.top_index = all_index.gather(1, best.indices)
    units = torch.arange(all_maps.shape[0], device=all_maps.device)[:, None]
    view.top_maps = all_maps[units, best.indices]


def _onehot(batch: ConceptBatch, n_labels: int) -> torch.Tensor:
    """``(B, S, C)`` counts of each label at each mask pixel (over all planes)."""
    b, p, h, w = batch.planes.shape
    onehot = torch.zeros(b, h * w, n_labels, device=batch.planes.device)
    labels = batch.planes.reshape(b, p, h * w).transpose(1, 2)  # (B, S, P)
    onehot.scatter_add_(2, labels, torch.ones_like(labels, dtype=onehot.dtype))
    return onehot


def _label_area(batch: ConceptBatch, n_labels: int, mask_size: tuple[int, int], onehot: torch.Tensor | None) -> torch.Tensor:
    pixels = mask_size[0] * mask_size[1]
    if onehot is not None:
        area = onehot.sum(dim=(0, 1)).double() if onehot.device.type != "mps" else onehot.sum(dim=(0, 1))
    else:
        area = torch.bincount(batch.planes.reshape(-1), minlength=n_labels).to(torch.float64)
    if batch.image_labels.numel():
        area = area + torch.bincount(batch.image_labels.reshape(-1), minlength=n_labels).to(area.dtype) * pixels
    area[0] = 0
    return area


#: Upsampled maps per chunk in the tally (elements), to bound memory.
_CHUNK = 1 << 23
#: Up to this many labels, intersections are matrix products with one-hot label maps; beyond, scatter-adds.
_ONEHOT_LABELS = 256


def _tally(view: _View, acts: torch.Tensor, batch: ConceptBatch, mask_size: tuple[int, int], n_labels: int, onehot: torch.Tensor | None) -> None:
    """Add one batch's intersections and unit areas. Only (image, unit) pairs whose raw maximum exceeds
    the threshold can fire after bilinear upsampling (a convex combination), so only those are upsampled."""
    b, units, _, _ = acts.shape
    thresholds = view.thresholds
    fires = acts.amax(dim=(2, 3)) > thresholds[None, :]  # (B, U)
    pairs = fires.nonzero()  # (N, 2) rows sorted by image
    if pairs.numel() == 0:
        return
    pixels = mask_size[0] * mask_size[1]
    present = batch.present.to(view.unit_area.dtype)
    chunk = max(1, _CHUNK // pixels)
    for start in range(0, pairs.shape[0], chunk):
        part = pairs[start : start + chunk]
        images, unit_ids = part[:, 0], part[:, 1]
        maps = acts[images, unit_ids][:, None]  # (n, 1, h, w)
        up = F.interpolate(maps, size=mask_size, mode="bilinear", align_corners=False)[:, 0]
        mask = (up > thresholds[unit_ids][:, None, None]).reshape(-1, pixels).to(torch.float32)
        area = mask.sum(1)
        view.unit_area.index_add_(0, unit_ids, (area[:, None] * present[images]).to(view.unit_area.dtype))
        if onehot is not None:
            # per image: (units firing in it) x (pixels) @ (pixels) x (labels), exact in float32 (< 2^24)
            bounds = torch.searchsorted(images, torch.arange(b + 1, device=images.device)).tolist()
            for i in range(b):
                lo, hi = bounds[i], bounds[i + 1]
                if hi > lo:
                    view.inter.index_add_(0, unit_ids[lo:hi], (mask[lo:hi] @ onehot[i]).to(view.inter.dtype))
        else:
            flat = view.inter.view(-1)
            planes = batch.planes.reshape(b, -1, pixels)
            for p in range(planes.shape[1]):
                index = unit_ids[:, None] * n_labels + planes[images, p]
                flat.index_add_(0, index.reshape(-1), mask.reshape(-1).to(flat.dtype))
        if batch.image_labels.numel():
            for j in range(batch.image_labels.shape[1]):
                labels = batch.image_labels[images, j]
                view.inter.index_put_((unit_ids, labels), area.to(view.inter.dtype), accumulate=True)


def _result(
    view: _View,
    iou: np.ndarray,
    scored: list[int],
    dataset: ConceptDataset,
    categories: list[str],
    quantile: float,
    iou_threshold: float,
    n_images: int,
    shape: tuple[int, int, int],
    mask_size: tuple[int, int],
    model_name: str,
    perturbation: Perturbation | None,
    seconds: float,
) -> DissectionResult:
    names = [dataset.labels[i] for i in scored]
    cats = [str(dataset.label_category[i]) for i in scored]
    thresholds = view.thresholds.float().cpu().numpy()
    top_index = view.top_index.cpu().numpy() if view.top_index is not None else np.zeros((len(thresholds), 0), int)
    top_scores = view.top_scores.float().cpu().numpy() if view.top_scores is not None else np.zeros_like(top_index, float)
    records = []
    for u in range(iou.shape[0]):
        order = np.argsort(-iou[u], kind="stable")
        best = int(order[0])
        records.append(
            UnitRecord(
                unit=u,
                label=names[best],
                category=cats[best],
                iou=float(iou[u, best]),
                is_detector=bool(iou[u, best] > iou_threshold),
                threshold=float(thresholds[u]),
                top_images=[int(i) for i in top_index[u]],
                top_activations=[float(s) for s in top_scores[u]],
                candidates=[(names[int(j)], cats[int(j)], float(iou[u, int(j)])) for j in order[:3]],
            )
        )
    return DissectionResult(
        layer=view.layer,
        units=records,
        labels=names,
        label_categories=cats,
        categories=categories,
        iou=iou,
        thresholds=thresholds,
        quantile=quantile,
        iou_threshold=iou_threshold,
        n_images=n_images,
        activation_size=(shape[1], shape[2]),
        mask_size=mask_size,
        quantile_method=view.quantile.method,
        concepts=getattr(dataset, "description", "") or repr(dataset),
        top_maps=None if view.top_maps is None else view.top_maps.float().cpu().numpy(),
        model=model_name,
        perturbation=None if perturbation is None else str(perturbation),
        basis=view.name,
        seconds=seconds,
    )
