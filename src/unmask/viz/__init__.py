"""Heatmaps people can read: colour maps, normalisation, images, overlays, grids and files.

>>> images = unmask.viz.heatmap(explanation.relevance)            # one PIL image per sample
>>> unmask.viz.to_png(unmask.viz.overlay(photo, explanation.heatmap()[0]), "cat.png")
"""
from __future__ import annotations

from . import colormaps
from .arrays import to_npy
from .explanations import render_explanation, save_explanation
from .normalize import normalize
from .render import colorize, grid, heatmap, overlay, to_image, to_png
from .styles import HEATMAP_STYLE, OVERLAY_STYLE

__all__ = [
    "HEATMAP_STYLE",
    "OVERLAY_STYLE",
    "colormaps",
    "colorize",
    "grid",
    "heatmap",
    "normalize",
    "overlay",
    "render_explanation",
    "save_explanation",
    "to_image",
    "to_npy",
    "to_png",
]
