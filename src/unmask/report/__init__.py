"""Reports of explanations: atomic files and the HTML page ``unmask explain`` writes.

The pictures (heatmaps, overlays, comparison grids) come from :mod:`unmask.viz`.
"""
from .._io import write_bytes, write_json, write_npy, write_png, write_text
from .html import render_index, write_index

__all__ = [
    "render_index",
    "write_bytes",
    "write_index",
    "write_json",
    "write_npy",
    "write_png",
    "write_text",
]
