"""Sanity checks: does the explanation depend on the model at all (Adebayo et al. 2018), and how well does
a heatmap drawn at random score (the chance level every metric should be read against)?"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..attribution.baseline import random_relevance
from ..targets import Target
from .._utils.progress import Progress, progress_bar
from .._utils.validation import check_choice, check_int
from ._common import (
    Method,
    check_model_inputs,
    explain_batched,
    finite_mean,
    forward_scores,
    heatmap,
    make_explainer,
    method_name,
    resolve,
    result_dict,
    to_list,
)

# --------------------------------------------------------------------------------------------------
# similarity of heatmaps


def rank(values: torch.Tensor) -> torch.Tensor:
    """Ranks (1..N) along the last dimension of ``(B, N)`` values; ties get their average rank
    (as ``scipy.stats.rankdata(method="average")``)."""
    values = values.double()
    batch, n = values.shape
    ordered, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(1) - 1
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=values.device).expand(batch, n)
    sums = torch.zeros_like(ordered).scatter_add_(1, group, positions)
    counts = torch.zeros_like(ordered).scatter_add_(1, group, torch.ones_like(ordered))
    average = (sums / counts.clamp(min=1)).gather(1, group)
    return torch.empty_like(average).scatter_(1, order, average)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per row of ``(B, N)`` tensors (NaN where a row is constant)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(denominator > 0, (a * b).sum(1) / denominator, torch.full_like(denominator, math.nan))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of heatmaps ``(B, ...)``: the Pearson correlation of their
    ranks (average ranks for ties), as ``scipy.stats.spearmanr``."""
    a, b = a.flatten(1), b.flatten(1)
    if a.shape != b.shape:
        raise ValueError(f"heatmaps of different shapes: {tuple(a.shape)} vs {tuple(b.shape)}")
    return pearson(rank(a), rank(b))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 7,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004) of each pair of ``(B, H, W)`` maps, as
    ``skimage.metrics.structural_similarity`` computes it by default: a ``window`` x ``window`` uniform
    window, sample covariances, constants ``(k1 * data_range)^2`` and ``(k2 * data_range)^2``, averaged
    over the positions where the window lies inside the image."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim needs two (B, H, W) maps of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < window:
        raise ValueError(f"maps of {a.shape[-2]}x{a.shape[-1]} are smaller than the {window}x{window} SSIM window")
    x, y = a.double().unsqueeze(1), b.double().unsqueeze(1)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    n = window * window
    norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = norm * (mean(x * x) - ux * ux)
    vy = norm * (mean(y * y) - uy * uy)
    vxy = norm * (mean(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return ((flat - low) / span).view_as(maps)


# --------------------------------------------------------------------------------------------------
# model parameter randomisation


def parameter_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the modules that own parameters, in the order the forward pass first runs them
    (modules never run are left out)."""
    owners = {name: module for name, module in model.named_modules()
              if any(True for _ in module.parameters(recurse=False))}
    order: list[str] = []
    handles = [module.register_forward_hook(lambda m, a, o, name=name: order.append(name) if name not in order else None)
               for name, module in owners.items()]
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return order


def randomize_layer(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters in place, reproducibly (drawn on the CPU with ``seed``).

    A module with ``reset_parameters`` (convolutions, linear layers, norms) is reset as if freshly built
    (BatchNorm: unit scale, zero shift and reset running statistics); other parameters are drawn from
    ``N(0, std)`` with the original tensor's standard deviation.
    """
    generator = torch.Generator().manual_seed(seed)
    has_children = any(True for _ in module.children())
    if hasattr(module, "reset_parameters") and not has_children:
        fresh = copy.deepcopy(module).to("cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()
            if hasattr(fresh, "reset_running_stats"):
                fresh.reset_running_stats()
        with torch.no_grad():
            for (_, p), (_, q) in zip(module.named_parameters(recurse=False), fresh.named_parameters(recurse=False)):
                p.copy_(q)
            for (_, p), (_, q) in zip(module.named_buffers(recurse=False), fresh.named_buffers(recurse=False)):
                p.copy_(q)
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = float(p.detach().double().std()) if p.numel() > 1 else 0.0
            std = std if math.isfinite(std) and std > 0 else 1.0
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)


@dataclass
class RandomizationResult:
    """Similarity of the explanation of the randomised model to the original one, layer by layer.

    Attributes:
        layers: the randomised layers, top (output side) first.
        spearman: ``(L, B)`` Spearman rank correlation with the original heatmap after randomising
            ``layers[:l+1]`` (cascading) or ``layers[l]`` alone (independent).
        ssim: ``(L, B)`` SSIM of the min-max normalised heatmaps.
    """

    layers: list[str]
    spearman: torch.Tensor
    ssim: torch.Tensor
    mode: str
    absolute: bool
    method: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """Mean Spearman correlation over layers and images: low means the explanation depends on the
        parameters (the check passes); near 1 means it does not (it fails)."""
        return finite_mean(self.spearman)

    higher_is_better = False

    def to_dict(self) -> dict[str, Any]:
        return result_dict(
            self, "model_randomization", ("method", "mode", "absolute", "value", "layers"), spearman=self.spearman.double().nanmean(1),
            ssim=self.ssim.double().nanmean(1), spearman_per_image=self.spearman, ssim_per_image=self.ssim,
        )


def model_randomization(
    model: nn.Module,
    inputs: torch.Tensor,
    method: Method,
    target: Target = None,
    *,
    params: Mapping[str, Any] | None = None,
    layers: int | Sequence[str] | None = None,
    mode: str = "cascading",
    absolute: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    progress: Progress = False,
) -> RandomizationResult:
    """Model parameter randomisation test of Adebayo et al. (2018), "Sanity checks for saliency maps",
    NeurIPS: re-initialise the layers from the top (output) down, one more each time (``"cascading"``), or
    one at a time (``"independent"``), explain again and compare with the original heatmap by Spearman rank
    correlation and SSIM. An explanation that stays similar does not reflect what the model learned.

    ``method`` is a registry name (built anew for each randomised copy, with ``params``) or a function
    ``(model, inputs, target) -> relevance``. The explained class stays the original model's (``target``,
    default its prediction). ``layers``: ``None`` for every module that owns parameters (in forward order,
    randomised from the last), an int for the top that many, or a list of module names. Heatmaps are the
    relevance summed over channels (``absolute=True``: its absolute value, Adebayo's main variant); SSIM
    compares them min-max normalised to ``[0, 1]``. Randomisation happens on a deep copy: the user's model
    is never touched. Quantus's ``MPRT`` defaults to other similarity functions and normalisations.
    """
    model, inputs = check_model_inputs(model, inputs)
    check_choice("mode", mode, ("cascading", "independent"))
    batch_size = check_int("batch_size", batch_size)
    check_int("seed", seed, minimum=0)
    working = copy.deepcopy(model).eval()
    available = parameter_layers(working, inputs)
    if layers is None:
        chosen = list(reversed(available))
    elif isinstance(layers, int) and not isinstance(layers, bool):
        chosen = list(reversed(available))[: check_int("layers", layers)]
    else:
        chosen = list(layers)
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r}; layers with parameters: {', '.join(available)}")
    if not chosen:
        raise ValueError("the model has no layer with parameters to randomise")
    output = forward_scores(working, inputs, "logit", batch_size)
    index = resolve(output, target)

    def explain(net: nn.Module) -> torch.Tensor:
        maps = heatmap(explain_batched(make_explainer(method, params), net, inputs, index, batch_size, target),
                       inputs.shape)
        return maps.abs() if absolute else maps

    original = explain(working)
    spearmans, ssims = [], []
    with progress_bar(progress, len(chosen), "randomization", "layer") as bar:
        for position, name in enumerate(chosen):
            if mode == "independent":
                working = copy.deepcopy(model).eval()
            randomize_layer(working.get_submodule(name), seed + position)
            randomised = explain(working)
            spearmans.append(spearman(original, randomised).cpu())
            ssims.append(ssim(_unit_range(original), _unit_range(randomised)).cpu())
            bar.update(1)
    return RandomizationResult(chosen, torch.stack(spearmans), torch.stack(ssims), mode, absolute, method_name(method))


# --------------------------------------------------------------------------------------------------
# the random-heatmap baseline


def random_heatmap(inputs: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A heatmap ``(B, H, W)`` of independent ``U[0, 1)`` values, from a generator seeded with ``seed`` on the
    inputs' device: it orders pixels and regions uniformly at random."""
    return random_relevance((inputs.shape[0], *inputs.shape[-2:]), seed, inputs.device, inputs.dtype)


@dataclass
class BaselineResult:
    """A metric's value for random heatmaps, one per seed: the chance level."""

    metric: str
    seeds: list[int]
    values: list[float]
    results: list[Any] = field(default_factory=list)

    @property
    def value(self) -> float:
        return float(sum(self.values) / len(self.values))

    @property
    def std(self) -> float:
        if len(self.values) < 2:
            return 0.0
        mean = self.value
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1))

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": to_list(self.value), "std": to_list(self.std),
                "seeds": list(self.seeds), "values": to_list(self.values)}


def random_baseline(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    *,
    metric: Callable[..., Any] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    **options: Any,
) -> BaselineResult:
    """The random-heatmap baseline (Samek et al. 2017 compare LRP and sensitivity against it): ``metric``
    (default :func:`~unmask.evaluate.region_perturbation`, MoRF AOPC) on :func:`random_heatmap` for each
    seed. ``metric(model, inputs, relevance, target, **options)`` must return a number or a result with a
    ``value``. A method should beat this level clearly to be called faithful.
    """
    from .perturbation import region_perturbation

    metric = region_perturbation if metric is None else metric
    model, inputs = check_model_inputs(model, inputs, images=False)
    if not seeds:
        raise ValueError("seeds must not be empty")
    values, results = [], []
    for seed in seeds:
        result = metric(model, inputs, random_heatmap(inputs, seed), target, **options)
        results.append(result)
        values.append(float(getattr(result, "value", result)))
    return BaselineResult(getattr(metric, "__name__", "metric"), [int(s) for s in seeds], values, results)


__all__ = [
    "BaselineResult",
    "RandomizationResult",
    "model_randomization",
    "parameter_layers",
    "pearson",
    "random_baseline",
    "random_heatmap",
    "randomize_layer",
    "rank",
    "spearman",
    "ssim",
]
