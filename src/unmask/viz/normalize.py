"""Per-sample normalisation of heatmaps before colouring."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

MODES = ("symmetric", "maxabs", "minmax")
_AXES = (-2, -1)


def as_array(values: Any) -> np.ndarray:
    """A floating numpy array from a tensor or array-like (float64 stays float64, the rest becomes float32)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype != torch.float64:
            values = values.float()
        return values.numpy()
    array = np.asarray(values)
    return array if array.dtype == np.float64 else array.astype(np.float32)


def normalize(heatmap: Any, mode: str = "symmetric", percentile: float | None = None) -> np.ndarray:
    """Scale each ``(H, W)`` map of a ``(H, W)`` or ``(B, H, W)`` heatmap on its own; float32 result.

    Modes:
        ``symmetric``: divide by ``max |R|`` into ``[-1, 1]``; zero stays zero, signs are kept.
        ``maxabs``: the same scale, clipped to ``[0, 1]`` (for non-negative maps; negatives become 0).
        ``minmax``: ``(R - min) / (max - min)`` into ``[0, 1]``.

    ``percentile`` (e.g. 99.5) replaces the maximum by that percentile of ``|R|`` (``minmax``: of ``R``,
    and the minimum by the ``100 - percentile`` one), so a few extreme values saturate instead of
    darkening the rest; where that percentile is zero (a sparse map) the full range is used. All-zero
    maps give zeros (``minmax``: any constant map does), never NaN.
    """
    array = as_array(heatmap)
    if array.ndim not in (2, 3):
        raise ValueError(f"heatmap must be (H, W) or (B, H, W), got shape {array.shape}; sum channels first")
    if array.size == 0:
        raise ValueError(f"heatmap is empty, shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("heatmap contains NaN or Inf values")
    if mode not in MODES:
        raise ValueError(f"unknown normalisation mode {mode!r}; choose one of {', '.join(MODES)}")
    if percentile is not None and not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if mode == "minmax":
        low = np.min(array, axis=_AXES, keepdims=True)
        high = np.max(array, axis=_AXES, keepdims=True)
        if percentile is not None:
            # A zero percentile span (a sparse map) falls back to the full range.
            p_low = np.percentile(array, 100.0 - percentile, axis=_AXES, keepdims=True)
            p_high = np.percentile(array, percentile, axis=_AXES, keepdims=True)
            low, high = np.where(p_high > p_low, p_low, low), np.where(p_high > p_low, p_high, high)
        span = high - low
        return np.clip((array - low) / np.where(span > 0, span, 1), 0, 1).astype(np.float32)
    magnitude = np.abs(array)
    scale = np.max(magnitude, axis=_AXES, keepdims=True)
    if percentile is not None:
        # A zero percentile (a sparse map) falls back to the maximum.
        clipped = np.percentile(magnitude, percentile, axis=_AXES, keepdims=True)
        scale = np.where(clipped > 0, clipped, scale)
    scaled = array / np.where(scale > 0, scale, 1)
    return np.clip(scaled, -1 if mode == "symmetric" else 0, 1).astype(np.float32)
