"""The comparison report: ``DIR/comparison.json`` (every number), ``DIR/index.html`` and its pictures.

The page shows the models side by side: a table of the headline numbers, the perturbation curves of
every model in one plot (:func:`unmask.evaluate.report.curves_figure_png`), bar charts of accuracy,
context use and SpRAy strategies per class, the contingency tables of the strategies, and a grid per
sample with the input and each model's heatmap (:func:`unmask.viz.grid`). Charts need matplotlib;
without it the page says so and keeps the tables.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..report.page import escape, figure_png, image, number, page, table, td, write_page
from .compare import Comparison

__all__ = ["render_page", "write_report"]

JSON_NAME = "comparison.json"

_CSS = """
h2 { border-bottom: 1px solid #ddd; }
.samples img { max-width: 100%; image-rendering: pixelated; display: block; margin: .2rem 0 .8rem; }
"""


def _bars_png(panels: list[tuple[str, Mapping[str, Mapping[str, Any]]]], dpi: int = 110) -> bytes:
    """One panel per ``(title, {model: {group: value}})``: grouped bars, one colour per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.6 * len(panels), 3.6), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, values_of) in zip(axes, panels):
        models = list(values_of)
        groups = sorted({g for row in values_of.values() for g in row}, key=lambda g: (g != "all", g))
        width = 0.8 / max(1, len(models))
        for i, model in enumerate(models):
            values = [values_of[model].get(g) for g in groups]
            heights = [v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0 for v in values]
            ax.bar(np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width, heights, width, label=model)
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure_png(figure)


def _strategy_table(comparison: Comparison) -> dict[str, dict[str, Any]]:
    return {
        name: {comparison.group_name(g): s.get("n_strategies") for g, s in model.strategies.items()}
        for name, model in comparison.models.items()
    }


def _sample_grids(comparison: Comparison, out: Path) -> list[dict[str, Any]]:
    """One grid per shown sample: the input as the first model sees it, then each model's heatmap."""
    from ..report import write_png
    from ..viz import grid, heatmap, to_image

    shown = comparison.shown.tolist()
    first = next(iter(comparison.models.values()))
    entries = []
    predicted = {name: model.predicted_names() for name, model in comparison.models.items()}
    for row, position in enumerate(shown):
        columns: dict[str, Any] = {"input": to_image(first.views[row])}
        for name, model in comparison.models.items():
            columns[name] = heatmap(model.heatmaps[position])
        picture = grid(columns, size=160)
        relative = f"samples/{position:05d}.png"
        write_png(out / relative, picture)
        predictions = {name: names[position] for name, names in predicted.items()}
        label = int(comparison.labels[position])
        entries.append({
            "position": position,
            "png": relative,
            "path": comparison.paths[position],
            "label": comparison.group_name(label) if label >= 0 else None,
            "tagged": None if comparison.tagged is None else bool(comparison.tagged[position]),
            "predictions": predictions,
        })
    return entries


def write_report(comparison: Comparison, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``comparison.json``, the pictures and ``index.html`` into ``out_dir``; returns the page's path."""
    from ..report import write_bytes, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = comparison.to_dict()
    write_json(out / JSON_NAME, data)
    pictures: dict[str, str] = {}
    notes: list[str] = []
    try:
        from ..evaluate.report import curves_figure_png

        curves = {name: {o: m[o] for o in ("morf", "lerf") if o in m} for name, m in data["models"].items()}
        if any(curves.values()):
            write_bytes(out / "aopc_curves.png", curves_figure_png(curves, score=comparison.settings["score"], title="region perturbation"))
            pictures["curves"] = "aopc_curves.png"
        panels = []
        if comparison.has_labels:
            panels.append(("accuracy", comparison.accuracy_table()))
        if data.get("context_use"):
            panels.append(("context use (outside share)", data["context_use"]["outside_share"]))
        strategies = _strategy_table(comparison)
        if any(v is not None for row in strategies.values() for v in row.values()):
            panels.append(("SpRAy strategies", strategies))
        if panels:
            write_bytes(out / "per_class.png", _bars_png(panels))
            pictures["bars"] = "per_class.png"
    except ImportError:
        notes.append("charts need matplotlib: pip install 'unmask[viz]'")
    samples = _sample_grids(comparison, out)
    return write_page(out, render_page(data, samples, pictures, notes))


def render_page(data: Mapping[str, Any], samples: list[dict[str, Any]], pictures: Mapping[str, str], notes: list[str]) -> str:
    """The HTML page for a ``comparison.json`` structure, the sample grids and the chart files."""
    settings = data.get("settings", {})
    models = data.get("models", {})
    names = list(models)
    title = " vs ".join(names)
    parts = [
        f"<h1>unmask compare: {escape(title)}</h1>",
        f'<p class="meta">{data.get("samples", 0)} samples &middot; method {escape(settings.get("method"))} &middot; '
        f'target {escape(settings.get("target"))} &middot; score {escape(settings.get("score"))} &middot; '
        f'<a href="{JSON_NAME}">{JSON_NAME}</a></p>',
    ]
    parts.extend(f'<p class="note">{escape(note)}</p>' for note in notes)
    regions = sorted({r for m in models.values() for r in m.get("regions", {})})
    header = ["model", "input", "accuracy", "MoRF AOPC &uarr;", "LeRF AOPC &darr;", "selectivity", "context (outside share)"]
    header += [f"relevance in {escape(r)}" for r in regions]
    rows = []
    context = data.get("context_use", {}).get("outside_share", {})
    for name, m in models.items():
        cells = [
            escape(name), "&times;".join(str(v) for v in m.get("input_size", [])), number(m.get("accuracy")),
            number((m.get("morf") or {}).get("aopc")), number((m.get("lerf") or {}).get("aopc")),
            number(m.get("selectivity")), number(context.get(name, {}).get("all")),
        ]
        cells += [number(m.get("regions", {}).get(r, {}).get("all")) for r in regions]
        rows.append("<tr>" + "".join(td(c, num=i > 1) for i, c in enumerate(cells)) + "</tr>")
    parts.append(table(header, rows))
    descriptions = "".join(f"<li><b>{escape(n)}</b>: {escape(m.get('description', ''))}</li>" for n, m in models.items())
    parts.append(f'<ul class="meta">{descriptions}</ul>')

    pairs = data.get("pairs", {})
    if pairs:
        pair_rows = [f"<tr>{td(escape(p))}{td(number(v.get('agreement')), num=True)}</tr>" for p, v in pairs.items()]
        parts.append("<h2>agreement of predictions</h2>" + table(["pair", "same prediction"], pair_rows))
    if pictures.get("curves"):
        parts.append("<h2>faithfulness: region perturbation</h2>")
        parts.append(image(pictures["curves"], "MoRF and LeRF curves of every model", css="plot"))
    if pictures.get("bars"):
        parts.append("<h2>per class</h2>")
        parts.append(image(pictures["bars"], "accuracy, context use and strategies per class", css="plot"))

    correlation = data.get("context_accuracy_correlation", {}).get("outside_share")
    if correlation:
        cells = []
        for key, label in (("across_models", "across models"), ("across_model_classes", "across (model, class) pairs")):
            entry = correlation.get(key, {})
            cells.append(
                f"<tr>{td(label)}{td(number(entry.get('points')), num=True)}{td(number(entry.get('pearson')), num=True)}"
                f"{td(number(entry.get('spearman')), num=True)}{td(escape(entry.get('note', '')))}</tr>"
            )
        parts.append("<h2>context use vs accuracy</h2>" + table(["", "points", "Pearson r", "Spearman &rho;", ""], cells))

    groups = sorted({g for m in models.values() for g in m.get("strategies", {})})
    if groups:
        parts.append("<h2>SpRAy strategies per class</h2>")
        body = [
            f"<tr>{td(escape(g))}" + "".join(
                td(number(models[n].get("strategies", {}).get(g, {}).get("n_strategies")), num=True) for n in names
            ) + "</tr>"
            for g in groups
        ]
        parts.append(table(["class"] + [escape(n) for n in names], body))
        for pair, entry in pairs.items():
            tables = []
            for group, counts in entry.get("strategies", {}).items():
                a, b = pair.split(" vs ", 1)
                body = [
                    f"<tr><th>{escape(a)} {r}</th>" + "".join(td(str(v), num=True) for v in row) + "</tr>"
                    for r, row in zip(counts["rows"], counts["counts"])
                ]
                tables.append(table([""] + [f"{escape(b)} {c}" for c in counts["cols"]], body,
                                    caption=f"{escape(group)}: ARI {number(counts['adjusted_rand_index'], 3)}"))
            if tables:
                parts.append(f'<h3>clusters of {escape(pair)}</h3><div class="tables">{"".join(tables)}</div>')

    if samples:
        parts.append('<h2>heatmaps side by side</h2><div class="samples">')
        for entry in samples:
            predicted = ", ".join(f"{escape(n)}: {escape(p)}" for n, p in entry["predictions"].items())
            facts = [escape(entry["path"])]
            if entry.get("label") is not None:
                facts.append(f"label {escape(entry['label'])}")
            if entry.get("tagged"):
                facts.append("tagged")
            parts.append(f'<p class="meta">#{entry["position"]} {" &middot; ".join(facts)} &middot; predicted {predicted}</p>')
            parts.append(image(entry["png"], f"sample {entry['position']}: input and the heatmap of every model"))
        parts.append("</div>")
    return page(f"unmask compare: {title}", parts, css=_CSS)
