"""Pictures and the HTML page of a dissection: top images per unit with masks, bar charts, tables.

Everything is numpy and Pillow; the bar chart of unique detectors is drawn with matplotlib when it is
installed (``pip install unmask[viz]``) and as plain HTML bars otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.concepts import ConceptDataset
from .._io import write_bytes, write_json, write_png
from .._utils.deprecation import renamed
from .._utils.progress import Progress, progress_bar
from ..report.page import escape, figure_png, image, number, page, percent, write_page
from .dissect import AxisAlignmentResult, DissectionResult, RobustnessResult

__all__ = ["bar_chart", "render_page", "unit_strip", "write_report"]

#: Colour of the outline of the unit's region and of its concept's label mask.
UNIT_COLOR = (255, 210, 0)
LABEL_COLOR = (0, 220, 255)
CATEGORY_COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    padded = np.pad(mask, 1, mode="constant", constant_values=False)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def unit_tile(
    pixels: torch.Tensor, unit_map: np.ndarray, threshold: float, label_mask: np.ndarray | None, size: int = 112
) -> Image.Image:
    """One top image: the region where the unit is above its threshold bright and outlined (yellow), the
    rest dimmed, and the unit's concept outlined (cyan) where the image has it."""
    h, w = pixels.shape[-2:]
    up = F.interpolate(torch.as_tensor(unit_map, dtype=torch.float32)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    region = (up > threshold).numpy()
    rgb = pixels.permute(1, 2, 0).numpy().astype(np.float32)
    shown = np.where(region[..., None], rgb, rgb * 0.25 + 0.05)
    image = Image.fromarray(np.clip(np.rint(shown * 255), 0, 255).astype(np.uint8))
    scale = size / max(h, w)
    if scale != 1:
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    array = np.array(image)
    big_region = np.array(Image.fromarray(region.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
    array[_outline(big_region)] = UNIT_COLOR
    if label_mask is not None and label_mask.any():
        big_label = np.array(Image.fromarray(label_mask.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
        array[_outline(big_label)] = LABEL_COLOR
    return Image.fromarray(array)


def unit_strip(result: DissectionResult, dataset: ConceptDataset, unit: int, count: int = 6, size: int = 112) -> Image.Image:
    """The unit's top-activating images side by side (see :func:`unit_tile`), from ``result.top_maps``."""
    record = result.units[unit]
    if result.top_maps is None or not record.top_images:
        raise ValueError("the result keeps no top images (dissect with top_images > 0)")
    label_number = _label_number(dataset, record.label, record.category)
    tiles = []
    for j, index in enumerate(record.top_images[:count]):
        sample = dataset[index]
        label_mask = None
        if label_number is not None:
            planes = sample.planes.numpy()
            label_mask = (planes == label_number).any(0) if planes.size else None
            if label_number in sample.image_labels.tolist():
                label_mask = None  # a whole-image label: nothing to outline
        tiles.append(unit_tile(sample.image, result.top_maps[unit, j], record.threshold, label_mask, size))
    padding = 4
    strip = Image.new("RGB", (len(tiles) * (size + padding) - padding, size), "white")
    for j, tile in enumerate(tiles):
        strip.paste(tile, (j * (size + padding), (size - tile.height) // 2))
    return strip


def _label_number(dataset: ConceptDataset, label: str, category: str) -> int | None:
    for position, (name, cat) in enumerate(zip(dataset.labels, dataset.label_category)):
        if name == label and cat == category:
            return position
    return None


def bar_chart(results: Sequence[DissectionResult], path: str | os.PathLike[str]) -> Path | None:
    """A PNG bar chart of unique detectors per category, one group of bars per layer; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    categories = list(dict.fromkeys(c for r in results for c in r.categories))
    layers = [r.layer for r in results]
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 + 0.9 * len(layers) * max(1, len(categories)) / 2), 3.2), dpi=110)
    width = 0.8 / max(1, len(categories))
    x = np.arange(len(layers))
    for k, category in enumerate(categories):
        values = [r.unique_detectors.get(category, 0) for r in results]
        bars = axis.bar(x + (k - (len(categories) - 1) / 2) * width, values, width, label=category, color=CATEGORY_COLORS[k % len(CATEGORY_COLORS)])
        axis.bar_label(bars, fontsize=7)
    axis.set_xticks(x, layers, rotation=20 if len(layers) > 4 else 0, fontsize=8)
    axis.set_ylabel("unique detectors")
    axis.set_title("unique detectors per category", fontsize=10)
    axis.legend(fontsize=8, frameon=False)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    png = figure_png(figure)
    plt.close(figure)
    return write_bytes(path, png)


def _html_bars(results: Sequence[DissectionResult]) -> str:
    """The same chart as plain HTML (no matplotlib)."""
    categories = list(dict.fromkeys(c for r in results for c in r.categories))
    top = max([1] + [v for r in results for v in r.unique_detectors.values()])
    rows = []
    for r in results:
        bars = "".join(
            f'<div class="bar" title="{escape(c)}: {r.unique_detectors.get(c, 0)}" style="width:{180 * r.unique_detectors.get(c, 0) / top:.0f}px;'
            f'background:{CATEGORY_COLORS[k % len(CATEGORY_COLORS)]}">{r.unique_detectors.get(c, 0)}</div>'
            for k, c in enumerate(categories)
        )
        rows.append(f"<tr><td>{escape(r.layer)}</td><td>{bars}</td></tr>")
    legend = " ".join(f'<span style="color:{CATEGORY_COLORS[k % len(CATEGORY_COLORS)]}">&#9632; {escape(c)}</span>' for k, c in enumerate(categories))
    return f'<table class="bars"><caption>unique detectors per category &middot; {legend}</caption>{"".join(rows)}</table>'


_CSS = """
h2 { margin-top: 2rem; }
tr.detector td { font-weight: 600; }
.bar { display: block; height: 1rem; margin: 1px 0; color: white; font-size: .7rem; padding-left: 3px; min-width: 1.2rem; }
img.strip { display: block; max-width: 100%; height: auto; }
.legend span { margin-right: 1rem; }
"""


def render_page(
    results: Sequence[DissectionResult],
    meta: dict[str, Any],
    strips: dict[str, dict[int, str]],
    chart: str | None,
    axis: Sequence[AxisAlignmentResult] = (),
    robustness: Sequence[RobustnessResult] = (),
) -> str:
    """The report page; ``strips[layer][unit]`` are relative paths of unit pictures, ``chart`` the bar chart's."""
    categories = list(dict.fromkeys(c for r in results for c in r.categories))
    parts = [
        f"<h1>Network dissection: {escape(str(meta.get('model', '')))}</h1>",
        f'<p class="meta">{escape(str(meta.get("description", "")))}</p>',
        f'<p class="meta">concepts: {escape(str(meta.get("concepts", "")))} &middot; quantile {meta.get("quantile")} &middot; '
        f'IoU threshold {meta.get("iou_threshold")} &middot; {meta.get("seconds", 0):.1f} s on {escape(str(meta.get("device", "")))} &middot; '
        '<a href="dissect.json">dissect.json</a></p>',
        "<nav>" + "".join(f'<a href="#{_anchor(r.layer)}">{escape(r.layer)}</a>' for r in results) + "</nav>",
        "<h2>Detectors per layer</h2>",
    ]
    head = "".join(f"<th>{escape(c)}</th>" for c in categories)
    rows = "".join(
        f"<tr><td>{escape(r.layer)}</td><td class=num>{len(r.units)}</td><td class=num>{r.activation_size[0]}x{r.activation_size[1]}</td>"
        f"<td class=num>{len(r.detectors)}</td>"
        + "".join(f"<td class=num>{r.unique_detectors.get(c, 0)}</td>" for c in categories)
        + f"<td class=num>{sum(r.unique_detectors.values())}</td></tr>"
        for r in results
    )
    parts.append(
        f"<table><tr><th>layer</th><th>units</th><th>map</th><th>detectors</th>{head}<th>unique (all)</th></tr>{rows}</table>"
        "<p class=meta>columns per category: unique detectors, the number of distinct concepts some unit detects (IoU above the threshold).</p>"
    )
    parts.append(image(chart, "bar chart of unique detectors per category and layer") if chart else _html_bars(results))

    if axis:
        keys = list(axis[0].counts)
        head = "".join(f"<th>{escape(k)}</th>" for k in keys)
        rows = "".join(
            f"<tr><td>{escape(a.layer)}</td><td>unit basis</td>" + "".join(f"<td class=num>{a.counts[k]}</td>" for k in keys) + "</tr>"
            f"<tr><td></td><td>{len(a.rotated)} random rotations (mean &plusmn; std)</td>"
            + "".join(f"<td class=num>{a.mean[k]:.1f} &plusmn; {a.std[k]:.1f}</td>" for k in keys) + "</tr>"
            for a in axis
        )
        parts.append(
            "<h2>Axis alignment</h2><p class=meta>Unique detectors of the units themselves and of the same layer in random "
            f"orthogonal bases. Fewer in rotated bases: the units align with concepts.</p><table><tr><th>layer</th><th>basis</th>{head}</tr>{rows}</table>"
        )
    if robustness:
        parts.append("<h2>Robustness</h2><p class=meta>Unique detectors (all categories) on the original images and under each "
                     "perturbation; kept: the share of the original detector units still detecting the same concept.</p>")
        for rob in robustness:
            kept = rob.kept
            rows = f"<tr><td>original</td><td class=num>{sum(rob.baseline.unique_detectors.values())}</td><td class=num>{len(rob.baseline.detectors)}</td><td></td></tr>"
            rows += "".join(
                f"<tr><td>{escape(name)}</td><td class=num>{sum(r.unique_detectors.values())}</td><td class=num>{len(r.detectors)}</td>"
                f"<td class=num>{percent(kept[name], 0)}</td></tr>"
                for name, r in rob.perturbed.items()
            )
            parts.append(f"<h3>{escape(rob.layer)}</h3><table><tr><th>images</th><th>unique detectors</th><th>detector units</th><th>kept</th></tr>{rows}</table>")

    for r in results:
        parts.append(f'<h2 id="{_anchor(r.layer)}">{escape(r.layer)}</h2>')
        parts.append(f'<p class=meta>{escape(r.summary())}. Quantile estimate: {escape(r.quantile_method)}. '
                     '<span class=legend><span style="color:#c9a400">&#9632; unit above threshold</span>'
                     '<span style="color:#00b8d4">&#9632; concept label</span></span></p>')
        shown = strips.get(r.layer, {})
        rows = []
        for unit in r.top(max(len(shown), 20)):
            css = ' class="detector"' if unit.is_detector else ""
            picture = image(shown[unit.unit], f"unit {unit.unit}: top images", css="strip") if unit.unit in shown else ""
            rows.append(
                f"<tr{css}><td class=num>{unit.unit}</td><td>{escape(unit.label)}</td><td>{escape(unit.category)}</td>"
                f"<td class=num>{number(unit.iou, 3, 'f')}</td><td>{picture}</td></tr>"
            )
        parts.append("<table><tr><th>unit</th><th>concept</th><th>category</th><th>IoU</th><th>top images</th></tr>" + "".join(rows) + "</table>")
    return page(f"unmask dissect: {meta.get('model', '')}", parts, css=_CSS)


def _anchor(layer: str) -> str:
    return "layer-" + "".join(ch if ch.isalnum() else "-" for ch in layer)


def _folder(layer: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in layer) or "layer"


def write_report(
    out: str | os.PathLike[str],
    results: Sequence[DissectionResult],
    dataset: ConceptDataset,
    meta: dict[str, Any],
    data: dict[str, Any],
    units_shown: int = 24,
    images_per_unit: int = 6,
    axis: Sequence[AxisAlignmentResult] = (),
    robustness: Sequence[RobustnessResult] = (),
    progress: Progress = False,
) -> Path:
    """Write ``out``/dissect.json (``data``), the bar chart, one picture per shown unit
    (``out/<layer>/unit_0007.png``: the best ``units_shown`` units by IoU) and ``out/index.html``;
    ``progress`` counts the pictures (``True``, ``False`` or a callable)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "dissect.json", data)
    chart = bar_chart(results, out / "detectors.png")
    strips: dict[str, dict[int, str]] = {}
    total = sum(min(units_shown, len(r.units)) for r in results if r.top_maps is not None) if units_shown > 0 else 0
    with progress_bar(progress if total else False, total, "pictures", "unit") as bar:
        for r in results:
            folder = _folder(r.layer)
            strips[r.layer] = {}
            if r.top_maps is None or units_shown <= 0:
                continue
            for unit in r.top(units_shown):
                relative = f"{folder}/unit_{unit.unit:04d}.png"
                write_png(out / relative, unit_strip(r, dataset, unit.unit, images_per_unit))
                strips[r.layer][unit.unit] = relative
                bar.update(1)
    return write_page(out, render_page(results, meta, strips, "detectors.png" if chart else None, axis, robustness))


__getattr__ = renamed(
    __name__, {"UNIT_COLOUR": "UNIT_COLOR", "LABEL_COLOUR": "LABEL_COLOR", "CATEGORY_COLOURS": "CATEGORY_COLORS"}, globals()
)
