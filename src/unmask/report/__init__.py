"""Reports of explanations: atomic files and the HTML page ``unmask explain`` writes.

Every HTML page unmask writes (explain, evaluate, spray, dissect, prototype, compare) is built on the one
skeleton in :mod:`unmask.report.page`. The pictures (heatmaps, overlays, comparison grids) come from
:mod:`unmask.viz`.
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
