"""Region perturbation / pixel flipping and the AOPC (Samek et al. 2017; Bach et al. 2015).

A heatmap orders the regions of an image; destroying them in that order and watching the model's
score tells how faithful the order is. Every perturbation step of every image goes through the model
in batches of ``batch_size`` (on the inputs' device), never one image and one step at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .._utils.progress import progress_bar
from ..targets import Target
from .._utils.validation import check_choice, check_float, check_int
from ._common import (
    SCORES,
    Relevance,
    check_model_inputs,
    explained_target,
    forward_scores,
    heatmap,
    pick,
    resolve,
    result_dict,
    transform_output,
)

ORDERS = ("morf", "lerf")
PERTURBATIONS = ("uniform", "blur", "mean", "constant")
#: A perturbation: a name from :data:`PERTURBATIONS` or a function ``inputs (B, C, H, W) -> replacement
#: values (B, C, H, W)``; a perturbed region takes the replacement's values there.
Perturbation = Union[str, Callable[[torch.Tensor], torch.Tensor]]


def aopc(scores: torch.Tensor) -> float:
    """Area over the MoRF perturbation curve of Samek et al. (2017), eq. (12):

        AOPC = 1 / (L + 1) * < sum_{k=0..L} f(x^0) - f(x^k) >_images

    ``scores`` is ``(B, L + 1)``: ``f(x^k)`` of every image after ``k = 0..L`` perturbation steps (column 0
    is the unperturbed image). A faithful heatmap makes the score fall fast under MoRF: a large AOPC.
    """
    scores = torch.as_tensor(scores).double()
    if scores.dim() != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be shaped (images, steps + 1), got {tuple(scores.shape)}")
    return float((scores[:, :1] - scores).mean(1).mean())


@dataclass
class PerturbationResult:
    """Perturbation curves of a batch of images for one ordering.

    Attributes:
        scores: ``(B, L + 1)`` float64 on the CPU: ``f(x^k)`` for ``k = 0..L``, where ``x^k`` has its first
            ``k`` regions (in ``order``) perturbed and ``f`` is the ``score`` of the target class.
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        score: what ``f`` is: ``"logit"`` (the model's output) or ``"probability"`` (its softmax).
        region: region side in pixels (1: pixel flipping).
        steps: ``L``, the number of perturbation steps.
        perturbation: name of the perturbation (``"uniform"``, ``"blur"``, ``"mean"``, ``"constant"``,
            or the function's name).
        target: the scored class per image, ``(B,)`` (``None`` for a callable target).
        seed: the seed of the uniform noise.
    """

    scores: torch.Tensor
    order: str
    score: str
    region: int
    steps: int
    perturbation: str
    target: torch.Tensor | None = None
    seed: int = 0

    @property
    def curves(self) -> torch.Tensor:
        """``f(x^0) - f(x^k)`` per image, ``(B, L + 1)`` (column 0 is zero)."""
        return self.scores[:, :1] - self.scores

    @property
    def curve(self) -> torch.Tensor:
        """The perturbation curve averaged over images, ``(L + 1,)``: ``< f(x^0) - f(x^k) >``."""
        return self.curves.mean(0)

    @property
    def aopc_per_image(self) -> torch.Tensor:
        """``1 / (L + 1) * sum_k f(x^0) - f(x^k)`` per image, ``(B,)``."""
        return self.curves.mean(1)

    @property
    def aopc(self) -> float:
        """AOPC of Samek et al. (2017): :func:`aopc` of :attr:`scores`."""
        return float(self.aopc_per_image.mean())

    @property
    def value(self) -> float:
        """The headline number: :attr:`aopc`."""
        return self.aopc

    @property
    def higher_is_better(self) -> bool:
        """MoRF: a fast fall (large AOPC) is good; LeRF: a slow fall (small AOPC) is good."""
        return self.order == "morf"

    def to_dict(self) -> dict[str, Any]:
        names = ("order", "score", "region", "steps", "perturbation", "seed", "aopc", "curve", "aopc_per_image", "scores", "target")
        return result_dict(self, "region_perturbation", names)


# --------------------------------------------------------------------------------------------------
# regions and orders


def region_labels(height: int, width: int, region: int, device: torch.device | None = None) -> torch.Tensor:
    """Region index of every pixel, ``(H, W)`` long: a non-overlapping grid of ``region`` x ``region`` squares
    anchored at the top-left corner, numbered row by row; the last row/column of regions is cut short when
    ``region`` does not divide the image size."""
    columns = math.ceil(width / region)
    rows = torch.arange(height, device=device) // region
    cols = torch.arange(width, device=device) // region
    return rows[:, None] * columns + cols[None, :]


def region_scores(pixel_relevance: torch.Tensor, region: int) -> torch.Tensor:
    """Mean relevance of each grid region, ``(B, n_regions)`` float64.

    The mean (not the sum) so that the cut-short regions at the right and bottom edges compete on equal
    terms; for regions of equal size both give the same order. float64 keeps exact ties exact (a uniform
    heatmap gives equal means, also for the cut-short regions).
    """
    batch, height, width = pixel_relevance.shape
    rows, cols = math.ceil(height / region), math.ceil(width / region)
    values = pixel_relevance.to(torch.float64 if pixel_relevance.device.type != "mps" else torch.float32)
    padded = F.pad(values, (0, cols * region - width, 0, rows * region - height))
    sums = padded.view(batch, rows, region, cols, region).sum((2, 4)).reshape(batch, rows * cols)
    counts = F.pad(torch.ones(height, width, dtype=values.dtype, device=values.device),
                   (0, cols * region - width, 0, rows * region - height))
    counts = counts.view(rows, region, cols, region).sum((1, 3)).reshape(1, rows * cols)
    return sums / counts


def region_ranks(pixel_relevance: torch.Tensor, region: int, order: str) -> torch.Tensor:
    """When each pixel's region gets perturbed: ``(B, H, W)`` int32, 0 for the first region.

    MoRF sorts regions by decreasing mean relevance, LeRF by increasing; ties keep the grid order
    (row by row) in both, so a heatmap that does not tell regions apart gives MoRF and LeRF the same order.
    """
    check_choice("order", order, ORDERS)
    batch, height, width = pixel_relevance.shape
    means = region_scores(pixel_relevance, region)
    key = -means if order == "morf" else means
    sequence = torch.sort(key, dim=1, stable=True).indices
    ranks = torch.empty_like(sequence)
    ranks.scatter_(1, sequence, torch.arange(sequence.shape[1], device=sequence.device).expand_as(sequence))
    labels = region_labels(height, width, region, pixel_relevance.device).flatten()
    return ranks.index_select(1, labels).view(batch, height, width).to(torch.int32)


# --------------------------------------------------------------------------------------------------
# perturbations


def _bound(name: str, value: Any, inputs: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    if value is None:
        return default
    tensor = torch.as_tensor(value, dtype=inputs.dtype).to(inputs.device)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    try:
        torch.broadcast_shapes(tensor.shape, inputs.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(tensor.shape)} does not broadcast to the inputs' shape "
                         f"{tuple(inputs.shape)}; give a number or a (1, C, 1, 1) tensor") from None
    return tensor


def gaussian_blur(inputs: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel blurred with a Gaussian of standard deviation ``sigma`` pixels (reflected borders)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=inputs.dtype, device=inputs.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = inputs.shape[1]
    mode = "reflect" if radius < min(inputs.shape[-2:]) else "replicate"
    x = F.pad(inputs, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def replacement(
    inputs: torch.Tensor,
    perturbation: Perturbation = "uniform",
    *,
    low: Any = None,
    high: Any = None,
    value: Any = 0.0,
    sigma: float = 4.0,
    seed: int = 0,
) -> torch.Tensor:
    """The values perturbed pixels take, ``(B, C, H, W)`` like ``inputs``.

    Each region is perturbed once, so one replacement image per input is the same as drawing fresh
    values at every step, and the result does not depend on ``batch_size``:

    - ``"uniform"``: ``U(low, high)`` per pixel and channel, from a ``torch.Generator`` seeded with ``seed``
      on the inputs' device (Samek et al. 2017: "uniform sampling in pixel space"). ``low``/``high`` are
      numbers or per-channel tensors (e.g. ``(1, C, 1, 1)``: the valid range of a normalised pixel, as
      ``unmask.zoo`` models give in ``.low``/``.high``); by default each channel's min and max over the batch.
    - ``"blur"``: the image blurred with a Gaussian of ``sigma`` pixels.
    - ``"mean"``: each image's per-channel mean.
    - ``"constant"``: ``value`` (a number or a tensor broadcasting to the inputs).
    - a function ``inputs -> replacement`` of the same shape.
    """
    if callable(perturbation):
        result = perturbation(inputs.clone())
        if not isinstance(result, torch.Tensor) or result.shape != inputs.shape:
            raise ValueError(
                f"a perturbation function must return a tensor shaped like the inputs {tuple(inputs.shape)}, "
                f"got {tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__}"
            )
        if not torch.isfinite(result).all():
            raise ValueError("the perturbation function returned NaN or Inf values")
        return result.detach().to(device=inputs.device, dtype=inputs.dtype)
    if not isinstance(perturbation, str) or perturbation not in PERTURBATIONS:
        raise ValueError(
            f"unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)} "
            "or pass a function inputs -> replacement values"
        )
    if perturbation == "uniform":
        check_int("seed", seed, minimum=0)
        lo = _bound("low", low, inputs, inputs.amin(dim=(0, 2, 3), keepdim=True))
        hi = _bound("high", high, inputs, inputs.amax(dim=(0, 2, 3), keepdim=True))
        if (hi < lo).any():
            raise ValueError("high must not be below low")
        generator = torch.Generator(device=inputs.device)
        generator.manual_seed(seed)
        noise = torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype, device=inputs.device)
        return lo + (hi - lo) * noise
    if perturbation == "blur":
        return gaussian_blur(inputs, check_float("sigma", sigma, minimum=1e-6))
    if perturbation == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).clone()
    return _bound("value", value, inputs, inputs).expand_as(inputs).clone()


def _perturbation_name(perturbation: Perturbation) -> str:
    if isinstance(perturbation, str):
        return perturbation
    return getattr(perturbation, "__name__", type(perturbation).__name__)


# --------------------------------------------------------------------------------------------------
# the batched sweep


def sweep(
    model: nn.Module,
    inputs: torch.Tensor,
    ranks: torch.Tensor,
    fill: torch.Tensor,
    steps: int,
    target: Target = None,
    *,
    score: str = "logit",
    batch_size: int | None = None,
    progress: Any = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The scores of all perturbation steps of all images for ``R`` orderings at once.

    ``ranks`` is ``(R, B, H, W)`` (see :func:`region_ranks`), ``fill`` the replacement ``(B, C, H, W)``.
    Step ``k`` of image ``b`` under ordering ``r`` is ``where(ranks[r, b] < k, fill[b], inputs[b])``;
    the ``R * B * steps`` perturbed inputs are built on the fly in chunks of ``batch_size`` and scored in
    one forward pass per chunk. Returns ``(R, B, steps + 1)`` float64 scores on the CPU (column 0: the
    unperturbed inputs, shared by all orderings) and the resolved class per image.
    """
    batch = inputs.shape[0]
    count = ranks.shape[0]
    total = count * batch * steps
    batch_size = default_batch_size(inputs.device) if batch_size is None else check_int("batch_size", batch_size)
    bar = progress_bar(progress, batch + total, "perturbation", "pass")
    update, close = bar.update, bar.close
    try:
        first = forward_scores(model, inputs, score, batch_size)
        index = resolve(first, target)
        rows = torch.arange(batch, device=inputs.device)
        base = pick(first, target, index, rows).double()
        if base.shape != (batch,):
            raise ValueError(f"the scored output must be one value per image, got shape {tuple(base.shape)}")
        update(batch)
        scores = torch.empty(count, batch, steps + 1, dtype=torch.float64, device=inputs.device)
        scores[:, :, 0] = base
        with torch.no_grad():
            for start in range(0, total, batch_size):
                job = torch.arange(start, min(total, start + batch_size), device=inputs.device)
                r, b, k = job // (batch * steps), (job // steps) % batch, job % steps + 1
                mask = ranks[r, b] < k.view(-1, 1, 1).to(torch.int32)
                perturbed = torch.where(mask.unsqueeze(1), fill[b], inputs[b])
                output = transform_output(model(perturbed), score)
                scores[r, b, k] = pick(output, target, index, b).double()
                update(job.numel())
    finally:
        close()
    return scores.cpu(), None if index is None else index.cpu()


def default_batch_size(device: torch.device) -> int:
    """Perturbed inputs per forward pass when none is given: 128 on a GPU; 4 on a CPU, where bigger batches
    gain nothing and their large activation buffers (beyond the allocator's reuse threshold) cost fresh
    page-faulting allocations on every pass: measured on EfficientNet-Lite0 at 224x224, 2 cores, batches
    of 4 ran 2-4x faster per image than batches of 16."""
    return 4 if device.type == "cpu" else 128


def _prepare(model, inputs, region, steps, perturbation, score, batch_size):
    model, inputs = check_model_inputs(model, inputs)
    region = check_int("region", region)
    batch_size = default_batch_size(inputs.device) if batch_size is None else check_int("batch_size", batch_size)
    check_choice("score", score, SCORES)
    if isinstance(perturbation, str):
        check_choice("perturbation", perturbation, PERTURBATIONS)
    elif not callable(perturbation):
        raise ValueError(f"unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)} or a function")
    height, width = inputs.shape[-2:]
    n_regions = math.ceil(height / region) * math.ceil(width / region)
    steps = n_regions if steps is None else check_int("steps", steps)
    if steps > n_regions:
        raise ValueError(
            f"steps={steps} exceeds the {n_regions} regions of {region}x{region} pixels in a {height}x{width} "
            "image; use fewer steps or smaller regions"
        )
    return model, inputs, region, steps, batch_size


def perturbation_curves(
    model: nn.Module,
    inputs: torch.Tensor,
    relevances: Mapping[str, Relevance],
    target: Target = None,
    *,
    orders: Sequence[str] = ORDERS,
    region: int = 9,
    steps: int | None = 100,
    perturbation: Perturbation = "uniform",
    score: str = "logit",
    low: Any = None,
    high: Any = None,
    value: Any = 0.0,
    sigma: float = 4.0,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Any = False,
) -> dict[str, dict[str, PerturbationResult]]:
    """Region perturbation for several heatmaps of the same images and several orders in one batched sweep.

    ``relevances`` maps a name (e.g. a method) to its relevance for ``inputs``; returns
    ``{name: {order: PerturbationResult}}``. All heatmaps share the unperturbed scores and the same
    replacement values (the same noise), so their curves differ only by the order. The other arguments
    are those of :func:`region_perturbation`.
    """
    model, inputs, region, steps, batch_size = _prepare(model, inputs, region, steps, perturbation, score, batch_size)
    if not relevances:
        raise ValueError("no relevance given")
    orders = [check_choice("order", order, ORDERS) for order in orders]
    if not orders:
        raise ValueError("no order given")
    names = list(relevances)
    targets = {name: explained_target(relevances[name], target) for name in names}
    chosen = targets[names[0]]
    if any(t is not chosen and not _same_target(t, chosen) for t in targets.values()):
        raise ValueError("the explanations explain different targets; pass target= to score one class per image")
    maps = {name: heatmap(relevances[name], inputs.shape, inputs.device) for name in names}
    ranks = torch.stack([region_ranks(maps[name], region, order) for name in names for order in orders])
    fill = replacement(inputs, perturbation, low=low, high=high, value=value, sigma=sigma, seed=seed)
    scores, index = sweep(model, inputs, ranks, fill, steps, chosen, score=score, batch_size=batch_size,
                          progress=progress)
    results: dict[str, dict[str, PerturbationResult]] = {}
    position = 0
    for name in names:
        results[name] = {}
        for order in orders:
            results[name][order] = PerturbationResult(
                scores=scores[position], order=order, score=score, region=region, steps=steps,
                perturbation=_perturbation_name(perturbation), target=index, seed=seed,
            )
            position += 1
    return results


def _same_target(a: Target, b: Target) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool((a.cpu() == b.cpu()).all())
    return a is b or a == b


def region_perturbation(
    model: nn.Module,
    inputs: torch.Tensor,
    relevance: Relevance,
    target: Target = None,
    *,
    order: str = "morf",
    region: int = 9,
    steps: int | None = 100,
    perturbation: Perturbation = "uniform",
    score: str = "logit",
    low: Any = None,
    high: Any = None,
    value: Any = 0.0,
    sigma: float = 4.0,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Any = False,
) -> PerturbationResult:
    """Region perturbation of Samek et al. (2017), "Evaluating the visualization of what a deep neural
    network has learned", IEEE TNNLS 28(11).

    The image is cut into a non-overlapping grid of ``region`` x ``region`` squares (default 9x9, anchored at
    the top-left; the last row/column is cut short where ``region`` does not divide the size). Regions are
    ordered by their mean pixel relevance (relevance summed over channels): decreasing for ``order="morf"``,
    increasing for ``"lerf"``. ``x^k`` has the first ``k`` regions replaced (all channels) by ``perturbation``
    (see :func:`replacement`; default uniform noise, seeded by ``seed``), for ``k = 0..steps`` (default 100;
    ``None``: all regions). ``f`` is the target's logit (``score="logit"``) or softmax probability
    (``"probability"``). The result holds the curves and

        AOPC = 1 / (L + 1) * < sum_{k=0..L} f(x^0) - f(x^k) >_images        (Samek et al., eq. 12)

    ``target`` defaults to the class the explanation explained (for an :class:`~unmask.Explanation`) or the
    predicted class. All ``B * steps`` perturbed inputs are scored in forward passes of ``batch_size``
    inputs on the inputs' device (default: :func:`default_batch_size`, 128 on a GPU, 4 on a CPU); the
    result does not depend on it.

    Differences from Quantus 0.6.0's ``RegionPerturbation``: Quantus centres the grid by padding when
    ``region`` does not divide the image, orders regions by their relevance *sum* (the same order when all
    regions are full), breaks ties by NumPy's unstable argsort, its curve starts at ``k = 1`` and its
    ``"uniform"`` baseline fills a whole region with one value; ``get_auc_score`` is a trapezoid area,
    not the AOPC.
    """
    results = perturbation_curves(
        model, inputs, {"relevance": relevance}, target, orders=[order], region=region, steps=steps,
        perturbation=perturbation, score=score, low=low, high=high, value=value, sigma=sigma, seed=seed,
        batch_size=batch_size, progress=progress,
    )
    return results["relevance"][order]


def pixel_flipping(
    model: nn.Module,
    inputs: torch.Tensor,
    relevance: Relevance,
    target: Target = None,
    *,
    order: str = "morf",
    steps: int | None = None,
    perturbation: Perturbation = "constant",
    score: str = "logit",
    value: Any = 0.0,
    batch_size: int | None = None,
    **options: Any,
) -> PerturbationResult:
    """Pixel flipping of Bach et al. (2015), "On pixel-wise explanations for non-linear classifier decisions
    by layer-wise relevance propagation", PLoS ONE 10(7): :func:`region_perturbation` with single pixels
    (``region=1``) replaced, most relevant first, all channels of a pixel at once. ``steps=None`` flips
    every pixel; the default replacement is the constant ``value`` (0.0).

    Quantus 0.6.0's ``PixelFlipping`` flips single *features* (one channel of one pixel) of the flattened
    attribution; given a one-channel attribution broadcast over ``C`` channels and ``features_in_step=C``
    it flips whole pixels as here, and its curve is ``f(x^k)`` for ``k = 1..`` rather than the drop.
    """
    return region_perturbation(
        model, inputs, relevance, target, order=order, region=1, steps=steps, perturbation=perturbation,
        score=score, value=value, batch_size=batch_size, **options,
    )
