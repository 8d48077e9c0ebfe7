"""Context use: how much of a decision rests on the object and how much on its surroundings (Lapuschkin et al., CVPR 2016).

With a box or a mask per sample, relevance splits into the part inside the object and the part outside
it (Lapuschkin et al., CVPR 2016: "importance of context = relevance outside bbox / relevance inside
bbox"). Per sample and per class this module reports

* ``inside`` and ``outside``: the summed relevance (positive part by default) in and out of the object;
* ``context``: ``outside / inside``, the seed's importance of context;
* ``outside_share``: ``outside / (inside + outside)``, the same as a fraction in [0, 1];
* ``density_ratio``: relevance per pixel outside over relevance per pixel inside, which does not grow
  just because the object is small;
* ``area``: the object's share of the image.

>>> result = unmask.analyze.context.context_use(store)          # boxes or masks come from the store
>>> result.per_class[0]["context"], result.outside_share[:5]
>>> context_use(heatmaps, boxes=boxes, labels=labels)           # (N, H, W) and (N, 4) x0, y0, x1, y1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..evaluate.localization import box_mask

__all__ = ["ContextResult", "context_use"]

SIGNS = ("positive", "absolute", "signed")


@dataclass
class ContextResult:
    """Per-sample and per-class context use (see the module docstring for the quantities)."""

    inside: np.ndarray
    outside: np.ndarray
    area: np.ndarray
    labels: np.ndarray
    sign: str
    classes: list[str] = field(default_factory=list)

    @property
    def context(self) -> np.ndarray:
        """``outside / inside`` per sample (``inf`` where nothing inside is relevant)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.inside > 0, self.outside / np.where(self.inside > 0, self.inside, 1), np.inf)

    @property
    def outside_share(self) -> np.ndarray:
        """``outside / (inside + outside)`` per sample (``nan`` where both are 0)."""
        total = self.inside + self.outside
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, self.outside / np.where(total > 0, total, 1), np.nan)

    @property
    def density_ratio(self) -> np.ndarray:
        """Relevance per pixel outside over relevance per pixel inside."""
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = self.inside / np.maximum(self.area, 1e-12)
            outside = self.outside / np.maximum(1 - self.area, 1e-12)
            return np.where(inside > 0, outside / np.where(inside > 0, inside, 1), np.inf)

    def summary(self, members: np.ndarray | None = None) -> dict[str, Any]:
        """Means over the selected samples: inside, outside, context (ratio of the sums), shares, area."""
        members = np.arange(len(self.inside)) if members is None else np.asarray(members)
        inside, outside = self.inside[members], self.outside[members]
        share = self.outside_share[members]
        finite = share[np.isfinite(share)]
        density = self.density_ratio[members]
        density = density[np.isfinite(density)]
        total_in, total_out = float(inside.sum()), float(outside.sum())
        return {
            "samples": int(len(members)),
            "inside": float(inside.mean()) if len(members) else None,
            "outside": float(outside.mean()) if len(members) else None,
            "context": total_out / total_in if total_in > 0 else None,
            "outside_share": float(finite.mean()) if len(finite) else None,
            "outside_share_median": float(np.median(finite)) if len(finite) else None,
            "density_ratio_median": float(np.median(density)) if len(density) else None,
            "area": float(self.area[members].mean()) if len(members) else None,
        }

    @property
    def per_class(self) -> dict[int, dict[str, Any]]:
        """:meth:`summary` for every label, keyed by the class index."""
        out = {}
        for label in np.unique(self.labels):
            row = self.summary(np.flatnonzero(self.labels == label))
            if 0 <= label < len(self.classes):
                row["name"] = self.classes[label]
            out[int(label)] = row
        return out

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sign": self.sign,
            "overall": self.summary(),
            "per_class": {str(k): v for k, v in self.per_class.items()},
        }
        if arrays:
            out["inside"] = self.inside.tolist()
            out["outside"] = self.outside.tolist()
            out["area"] = self.area.tolist()
        return out


def _resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    import torch

    if masks.shape[-2:] == (height, width):
        return masks.astype(bool)
    resized = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(masks.astype(np.float32)).unsqueeze(1), (height, width))
    return resized.squeeze(1).numpy() >= 0.5


def _split(maps: np.ndarray, inside_mask: np.ndarray, sign: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if sign == "positive":
        maps = np.maximum(maps, 0)
    elif sign == "absolute":
        maps = np.abs(maps)
    inside = (maps * inside_mask).reshape(len(maps), -1).sum(1)
    outside = (maps * ~inside_mask).reshape(len(maps), -1).sum(1)
    area = inside_mask.reshape(len(maps), -1).mean(1)
    return inside, outside, area


def context_use(
    relevance: Any,
    boxes: Any = None,
    masks: Any = None,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    sign: str = "positive",
    frame: tuple[int, int] | None = None,
    select: Any = None,
    classes: Sequence[str] | None = None,
    chunk: int = 1024,
) -> ContextResult:
    """Relevance inside vs outside each sample's box or mask.

    ``relevance``: ``(N, H, W)`` or ``(N, C, H, W)`` tensor/array, or a :class:`unmask.store.Store`
    (relevance "full" or "sum", read in slices; boxes, masks and labels come from the store unless
    given). ``boxes``: ``(N, 4)`` x0, y0, x1, y1 (x1, y1 exclusive) in ``frame`` pixels (default the
    heatmap's size; a store uses its input size); ``masks``: ``(N, H', W')`` booleans, resized to the
    heatmap when needed. Masks win when both are given. ``sign``: which relevance counts:
    ``"positive"`` (default), ``"absolute"`` or ``"signed"``.
    """
    from ..store import Store

    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")
    if isinstance(relevance, Store):
        store = relevance
        positions = store.positions(select)
        use_store_masks = False
        if masks is None and boxes is None:
            if "mask" in store.fields:
                use_store_masks = True
            elif "box" in store.fields:
                boxes = store.field("box")[positions]
            else:
                raise ValueError(f"{store.path}: the store has neither boxes nor masks; pass boxes= or masks=")
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64)
        if frame is None and store.input_shape:
            frame = tuple(store.input_shape[-2:])
        labels = store.labels[positions] if labels is None else np.asarray(labels)
        classes = store.classes if classes is None else classes
        ins, outs, areas = [], [], []
        done = 0
        for block_positions, values in store.iter_relevance(positions, chunk=chunk):
            maps = values.sum(1) if values.ndim == 4 else values
            height, width = maps.shape[-2:]
            count = len(block_positions)
            if use_store_masks:
                inside_mask = _resize_masks(store.read("mask", block_positions), height, width)
            elif masks is not None:
                inside_mask = _resize_masks(np.asarray(masks)[done : done + count], height, width)
            else:
                inside_mask = box_mask(boxes[done : done + count], (height, width), frame=frame).numpy()
            i, o, a = _split(maps, inside_mask, sign)
            ins.append(i)
            outs.append(o)
            areas.append(a)
            done += count
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
        return ContextResult(cat(ins), cat(outs), cat(areas), np.asarray(labels), sign, list(classes or []))

    import torch

    maps = relevance.detach().cpu().numpy() if isinstance(relevance, torch.Tensor) else np.asarray(relevance, dtype=np.float64)
    if maps.ndim == 4:
        maps = maps.sum(1)
    if maps.ndim != 3:
        raise ValueError(f"relevance must be shaped (N, H, W) or (N, C, H, W), got {maps.shape}")
    n, height, width = maps.shape
    if select is not None:
        pick = np.asarray(select)
        pick = np.flatnonzero(pick) if pick.dtype == bool else pick
    else:
        pick = np.arange(n)
    maps = maps[pick]
    if masks is None and boxes is None:
        raise ValueError("context use needs boxes= (N, 4) or masks= (N, H, W)")
    if masks is not None:
        masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if masks.ndim != 3 or len(masks) != n:
            raise ValueError(f"masks must be shaped (N, H, W) with N = {n}, got {masks.shape}")
        inside_mask = _resize_masks(masks[pick], height, width)
    else:
        boxes = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes, dtype=np.float64)
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must be shaped (N, 4) = ({n}, 4) as x0, y0, x1, y1, got {boxes.shape}")
        inside_mask = box_mask(boxes[pick], (height, width), frame=frame).numpy()
    labels_array = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels).reshape(-1)
    if len(labels_array) != n:
        raise ValueError(f"labels has {len(labels_array)} entries for {n} heatmaps")
    inside, outside, area = _split(maps, inside_mask, sign)
    return ContextResult(inside, outside, area, labels_array[pick], sign, list(classes or []))
