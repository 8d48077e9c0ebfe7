"""Does the relevance lie on the object? Relevance mass and rank accuracy (Arras et al. 2022), the pointing
game (Zhang et al. 2018) and the context-use ratio (Lapuschkin et al. 2016).

Masks are boolean ``(B, H, W)`` (or ``(H, W)`` / ``(1, H, W)`` for every image, or ``(B, 1, H, W)``); :func:`box_mask` turns
bounding boxes into masks. Relevance is summed over channels first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .._utils.validation import check_float
from ._common import Relevance, finite_mean, heatmap, result_dict

__all__ = ["LocalizationResult", "box_mask", "context_density", "pointing_game", "relevance_mass", "relevance_rank"]


@dataclass
class LocalizationResult:
    """One localisation score per image (NaN where the mask is empty or the score undefined)."""

    metric: str
    per_image: torch.Tensor
    higher_is_better: bool = True

    @property
    def value(self) -> float:
        """Mean over the images where the score is defined."""
        return finite_mean(self.per_image)

    def to_dict(self) -> dict[str, Any]:
        return result_dict(self, self.metric, ("value", "per_image", "higher_is_better"))


def box_mask(
    boxes: Any, size: tuple[int, int], device: torch.device | str | None = None, *, frame: tuple[int, int] | None = None
) -> torch.Tensor:
    """Boolean masks ``(B, H, W)`` for boxes ``(B, 4)`` (or one ``(4,)``) given as pixel coordinates
    ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive, in an image of ``frame = (H', W')`` pixels (default: ``size``)
    and scaled to ``size = (H, W)``. A pixel is inside when its centre is (so integer boxes cover exactly
    their pixels); boxes are clipped to the image, and a box with a NaN coordinate (no box) is empty."""
    boxes = torch.as_tensor(boxes, device=device)
    if boxes.dim() == 1:
        boxes = boxes.unsqueeze(0)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be shaped (B, 4) as (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    height, width = size
    frame_height, frame_width = frame if frame is not None else size
    dtype = torch.float32 if boxes.device.type == "mps" else torch.float64  # MPS has no float64
    boxes = boxes.to(dtype)
    ys = (torch.arange(height, device=boxes.device, dtype=dtype) + 0.5).view(1, -1, 1)
    xs = (torch.arange(width, device=boxes.device, dtype=dtype) + 0.5).view(1, 1, -1)
    x0, x1 = ((boxes[:, i] * (width / frame_width)).view(-1, 1, 1) for i in (0, 2))
    y0, y1 = ((boxes[:, i] * (height / frame_height)).view(-1, 1, 1) for i in (1, 3))
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def _mask(mask: Any, like: torch.Tensor) -> torch.Tensor:
    mask = torch.as_tensor(mask, device=like.device)
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask.expand(like.shape[0], -1, -1)
    if mask.shape != like.shape:
        raise ValueError(f"mask shaped {tuple(mask.shape)} does not match the heatmaps {tuple(like.shape)} "
                         "(expected (B, H, W), (B, 1, H, W) or (H, W))")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must be boolean (or hold only 0 and 1)")
        mask = mask.bool()
    return mask


def _maps(relevance: Relevance) -> torch.Tensor:
    return heatmap(relevance).double()


def relevance_mass(relevance: Relevance, mask: Any, positive: bool = True) -> LocalizationResult:
    """Relevance mass accuracy of Arras, Osman & Samek (2022), "CLEVR-XAI: a benchmark dataset for the
    ground truth evaluation of neural network explanations", Information Fusion 81:

        mass accuracy = R_within / R_total,   R_within = sum_{p in GT} R_p^+,   R_total = sum_p R_p^+,

    with only positive relevance ``R^+ = max(R, 0)`` counted, as in the paper. ``positive=False`` sums
    the signed relevance, which is what Quantus 0.6.0's ``RelevanceMassAccuracy`` computes although its
    docstring speaks of positive attributions. NaN for an empty mask or no positive relevance.
    """
    maps = _maps(relevance)
    mask = _mask(mask, maps)
    values = maps.clamp(min=0) if positive else maps
    within = (values * mask).flatten(1).sum(1)
    total = values.flatten(1).sum(1)
    score = within / torch.where(total != 0, total, torch.ones_like(total))
    score = torch.where((total != 0) & mask.flatten(1).any(1), score, torch.full_like(score, math.nan))
    return LocalizationResult("relevance_mass", score.cpu())


def relevance_rank(relevance: Relevance, mask: Any) -> LocalizationResult:
    """Relevance rank accuracy of Arras, Osman & Samek (2022): with ``K = |GT|`` the mask's size and
    ``P_top-K`` the ``K`` pixels of highest relevance,

        rank accuracy = |P_top-K ∩ GT| / |GT|.

    Ties at the K-th value are broken by pixel position (row by row). Agrees with Quantus 0.6.0's
    ``RelevanceRankAccuracy`` (which breaks ties by NumPy's argsort). NaN for an empty mask.
    """
    maps = _maps(relevance)
    mask = _mask(mask, maps)
    flat, gt = maps.flatten(1), mask.flatten(1)
    sizes = gt.sum(1)
    order = torch.sort(-flat, dim=1, stable=True).indices
    ranked = torch.gather(gt, 1, order)
    top = torch.arange(flat.shape[1], device=flat.device).unsqueeze(0) < sizes.unsqueeze(1)
    hits = (ranked & top).sum(1).double()
    score = hits / sizes.clamp(min=1).double()
    score = torch.where(sizes > 0, score, torch.full_like(score, math.nan))
    return LocalizationResult("relevance_rank", score.cpu())


def pointing_game(relevance: Relevance, mask: Any, tolerance: float = 15.0) -> LocalizationResult:
    """Pointing game of Zhang et al. (2018), "Top-down neural attention by excitation backprop", IJCV 126:
    a hit when the point of maximal relevance lies on the object, with a tolerance of ``tolerance`` pixels
    (15 in the paper): a hit if some maximal point is within that Euclidean distance of the mask. Hits are 1,
    misses 0; the value is the hit rate ``hits / (hits + misses)``.

    Quantus 0.6.0's ``PointingGame`` has no tolerance (``tolerance=0`` here gives its result: any maximal
    pixel inside the mask).
    """
    tolerance = check_float("tolerance", tolerance, minimum=0.0)
    maps = _maps(relevance)
    mask = _mask(mask, maps)
    target = mask
    radius = int(math.floor(tolerance))
    if radius > 0:
        offsets = torch.arange(-radius, radius + 1, device=maps.device, dtype=torch.float64)
        disk = (offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= tolerance ** 2
        grown = F.conv2d(mask.unsqueeze(1).double(), disk.double().view(1, 1, *disk.shape), padding=radius)
        target = grown[:, 0] > 0.5
    flat = maps.flatten(1)
    maxima = flat == flat.amax(1, keepdim=True)
    hit = (maxima & target.flatten(1)).any(1).double()
    hit = torch.where(mask.flatten(1).any(1), hit, torch.full_like(hit, math.nan))
    return LocalizationResult("pointing_game", hit.cpu())


def context_density(relevance: Relevance, mask: Any, positive: bool = False) -> LocalizationResult:
    """Per-pixel importance of context, after Lapuschkin et al. (2016), "Analyzing classifiers: Fisher vectors and deep
    neural networks", CVPR 2016 ("measure context use"): relevance per pixel outside the object's
    box over relevance per pixel inside,

        context density = ( 1/|P_out| sum_{q outside} R_q ) / ( 1/|P_in| sum_{p inside} R_p ).

    Above 1: the classifier draws more evidence per pixel from the context than from the object.
    ``positive=True`` counts only positive relevance (advisable for signed maps, where the sums can cancel).
    NaN where a side is empty or the inside holds no relevance. Lower is "more on the object".
    (:func:`unmask.analyze.context_use` gives the summed ratio ``outside / inside`` per sample and class,
    and this density as its ``density_ratio``.)
    """
    maps = _maps(relevance)
    mask = _mask(mask, maps)
    values = maps.clamp(min=0) if positive else maps
    flat, inside = values.flatten(1), mask.flatten(1)
    n_in, n_out = inside.sum(1).double(), (~inside).sum(1).double()
    mean_in = (flat * inside).sum(1) / n_in.clamp(min=1)
    mean_out = (flat * ~inside).sum(1) / n_out.clamp(min=1)
    ok = (n_in > 0) & (n_out > 0) & (mean_in != 0)
    ratio = mean_out / torch.where(ok, mean_in, torch.ones_like(mean_in))
    ratio = torch.where(ok, ratio, torch.full_like(ratio, math.nan))
    return LocalizationResult("context_density", ratio.cpu(), higher_is_better=False)
