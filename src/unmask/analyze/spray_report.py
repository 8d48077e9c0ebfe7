"""The SpRAy report page: ``DIR/index.html`` with its pictures beside it.

It shows the eigenvalue spectrum with the gap that picked the number of clusters, the 2-D embedding
coloured by cluster (and by the ground truth when there is one), every cluster's size, mean heatmap and
the samples nearest its centre with their heatmaps over the image, the verification of a shortcut
(removing / pasting it) and context use inside vs outside the object when the data has boxes or masks.
Plots use matplotlib (imported only here, with the Agg backend); pictures are written atomically.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._io import write_bytes, write_png
from .spray import DENSITY_CLUSTERERS
from ..report.page import escape, figure_png, image as img, number, page, percent, table, td, write_page

__all__ = ["write_report"]

_CSS = """
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.facts { display: flex; flex-wrap: wrap; gap: .6rem; margin: .9rem 0; }
.fact { background: #f4f6f8; border-radius: 8px; padding: .5rem .9rem; min-width: 120px; }
.fact b { display: block; font-size: 1.25rem; } .fact span { font-size: .75rem; color: #555; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
.cluster { border: 1px solid #ddd; border-radius: 8px; padding: .6rem .9rem; margin: .8rem 0; }
.cluster h3 { margin-top: .3rem; }
.cluster .row { display: flex; gap: .9rem; align-items: flex-start; flex-wrap: wrap; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tile { text-align: center; font-size: .7rem; color: #555; } .tile img { display: block; image-rendering: pixelated; border: 1px solid #eee; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: middle; }
p.explain { font-size: .85rem; color: #666; }
"""

_PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
]


def _clusters_caption(result: Any) -> str:
    """Where the number of clusters came from: the eigengap, --clusters, or a density clusterer."""
    clusterer = result.settings.get("clusterer", "kmeans")
    if clusterer in DENSITY_CLUSTERERS:
        noise = int((result.labels < 0).sum())
        return f"clusters (found by {clusterer}{f'; {noise} noise samples' if noise else ''})"
    if result.n_clusters == result.suggested_n_clusters:
        return "clusters (eigengap)"
    return f"clusters (eigengap: {result.suggested_n_clusters})"


def _colour(label: int) -> str:
    return "#999999" if label < 0 else _PALETTE[label % len(_PALETTE)]


def _number(value: Any, digits: int = 3) -> str:
    return number(value, digits, "auto")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure: Any, path: Path) -> None:
    write_bytes(path, figure_png(figure, dpi=110, tight=True))


def _eigen_plot(result: Any, path: Path) -> None:
    plt = _pyplot()
    values = np.asarray(result.eigenvalues)
    shown = values[: min(len(values), max(20, result.n_clusters + 6))]
    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    axis.plot(np.arange(1, len(shown) + 1), shown, "o-", color="#1f77b4", markersize=4)
    c = result.n_clusters
    if 1 <= c < len(shown):
        axis.axvspan(c + 0.05, c + 0.95, color="#d62728", alpha=0.15, label=f"gap after {c} (picks {c} clusters)")
        axis.legend(loc="upper left", fontsize=9)
    axis.set_xlabel("eigenvalue index (ascending)")
    axis.set_ylabel("eigenvalue of the normalised Laplacian")
    axis.set_title("Spectrum of the kNN graph")
    axis.grid(alpha=0.3)
    _save_figure(figure, path)
    plt.close(figure)


def _embedding_plot(result: Any, path: Path, truth: np.ndarray | None, truth_name: str | None) -> None:
    plt = _pyplot()
    coords = np.asarray(result.embedding)
    panels = 2 if truth is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False)
    size = 8 if len(coords) < 2000 else 2
    axis = axes[0, 0]
    for cluster in result.clusters:
        members = result.labels == cluster.label
        axis.scatter(coords[members, 0], coords[members, 1], s=size, color=_colour(cluster.label), label=f"cluster {cluster.label} ({cluster.size})", alpha=0.8, linewidths=0)
    axis.set_title("2-D embedding, coloured by SpRAy cluster")
    axis.legend(fontsize=8, markerscale=2, loc="best")
    axis.set_xticks([])
    axis.set_yticks([])
    if truth is not None:
        axis = axes[0, 1]
        for value, colour in zip(sorted(np.unique(truth)), ("#7f7f7f", "#d62728", "#2ca02c", "#1f77b4")):
            members = truth == value
            axis.scatter(coords[members, 0], coords[members, 1], s=size, color=colour, label=f"{truth_name} = {value:g} ({int(members.sum())})", alpha=0.8, linewidths=0)
        axis.set_title(f"the same, coloured by ground truth '{truth_name}'")
        axis.legend(fontsize=8, markerscale=2, loc="best")
        axis.set_xticks([])
        axis.set_yticks([])
    _save_figure(figure, path)
    plt.close(figure)


def _tile(path: str, caption: str, width: int) -> str:
    return f'<div class="tile">{img(path, caption, width=width)}{escape(caption)}</div>'


def write_report(
    out: str | os.PathLike[str],
    result: Any,
    store: Any = None,
    *,
    title: str = "SpRAy",
    subtitle: str = "",
    image: Callable[[int], Any] | None = None,
    heatmaps: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    truth_name: str | None = None,
    scores: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    samples_per_cluster: int = 8,
    tile_size: int = 96,
) -> Path:
    """Write ``out/index.html`` and its pictures for a :class:`~unmask.analyze.spray.SprayResult`.

    ``store``: the store the heatmaps came from (the full-resolution heatmaps of the shown samples are
    read from it), or ``heatmaps``: the analysed heatmaps ``(N, H, W)`` themselves; ``image(index)`` returns the data set's sample ``index`` as a PIL image (without it
    only heatmaps are shown); ``truth``: ground-truth groups per analysed sample (``scores`` the numbers
    measured against it); ``verification`` and ``context``: JSON-like dicts shown as tables.
    """
    from ..viz import heatmap as heatmap_image
    from ..viz import overlay

    out = Path(out)
    pictures = out / "img"
    pictures.mkdir(parents=True, exist_ok=True)
    _eigen_plot(result, pictures / "eigenvalues.png")
    if result.embedding is not None:
        _embedding_plot(result, pictures / "embedding.png", truth, truth_name)

    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(subtitle)}</p>',
        '<div class="facts">',
    ]
    c = result.n_clusters
    gap = result.eigenvalues[c] - result.eigenvalues[c - 1] if 1 <= c < len(result.eigenvalues) else None
    facts = [
        (str(len(result.labels)), "heatmaps analysed"),
        (str(result.n_clusters), _clusters_caption(result)),
        (_number(gap, 4), f"eigengap λ{c + 1} − λ{c}"),
        (str(result.k), "neighbours (k)"),
    ]
    if scores:
        if scores.get("ari") is not None:
            facts.append((_number(scores["ari"]), f"adjusted Rand index vs '{truth_name}'"))
        if scores.get("best_cluster") is not None:
            facts.append((f"{_number(scores['recall'], 2)} / {_number(scores['precision'], 2)}", f"recall / precision of cluster {scores['best_cluster']}"))
    for value, label in facts:
        parts.append(f'<div class="fact"><b>{value}</b><span>{escape(label)}</span></div>')
    parts.append("</div>")

    parts.append('<h2>Spectrum and embedding</h2><div class="plots">')
    parts.append(img("img/eigenvalues.png", "eigenvalues", css="plot"))
    if result.embedding is not None:
        parts.append(img("img/embedding.png", "embedding", css="plot"))
    parts.append("</div>")
    eig = ", ".join(_number(v, 4) for v in result.eigenvalues[: min(12, len(result.eigenvalues))])
    parts.append(f'<p class="explain">Smallest eigenvalues: {eig}. Settings: {escape(json.dumps(result.settings))}.</p>')

    if verification:
        parts.append("<h2>Verification of the shortcut</h2>")
        name = verification.get("class_name", verification.get("class"))
        parts.append(
            '<p class="explain">As in Lapuschkin et al. (2019): the same images with the artefact removed, and images '
            f"of other classes with the artefact pasted in. Scores are those of class <b>{escape(name)}</b>.</p>"
        )
        rows = []
        for key, label in (("removal", "artefact removed from the images that have it"), ("pasting", "artefact pasted into other classes' images")):
            row = verification.get(key)
            if not row:
                continue
            cells = [_number(row["logit_before"], 2), _number(row["logit_after"], 2), f"<b>{_number(row['logit_change'], 2)}</b>",
                     _number(row["probability_before"]), _number(row["probability_after"]),
                     _number(row["predicted_as_class_before"]), _number(row["predicted_as_class_after"])]
            rows.append(f"<tr>{td(label)}{td(_number(row['images']), num=True)}" + "".join(td(v, num=True) for v in cells) + "</tr>")
        parts.append(table(["experiment", "images", "logit before", "logit after", "change", "probability before",
                            "probability after", "predicted as class before", "after"], rows))

    parts.append("<h2>Clusters</h2>")
    rows_by_cluster = (context or {}).get("per_cluster", {})
    for cluster in result.clusters:
        members = np.flatnonzero(result.labels == cluster.label)
        label_name = "noise" if cluster.label < 0 else f"cluster {cluster.label}"
        parts.append(f'<div class="cluster"><h3><span class="swatch" style="background:{_colour(cluster.label)}"></span>{label_name}: '
                     f"{cluster.size} samples ({percent(cluster.fraction)})</h3>")
        notes = []
        if truth is not None:
            values, counts = np.unique(truth[members], return_counts=True)
            notes.append(", ".join(f"{truth_name} = {v:g}: {n}" for v, n in zip(values, counts)))
        ctx = rows_by_cluster.get(str(cluster.label))
        if ctx and ctx.get("outside_share") is not None:
            notes.append(f"relevance outside the object: {ctx['outside_share']:.0%}")
        if notes:
            parts.append(f'<p class="explain">{escape("; ".join(notes))}</p>')
        parts.append('<div class="row">')
        mean_name = f"img/cluster{cluster.label}_mean.png"
        write_png(out / mean_name, heatmap_image(cluster.mean_heatmap, size=tile_size + 32))
        parts.append(_tile(mean_name, "mean heatmap (pooled)", tile_size + 32))
        parts.append('<div class="tiles">')
        shown = cluster.nearest[:samples_per_cluster]
        maps = _sample_heatmaps(store, heatmaps, result, shown)
        plain = []
        for j, position in enumerate(shown):
            index = int(result.indices[position])
            picture = image(index) if image is not None else None
            name = f"img/cluster{cluster.label}_{index}.png"
            if picture is not None:
                scale = max(1, tile_size // max(picture.size))
                picture = picture.resize((picture.size[0] * scale, picture.size[1] * scale), resample=0)
                plain_name = f"img/cluster{cluster.label}_{index}_image.png"
                write_png(out / plain_name, picture)
                plain.append(_tile(plain_name, f"image #{index}", tile_size))
            if maps is not None and picture is not None:
                write_png(out / name, overlay(picture, maps[j]))
            elif maps is not None:
                write_png(out / name, heatmap_image(maps[j], size=tile_size))
            else:
                continue
            parts.append(_tile(name, f"#{index}", tile_size))
        parts.append("</div></div>")
        if plain:
            parts.append('<div class="tiles" style="margin-top:6px">' + "".join(plain) + "</div>")
        parts.append("</div>")

    if context and context.get("per_class"):
        parts.append("<h2>Context use</h2>")
        parts.append(
            '<p class="explain">Positive relevance inside vs outside each sample\'s object (box or mask), as in Lapuschkin et al. (CVPR 2016): '
            "importance of context = relevance outside / relevance inside. The density ratio compares relevance per pixel.</p>"
        )
        rows = []
        for title_key, groups in (("class", context.get("per_class", {})), ("cluster", context.get("per_cluster", {}))):
            for key, row in groups.items():
                cells = [_number(row["samples"])] + [_number(row[k], 2) for k in
                                                     ("inside", "outside", "context", "outside_share", "density_ratio_median", "area")]
                rows.append(f"<tr>{td(escape(row.get('name', f'{title_key} {key}')))}" + "".join(td(v, num=True) for v in cells) + "</tr>")
        parts.append(table(["group", "samples", "inside", "outside", "context (out / in)", "outside share",
                            "density ratio (median)", "object area"], rows))
    parts.append('<p class="explain">Written by unmask spray. Data: spray.json beside this page.</p>')
    return write_page(out, page(title, parts, css=_CSS))


def _sample_heatmaps(store: Any, heatmaps: np.ndarray | None, result: Any, positions: np.ndarray) -> np.ndarray | None:
    """Full-size heatmaps of the analysed samples at ``positions``: from the store, the given array, or none."""
    if store is not None:
        where = np.searchsorted(store.indices, result.indices[positions])
        return store.heatmaps(where, size=None)
    if heatmaps is not None:
        maps = np.asarray(heatmaps)[positions]
        return maps.sum(1) if maps.ndim == 4 else maps
    return None
