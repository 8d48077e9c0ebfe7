"""How every report draws relevance: red positive, blue negative, the top 0.5 % of |relevance| saturated;
overlays over a grayscale copy of the input, opaque where the relevance is strong."""
from __future__ import annotations

from typing import Any

__all__ = ["HEATMAP_STYLE", "OVERLAY_STYLE"]

#: Keyword arguments of :func:`unmask.viz.heatmap` for report pictures.
HEATMAP_STYLE: dict[str, Any] = {"cmap": "bwr", "percentile": 99.5}
#: Keyword arguments of :func:`unmask.viz.overlay` for report pictures.
OVERLAY_STYLE: dict[str, Any] = {**HEATMAP_STYLE, "alpha": "relevance", "gray": True}
