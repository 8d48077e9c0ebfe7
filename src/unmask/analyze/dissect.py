"""Network dissection: which units of a layer detect which concepts (Bau et al., CVPR 2017).

For a layer with ``U`` units (channels) and a concept data set (images with per-pixel labels):

1. The activations ``a_u`` of every unit over the whole data set give a per-unit threshold ``T_u``, the
   top ``quantile`` (default 0.005) of its activation values: ``P(a_u > T_u) = quantile``. Computed in
   one streaming pass (:class:`TailQuantile`, exact, or :class:`HistogramQuantile` when the exact
   tail would not fit in memory; see there for the error).
2. In a second pass each activation map is upsampled (bilinear) to the resolution of the label maps
   and thresholded, ``M_u = up(a_u) > T_u``, and for every unit ``u`` and label ``c``
   ``IoU(u, c) = sum |M_u & L_c| / sum |M_u | L_c|`` is accumulated over the data set (the union only over
   images annotated for the label's category, as NetDissect does).
3. Each unit gets its best label; it is a *detector* when that IoU exceeds ``iou_threshold`` (0.04).
   A layer's interpretability is its number of *unique detectors* per category: the number of
   distinct labels that some unit detects.

Everything is batched and streaming: memory does not grow with the data set (activations of a layer
are kept between the passes only when they fit ``cache_bytes``, which saves the second forward pass),
and it runs on the model's device. The seed-002 experiments are options: :func:`robustness` (added
noise, rotation, patch rearrangement) and :func:`axis_alignment` (random rotations of the unit basis).

>>> from unmask import zoo
>>> from unmask.analyze import dissect
>>> result = dissect(zoo.load("efficientnet-lite0"), "_blocks.7", "generated")
>>> result.unique_detectors                 # {'color': 4, 'texture': 4, 'shape': 0}
>>> [(u.unit, u.label, round(u.iou, 2)) for u in result.detectors][:3]   # [(13, 'dotted', 0.22), (24, 'dotted', 0.18), (35, 'yellow', 0.17)]
"""
from __future__ import annotations

import copy
import difflib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.concepts import ConceptBatch, ConceptDataset, collate_concepts, load_concepts

__all__ = [
    "AxisAlignmentResult",
    "DissectionResult",
    "HistogramQuantile",
    "Perturbation",
    "RobustnessResult",
    "TailQuantile",
    "UnitRecord",
    "activation_maps",
    "axis_alignment",
    "dissect",
    "parse_perturbation",
    "random_rotation",
    "resolve_layer",
    "robustness",
    "streaming_quantile",
]

DEFAULT_QUANTILE = 0.005
DEFAULT_IOU_THRESHOLD = 0.04
#: Exact tails up to this many values in all (per view: units x (k + 1)) are kept; beyond it a histogram.
EXACT_LIMIT = 1 << 25
#: Bins of the histogram quantile estimator (per unit).
HISTOGRAM_BINS = 4096

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------
# streaming quantiles


def _tail_count(total: int, quantile: float) -> int:
    """How many values lie strictly above the threshold: ``floor(quantile * total)``."""
    return int(math.floor(quantile * total + 1e-9))


class TailQuantile:
    """Exact per-unit top quantile over a stream, keeping only the tail.

    The threshold of a unit is the ``(k + 1)``-th largest of its ``n`` values with
    ``k = floor(quantile * n)``: exactly ``k`` values lie above it when there are no ties (for
    ``n`` values ``x``: ``numpy.sort(x)[n - 1 - k]``). ``n`` must be known in advance (it is: images
    times positions). Memory: ``units x (k + 1)`` values; each batch only looks at the values above the
    current cut, so after the first batches an update costs little more than one comparison per value.
    """

    method = "exact"

    def __init__(self, units: int, total: int, quantile: float, device: torch.device | str = "cpu") -> None:
        if total < 1:
            raise ValueError(f"total must be positive, got {total}")
        self.units, self.total, self.quantile = int(units), int(total), float(quantile)
        self.k = min(_tail_count(total, quantile), total - 1)
        self.keep = self.k + 1
        self.buffer = torch.empty(self.units, 0, device=device)
        self.seen = 0

    def update(self, values: torch.Tensor) -> None:
        """``values``: ``(units, m)``, one row per unit."""
        if values.ndim != 2 or values.shape[0] != self.units:
            raise ValueError(f"expected ({self.units}, m) values, got {tuple(values.shape)}")
        values = values.detach().float()
        self.seen += values.shape[1]
        if self.buffer.shape[1] >= self.keep:
            cut = self.buffer[:, -1:]  # the buffer is sorted descending: its last column is the cut
            above = int((values > cut).sum(1).max())
            if above == 0:
                return
            values = values.topk(min(above, values.shape[1]), dim=1, sorted=False).values
        merged = torch.cat([self.buffer, values], dim=1)
        self.buffer = merged.topk(min(self.keep, merged.shape[1]), dim=1, sorted=True).values

    def threshold(self) -> torch.Tensor:
        """``(units,)`` thresholds (the smallest value seen when fewer than ``k + 1`` values came)."""
        if self.buffer.shape[1] == 0:
            raise RuntimeError("no values seen")
        if self.seen != self.total:
            k = min(_tail_count(self.seen, self.quantile), self.seen - 1)
            return self.buffer[:, min(k, self.buffer.shape[1] - 1)].clone()
        return self.buffer[:, -1].clone()


class HistogramQuantile:
    """Approximate per-unit top quantile over a stream in fixed memory: ``units x bins`` counts.

    Each unit has ``bins`` equal bins over a range that starts at the first batch's min..max and
    doubles (merging neighbouring bins, so counts stay exact at the coarser width) whenever a value
    falls outside. The threshold is read off the cumulative counts from the top and interpolated
    within its bin, assuming values spread evenly inside a bin.

    Error: the threshold is within one bin width of the exact one (:class:`TailQuantile`), and a bin
    is at most ``2 * (max - min) / bins`` wide (max, min of the unit's values), so with 4096 bins the
    error is below 0.05 % of the unit's range; the fraction of values above the threshold differs from
    ``quantile`` by at most the fraction of values in that one bin.
    """

    method = "histogram"

    def __init__(
        self, units: int, total: int, quantile: float, device: torch.device | str = "cpu", bins: int = HISTOGRAM_BINS
    ) -> None:
        if bins < 2 or bins % 2:
            raise ValueError(f"bins must be an even number >= 2, got {bins}")
        self.units, self.total, self.quantile, self.bins = int(units), int(total), float(quantile), int(bins)
        self.device = torch.device(device)
        dtype = torch.float64 if self.device.type in ("cpu", "cuda") else torch.float32
        self.counts = torch.zeros(self.units, self.bins, dtype=dtype, device=device)
        self.low = torch.zeros(self.units, dtype=torch.float64, device=device)
        self.width = torch.zeros(self.units, dtype=torch.float64, device=device)
        self.seen = 0

    def update(self, values: torch.Tensor) -> None:
        if values.ndim != 2 or values.shape[0] != self.units:
            raise ValueError(f"expected ({self.units}, m) values, got {tuple(values.shape)}")
        values = values.detach().to(torch.float64)
        vmin, vmax = values.min(1).values, values.max(1).values
        if self.seen == 0:
            span = (vmax - vmin).clamp_min(0)
            tiny = torch.maximum(vmax.abs(), vmin.abs()).clamp_min(1.0) * 1e-6
            self.width = torch.maximum(span, tiny) * (1 + 1e-6) / self.bins
            self.low = vmin - 0.5 * (self.width * self.bins - span)
        else:
            self._grow(vmin, vmax)
        self.seen += values.shape[1]
        index = ((values - self.low[:, None]) / self.width[:, None]).floor().clamp_(0, self.bins - 1).long()
        self.counts.scatter_add_(1, index, torch.ones_like(index, dtype=self.counts.dtype))

    def _grow(self, vmin: torch.Tensor, vmax: torch.Tensor) -> None:
        half = self.bins // 2
        while True:
            high = self.low + self.width * self.bins
            below, above = vmin < self.low, vmax >= high
            grow = below | above
            if not bool(grow.any()):
                return
            merged = self.counts.view(self.units, half, 2).sum(2)
            new = torch.zeros_like(self.counts)
            # extend upwards: old range becomes the lower half; downwards: the upper half
            up_rows, down_rows = grow & ~below, below
            new[up_rows, :half] = merged[up_rows]
            new[down_rows, half:] = merged[down_rows]
            new[~grow] = self.counts[~grow]
            self.low = torch.where(down_rows, self.low - self.width * self.bins, self.low)
            self.width = torch.where(grow, self.width * 2, self.width)
            self.counts = new

    def threshold(self) -> torch.Tensor:
        if self.seen == 0:
            raise RuntimeError("no values seen")
        k = min(_tail_count(self.seen, self.quantile), self.seen - 1)
        rank = k + 1  # the threshold is the rank-th largest value
        from_top = self.counts.flip(1).cumsum(1)  # values in this bin and above
        position = (from_top >= rank).to(torch.int64).argmax(1)  # first bin (from the top) reaching the rank
        bin_index = self.bins - 1 - position
        count = self.counts.gather(1, bin_index[:, None])[:, 0]
        above = from_top.gather(1, position[:, None])[:, 0] - count
        inside = (rank - above - 0.5) / count.clamp_min(1)
        top_edge = self.low + (bin_index + 1).to(torch.float64) * self.width
        return (top_edge - inside * self.width).float()


def streaming_quantile(
    units: int,
    total: int,
    quantile: float,
    device: torch.device | str = "cpu",
    method: str = "auto",
    exact_limit: int = EXACT_LIMIT,
) -> TailQuantile | HistogramQuantile:
    """The estimator for ``units`` streams of ``total`` values each: ``"exact"`` (:class:`TailQuantile`),
    ``"histogram"`` (:class:`HistogramQuantile`), or ``"auto"``: exact when its tail buffer holds at most
    ``exact_limit`` values in all, else the histogram."""
    if method == "exact":
        return TailQuantile(units, total, quantile, device)
    if method == "histogram":
        return HistogramQuantile(units, total, quantile, device)
    if method != "auto":
        raise ValueError(f"quantile method must be 'auto', 'exact' or 'histogram', got {method!r}")
    keep = _tail_count(total, quantile) + 1
    if units * keep <= exact_limit:
        return TailQuantile(units, total, quantile, device)
    return HistogramQuantile(units, total, quantile, device)


# --------------------------------------------------------------------------------------------------
# perturbations (seed 002: robustness of detectors)


@dataclass(frozen=True)
class Perturbation:
    """A change to every image (and its label maps, where geometry changes) before dissection.

    ``noise``: add ``amount * U[0, 1]`` on the 0..255 pixel scale (as in the seed's "+ 5 * Unif[0, 1]"),
    then clip; ``rotate``: rotate by ``amount`` degrees about the centre (labels follow, the corners
    become unlabelled black); ``shuffle``: cut into ``amount`` x ``amount`` patches and put them back in
    a random order (labels follow). Random draws depend only on ``(seed, image index)``.
    """

    kind: str
    amount: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("noise", "rotate", "shuffle"):
            raise ValueError(f"unknown perturbation {self.kind!r}; use noise:AMOUNT, rotate:DEGREES or shuffle:GRID")
        if not math.isfinite(self.amount):
            raise ValueError(f"{self.kind} amount must be a finite number, got {self.amount}")
        if self.kind == "noise" and self.amount < 0:
            raise ValueError(f"noise amount must be >= 0, got {self.amount}")
        if self.kind == "shuffle" and (self.amount != int(self.amount) or self.amount < 1):
            raise ValueError(f"shuffle needs a whole number of patches per side, got {self.amount}")

    def __str__(self) -> str:
        amount = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{self.kind}:{amount}"

    def apply(self, images: torch.Tensor, planes: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` (B, 3, H, W) in [0, 1], ``planes`` (B, P, h, w) labels -> both perturbed."""
        if self.kind == "noise":
            noise = torch.stack([torch.rand(images.shape[1:], generator=self._generator(i)) for i in indices.tolist()])
            return (images + noise.to(images) * (self.amount / 255.0)).clamp(0, 1), planes
        if self.kind == "rotate":
            return _rotate(images, self.amount, "bilinear"), _rotate(planes.float(), self.amount, "nearest").round().long()
        grid = int(self.amount)
        for tensor, what in ((images, "images"), (planes, "label maps")):
            h, w = tensor.shape[-2:]
            if h % grid or w % grid:
                raise ValueError(f"shuffle:{grid} needs {what} whose sides divide by {grid}, got {h}x{w}")
        orders = torch.stack([
            torch.from_numpy(np.random.default_rng([self.seed, int(i), 0x5A1F]).permutation(grid * grid)) for i in indices.tolist()
        ])
        return _shuffle(images, grid, orders.to(images.device)), _shuffle(planes, grid, orders.to(planes.device))

    def _seed(self, index: int) -> int:
        return (self.seed * 1_000_003 + int(index) * 7919 + 17) % (2**63)

    def _generator(self, index: int) -> torch.Generator:
        generator = torch.Generator()
        generator.manual_seed(self._seed(index))
        return generator


def _rotate(tensor: torch.Tensor, degrees: float, mode: str) -> torch.Tensor:
    b, _, h, w = tensor.shape
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=tensor.dtype, device=tensor.device)
    grid = F.affine_grid(theta.expand(b, 2, 3), list(tensor.shape), align_corners=False)
    return F.grid_sample(tensor, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _shuffle(tensor: torch.Tensor, grid: int, orders: torch.Tensor) -> torch.Tensor:
    b, c, h, w = tensor.shape
    th, tw = h // grid, w // grid
    tiles = tensor.reshape(b, c, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, th, tw)
    tiles = tiles[torch.arange(b, device=tensor.device)[:, None], orders]
    return tiles.reshape(b, grid, grid, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def parse_perturbation(spec: str | Perturbation | None, seed: int = 0) -> Perturbation | None:
    """``"noise:10"``, ``"rotate:45"``, ``"shuffle:4"`` (``"rearrange:4"``), a :class:`Perturbation` or None."""
    if spec is None or isinstance(spec, Perturbation):
        return spec
    kind, sep, amount = str(spec).partition(":")
    kind = {"rearrange": "shuffle", "rotation": "rotate", "patches": "shuffle"}.get(kind.strip(), kind.strip())
    try:
        value = float(amount)
    except ValueError:
        raise ValueError(f"bad perturbation {spec!r}: use noise:AMOUNT, rotate:DEGREES or shuffle:GRID") from None
    if not sep:
        raise ValueError(f"bad perturbation {spec!r}: use noise:AMOUNT, rotate:DEGREES or shuffle:GRID")
    return Perturbation(kind, value, seed)


# --------------------------------------------------------------------------------------------------
# results


@dataclass
class UnitRecord:
    """One unit of a dissected layer: its best label and how well it matches."""

    unit: int
    label: str
    category: str
    iou: float
    is_detector: bool
    threshold: float
    top_images: list[int] = field(default_factory=list)
    top_activations: list[float] = field(default_factory=list)
    candidates: list[tuple[str, str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "label": self.label,
            "category": self.category,
            "iou": _finite(self.iou),
            "is_detector": self.is_detector,
            "threshold": _finite(self.threshold),
            "top_images": list(self.top_images),
            "top_activations": [_finite(v) for v in self.top_activations],
            "candidates": [{"label": l, "category": c, "iou": _finite(v)} for l, c, v in self.candidates],
        }


@dataclass
class DissectionResult:
    """The dissection of one layer: ``units`` (one :class:`UnitRecord` per unit, 0-based), the full
    ``iou`` matrix ``(units, labels)``, per-unit ``thresholds`` and the settings that produced them.
    ``top_maps[u, j]`` is unit ``u``'s activation map on its ``j``-th top image (``units[u].top_images[j]``)."""

    layer: str
    units: list[UnitRecord]
    labels: list[str]
    label_categories: list[str]
    categories: list[str]
    iou: np.ndarray
    thresholds: np.ndarray
    quantile: float
    iou_threshold: float
    n_images: int
    activation_size: tuple[int, int]
    mask_size: tuple[int, int]
    quantile_method: str
    concepts: str = ""
    top_maps: np.ndarray | None = field(default=None, repr=False)
    model: str = ""
    perturbation: str | None = None
    basis: str = "units"
    seconds: float = 0.0

    @property
    def detectors(self) -> list[UnitRecord]:
        """Units whose best IoU exceeds ``iou_threshold``, best first."""
        return sorted((u for u in self.units if u.is_detector), key=lambda u: -u.iou)

    @property
    def unique_detectors(self) -> dict[str, int]:
        """Per category, how many distinct labels some detector unit detects (the paper's measure)."""
        seen: dict[str, set[str]] = {c: set() for c in self.categories}
        for unit in self.units:
            if unit.is_detector:
                seen.setdefault(unit.category, set()).add(unit.label)
        return {c: len(labels) for c, labels in seen.items()}

    @property
    def detector_units(self) -> dict[str, int]:
        """Per category, how many units are detectors of one of its labels."""
        counts = {c: 0 for c in self.categories}
        for unit in self.units:
            if unit.is_detector:
                counts[unit.category] = counts.get(unit.category, 0) + 1
        return counts

    def top(self, n: int = 10) -> list[UnitRecord]:
        """The ``n`` units with the highest IoU."""
        return sorted(self.units, key=lambda u: -u.iou)[:n]

    def summary(self) -> str:
        unique = ", ".join(f"{c} {n}" for c, n in self.unique_detectors.items())
        return (
            f"{self.layer}: {len(self.detectors)} of {len(self.units)} units are detectors "
            f"(IoU > {self.iou_threshold:g}); unique detectors: {unique}"
        )

    def to_dict(self, matrix: bool = False) -> dict[str, Any]:
        """JSON-ready: settings, counts and one entry per unit (and the whole IoU matrix with ``matrix=True``)."""
        data: dict[str, Any] = {
            "layer": self.layer,
            "model": self.model,
            "concepts": self.concepts,
            "basis": self.basis,
            "perturbation": self.perturbation,
            "quantile": self.quantile,
            "quantile_method": self.quantile_method,
            "iou_threshold": self.iou_threshold,
            "n_images": self.n_images,
            "n_units": len(self.units),
            "activation_size": list(self.activation_size),
            "mask_size": list(self.mask_size),
            "seconds": round(self.seconds, 3),
            "categories": list(self.categories),
            "n_detectors": len(self.detectors),
            "unique_detectors": self.unique_detectors,
            "detector_units": self.detector_units,
            "units": [u.to_dict() for u in self.units],
        }
        if matrix:
            data["labels"] = list(self.labels)
            data["label_categories"] = list(self.label_categories)
            data["iou"] = [[_finite(v) for v in row] for row in self.iou.tolist()]
        return data

    def __repr__(self) -> str:
        return f"<DissectionResult {self.summary()}>"


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _mean_std(counts: list[dict[str, int]], keys: Iterable[str]) -> tuple[dict[str, float], dict[str, float]]:
    mean, std = {}, {}
    for key in keys:
        values = np.array([c.get(key, 0) for c in counts], dtype=np.float64)
        mean[key] = float(values.mean()) if values.size else float("nan")
        std[key] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std


def _with_total(counts: dict[str, int]) -> dict[str, int]:
    return {**counts, "total": sum(counts.values())}


@dataclass
class AxisAlignmentResult:
    """The axis-alignment test: unique detectors of the layer's own units versus the same representation
    in randomly rotated bases (``repeats`` random orthogonal matrices), with mean and std over repeats."""

    layer: str
    identity: DissectionResult
    rotated: list[DissectionResult]
    seed: int

    @property
    def counts(self) -> dict[str, int]:
        return _with_total(self.identity.unique_detectors)

    @property
    def rotated_counts(self) -> list[dict[str, int]]:
        return [_with_total(r.unique_detectors) for r in self.rotated]

    @property
    def mean(self) -> dict[str, float]:
        return _mean_std(self.rotated_counts, self.counts)[0]

    @property
    def std(self) -> dict[str, float]:
        return _mean_std(self.rotated_counts, self.counts)[1]

    def summary(self) -> str:
        parts = [f"{k} {self.counts[k]} vs {self.mean[k]:.1f} +/- {self.std[k]:.1f}" for k in self.counts]
        return f"{self.layer} unique detectors, unit basis vs {len(self.rotated)} random rotations: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "repeats": len(self.rotated),
            "seed": self.seed,
            "unit_basis": self.counts,
            "rotated": self.rotated_counts,
            "mean": self.mean,
            "std": self.std,
        }


@dataclass
class RobustnessResult:
    """Detectors of one layer on the original images and under each perturbation.

    ``kept[p]``: the fraction of the original detector units that are still detectors of the same
    label under perturbation ``p``."""

    layer: str
    baseline: DissectionResult
    perturbed: dict[str, DissectionResult]

    @property
    def kept(self) -> dict[str, float]:
        base = {u.unit: u.label for u in self.baseline.units if u.is_detector}
        out = {}
        for name, result in self.perturbed.items():
            same = sum(1 for u in result.units if u.is_detector and base.get(u.unit) == u.label)
            out[name] = same / len(base) if base else float("nan")
        return out

    def summary(self) -> str:
        lines = [f"{self.layer}: original unique detectors {_with_total(self.baseline.unique_detectors)}"]
        kept = self.kept
        for name, result in self.perturbed.items():
            lines.append(f"  {name}: {_with_total(result.unique_detectors)}, detectors kept {kept[name]:.0%}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        kept = self.kept
        return {
            "layer": self.layer,
            "original": _with_total(self.baseline.unique_detectors),
            "perturbed": {
                name: {"unique_detectors": _with_total(r.unique_detectors), "kept": _finite(kept[name])}
                for name, r in self.perturbed.items()
            },
        }


# --------------------------------------------------------------------------------------------------
# the model side


@dataclass
class _Model:
    module: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int] | None
    name: str


def _resolve_model(model: Any, mean: Sequence[float] | None, std: Sequence[float] | None, image_size: Any) -> _Model:
    """An ``nn.Module`` or a zoo model (anything with ``.model`` and ``.preprocessing``)."""
    preprocessing = None
    if isinstance(model, nn.Module):
        module, name = model, type(model).__name__
    elif isinstance(getattr(model, "model", None), nn.Module):
        module, name = model.model, str(getattr(model, "name", type(model.model).__name__))
        preprocessing = getattr(model, "preprocessing", None)
    else:
        raise TypeError(f"model must be a torch.nn.Module or a unmask.zoo.ZooModel, got {type(model).__name__}")
    if mean is None:
        mean = getattr(preprocessing, "mean", None) or _IMAGENET_MEAN
    if std is None:
        std = getattr(preprocessing, "std", None) or _IMAGENET_STD
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need three entries (RGB) and std > 0, got mean={mean}, std={std}")
    if image_size is None and preprocessing is not None:
        image_size = getattr(preprocessing, "size", None)
    size = None if image_size is None else ((image_size, image_size) if isinstance(image_size, int) else tuple(image_size))
    return _Model(module, tuple(float(m) for m in mean), tuple(float(s) for s in std), size, name)


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model`` (as in ``model.named_modules()``), or a ValueError listing the names."""
    modules = dict(model.named_modules())
    if isinstance(name, str) and name in modules and name != "":
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
    shown = names if len(names) <= 60 else names[:60]
    more = "" if len(names) <= 60 else f" ... ({len(names) - 60} more; see model.named_modules())"
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"{type(model).__name__} has no layer {name!r}.{hint} Layers are module names from model.named_modules(): "
        f"{', '.join(shown)}{more}"
    )


class _Stop(Exception):
    """Raised by a capture hook once every wanted layer has run: the rest of the forward pass is skipped."""


class _Capture:
    """Forward hooks that keep the outputs of some layers (and can end the forward pass early)."""

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        self.names = list(layers)
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {n: 0 for n in self.names}
        self.stop_early = False
        self.wanted: set[str] = set(self.names)  # with stop_early: end the pass once these have run
        self.transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None  # instead of the copy
        self.handles = [resolve_layer(model, n).register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self.calls[name] += 1
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            if isinstance(tensor, torch.Tensor):
                # a copy: a later in-place module (ReLU(inplace=True)) must not change what was kept
                self.outputs[name] = tensor.detach().clone() if self.transform is None else self.transform(name, tensor)
            if self.stop_early and all(n in self.outputs for n in self.wanted):
                raise _Stop

        return hook

    def run(self, model: nn.Module, inputs: torch.Tensor, wanted: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        self.outputs = {}
        self.wanted = set(self.names if wanted is None else wanted)
        try:
            model(inputs)
        except _Stop:
            pass
        missing = [n for n in self.wanted if n not in self.outputs]
        if missing:
            raise RuntimeError(f"layer(s) {', '.join(missing)} did not run (or gave no tensor) in the forward pass")
        return self.outputs

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


class _Frozen:
    """Eval mode for the duration, then every module's training flag back as it was."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.flags = [(m, m.training) for m in model.modules()]

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for module, flag in self.flags:
            module.training = flag


def _model_device(module: nn.Module) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _prepare(module: nn.Module, device: str | torch.device | None) -> tuple[nn.Module, torch.device]:
    """The model on ``device`` (a copy when it lives elsewhere: the user's model is never moved)."""
    current = _model_device(module)
    if device is None:
        return module, current
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {target} asked for, but CUDA is not available (torch {torch.__version__})")
    if target == current or (target.type == current.type and target.index is None):
        return module, current
    return copy.deepcopy(module).to(target), target


def _inputs(pixels: torch.Tensor, model: _Model) -> torch.Tensor:
    if model.size is not None and tuple(pixels.shape[-2:]) != model.size:
        antialias = pixels.shape[-1] > model.size[1]
        pixels = F.interpolate(pixels, size=model.size, mode="bilinear", align_corners=False, antialias=antialias)
    mean = torch.tensor(model.mean, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def activation_maps(
    model: Any,
    layer: str,
    pixels: torch.Tensor,
    units: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Activations of ``layer`` for images ``pixels`` ``(B, 3, H, W)`` in [0, 1]: ``(B, U, h, w)``, the
    ``units`` only when given, upsampled bilinearly to ``size`` when given (as dissection does)."""
    resolved = _resolve_model(model, mean, std, image_size)
    device = _model_device(resolved.module)
    capture = _Capture(resolved.module, [layer])
    capture.stop_early = True
    try:
        with _Frozen(resolved.module), torch.no_grad():
            acts = capture.run(resolved.module, _inputs(pixels.to(device), resolved))[layer].float()
    finally:
        capture.close()
    if acts.ndim != 4:
        raise ValueError(f"layer {layer!r} gives a {tuple(acts.shape)} tensor; dissection needs (B, C, H, W) feature maps")
    if units is not None:
        acts = acts[:, list(units)]
    if size is not None:
        acts = F.interpolate(acts, size=size, mode="bilinear", align_corners=False)
    return acts


# --------------------------------------------------------------------------------------------------
# the dissection proper


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


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False)


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
    progress: bool,
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
    resolved = _resolve_model(model, mean, std, image_size)
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

    module, dev = _prepare(resolved.module, device)
    resolved = _Model(module, resolved.mean, resolved.std, resolved.size, resolved.name)
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
        return _inputs(images, resolved), batch

    capture = _Capture(module, layers)
    cache: dict[str, list[torch.Tensor]] = {}
    data_cache: list[ConceptBatch] | None = None
    shapes: dict[str, tuple[int, int, int]] = {}
    mask_size: tuple[int, int] = tuple(dataset.mask_size)  # type: ignore[assignment]
    try:
        with _Frozen(module), torch.no_grad():
            # pass 1: thresholds and top images ------------------------------------------------------
            bar = _bar(n_images, f"dissect {', '.join(layers)}: quantiles", progress)
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
                if bar is not None:
                    bar.update(len(batch))
            if bar is not None:
                bar.close()
            for view in views:
                view.thresholds = view.quantile.threshold().to(dev)
                units = view.thresholds.shape[0]
                view.inter = torch.zeros(units, n_labels, dtype=acc_dtype, device=dev)
                view.unit_area = torch.zeros(units, len(categories), dtype=acc_dtype, device=dev)
            label_area = torch.zeros(n_labels, dtype=acc_dtype, device=dev)

            # pass 2: IoU ----------------------------------------------------------------------------
            bar = _bar(n_images, f"dissect {', '.join(layers)}: IoU", progress)
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
                if bar is not None:
                    bar.update(len(batch))
            if bar is not None:
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


# --------------------------------------------------------------------------------------------------
# public entry points


def dissect(
    model: Any,
    layer: str | Sequence[str],
    concepts: Any = "generated",
    quantile: float = DEFAULT_QUANTILE,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = True,
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
    the rotations (seed 002 asks for repeats with mean and std rather than one rotation). All bases (and
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
    """Seed 002's robustness experiments: dissect ``layer`` on the original images and again under each
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
