"""Reports of explanations: pictures, atomic files and the HTML page ``unmask explain`` writes."""
from .files import write_bytes, write_json, write_npy, write_png, write_text
from .html import render_index, write_index
from .render import grid_image, heatmap_image, heatmap_values, overlay_image

__all__ = [
    "grid_image",
    "heatmap_image",
    "heatmap_values",
    "overlay_image",
    "render_index",
    "write_bytes",
    "write_index",
    "write_json",
    "write_npy",
    "write_png",
    "write_text",
]
