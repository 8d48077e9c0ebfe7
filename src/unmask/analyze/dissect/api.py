"""The entry points: :func:`dissect`, :func:`axis_alignment`, :func:`robustness`."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..._utils.progress import Progress
from .perturbations import Perturbation, parse_perturbation
from .quantiles import EXACT_LIMIT
from .results import AxisAlignmentResult, DissectionResult, RobustnessResult
from .tally import DEFAULT_IOU_THRESHOLD, DEFAULT_QUANTILE, _run, _View

__all__ = ["axis_alignment", "dissect", "robustness"]


def dissect(
    model: Any,
    layer: str | Sequence[str],
    concepts: Any = "generated",
    quantile: float = DEFAULT_QUANTILE,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: Progress = True,
    *,
    top_images: int = 8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | tuple[int, int] | None = None,
    perturbation: str | Perturbation | None = None,
    limit: int | None = None,
    num_workers: int = 0,
    quantile_method: str = "auto",
    cache_bytes: int = 1 << 30,
    exact_limit: int = EXACT_LIMIT,
) -> DissectionResult | list[DissectionResult]:
    """Dissect ``layer`` of ``model`` with ``concepts``: which units detect which concepts.

    ``model``: an ``nn.Module`` or a zoo model (then its preprocessing gives ``mean``, ``std`` and
    ``image_size``; for a bare module they default to the ImageNet mean/std and the data set's image
    size; images of another size are resized bilinearly, label maps keep their resolution). ``layer``:
    a module name from ``model.named_modules()`` whose output is ``(B, U, H, W)``, or a list of names
    (one forward pass serves them all; a list of results comes back). ``concepts``: a
    :class:`~unmask.data.concepts.ConceptDataset`, a Broden-format folder, or ``"generated"`` /
    ``"generated:n=500,size=224,seed=0"`` (drawn at the model's input size unless ``size`` is given).

    ``quantile``: the top fraction of each unit's activations that counts as "on" (0.005);
    ``iou_threshold``: the IoU above which a unit is a detector of its best label (0.04).
    ``batch_size`` images go through the model at once on ``device`` (default: where the model is; a
    model elsewhere is copied there, never moved). ``perturbation``: ``"noise:10"``, ``"rotate:45"`` or
    ``"shuffle:4"`` (see :class:`Perturbation`). ``limit``: only the first ``limit`` images.
    ``quantile_method``: ``"auto"`` (exact while the tail fits ``exact_limit`` values), ``"exact"``,
    ``"histogram"``. Activations are kept between the two passes when they fit ``cache_bytes``.

    The model is run in eval mode under ``torch.no_grad()``; its training flags are restored and its
    hooks removed afterwards.
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    if not names:
        raise ValueError("give at least one layer name")
    results = _run(
        model,
        [_View(name) for name in names],
        concepts,
        quantile=quantile,
        iou_threshold=iou_threshold,
        batch_size=batch_size,
        device=device,
        progress=progress,
        top_images=top_images,
        mean=mean,
        std=std,
        image_size=image_size,
        perturbation=parse_perturbation(perturbation),
        limit=limit,
        num_workers=num_workers,
        quantile_method=quantile_method,
        cache_bytes=cache_bytes,
        exact_limit=exact_limit,
    )
    return results[0] if isinstance(layer, str) else results


def axis_alignment(
    model: Any,
    layer: str | Sequence[str],
    concepts: Any = "generated",
    repeats: int = 5,
    seed: int = 0,
    **options: Any,
) -> AxisAlignmentResult | list[AxisAlignmentResult]:
    """The axis-alignment test of Bau et al.: is interpretability a property of the units themselves?

    The layer's activations ``a`` (one vector per position) are dissected in the unit basis and in
    ``repeats`` random orthogonal bases ``Q a`` (``Q`` uniform over rotations, drawn from ``seed``); a
    rotation keeps all information but mixes units. Fewer unique detectors in rotated bases mean the
    units are aligned with concepts. Returns the counts of the unit basis and their mean and std over
    the rotations (repeats with mean and std rather than one rotation). All bases (and
    all layers, for a list of names) share the same two passes over the data. ``options`` are those of
    :func:`dissect`.
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    if int(repeats) < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    views = []
    for name in names:
        views.append(_View(name))
        views += [_View(name, rotation_seed=int(seed) * 1000 + r, name=f"rotation {r + 1}") for r in range(int(repeats))]
    results = _run(model, views, concepts, **_settings(options))
    out = []
    for i, name in enumerate(names):
        group = results[i * (int(repeats) + 1) : (i + 1) * (int(repeats) + 1)]
        out.append(AxisAlignmentResult(layer=name, identity=group[0], rotated=group[1:], seed=int(seed)))
    return out[0] if isinstance(layer, str) else out


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    defaults = dict(
        quantile=DEFAULT_QUANTILE,
        iou_threshold=DEFAULT_IOU_THRESHOLD,
        batch_size=16,
        device=None,
        progress=True,
        top_images=8,
        mean=None,
        std=None,
        image_size=None,
        perturbation=None,
        limit=None,
        num_workers=0,
        quantile_method="auto",
        cache_bytes=1 << 30,
        exact_limit=EXACT_LIMIT,
    )
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; dissect takes {', '.join(defaults)}")
    defaults.update(options)
    defaults["perturbation"] = parse_perturbation(defaults["perturbation"])
    return defaults


def robustness(
    model: Any,
    layer: str,
    concepts: Any = "generated",
    perturbations: Sequence[str | Perturbation] = ("noise:10", "rotate:45", "shuffle:4"),
    **options: Any,
) -> RobustnessResult:
    """The robustness experiments of Bau et al. (2017): dissect ``layer`` on the original images and again under each
    perturbation (added uniform noise, rotation, patch rearrangement; see :class:`Perturbation`), with
    thresholds recomputed on the perturbed data. ``options`` are those of :func:`dissect`."""
    if not isinstance(layer, str):
        raise TypeError("robustness takes one layer name")
    if "perturbation" in options:
        raise TypeError("robustness takes perturbations=[...], not perturbation=")
    parsed = [parse_perturbation(p) for p in perturbations]
    baseline = dissect(model, layer, concepts, **options)
    perturbed = {str(p): dissect(model, layer, concepts, perturbation=p, **options) for p in parsed}
    return RobustnessResult(layer=layer, baseline=baseline, perturbed=perturbed)  # type: ignore[arg-type]
