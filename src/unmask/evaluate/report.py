"""Pictures and a page for an evaluation: the perturbation curves of all methods in one PNG (matplotlib,
optional) and a self-contained ``index.html`` for the ``evaluation.json`` that ``unmask evaluate`` writes."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

from ..report import page as html_page
from ..report.page import escape, figure_png, image, number, page, table, td

#: Metric columns of the page: key in ``methods[<name>]``, heading, whether higher is better.
COLUMNS = (
    ("morf", "MoRF AOPC", True),
    ("lerf", "LeRF AOPC", False),
    ("selectivity", "selectivity (MoRF &minus; LeRF)", True),
    ("conservation", "conservation error (relative)", False),
    ("continuity", "continuity (max &Delta;R / &Delta;x)", False),
    ("randomisation", "randomisation (mean Spearman)", False),
)


def _headline(entry: Any) -> float | None:
    if not isinstance(entry, Mapping):
        return None
    value = entry.get("aopc", entry.get("value"))
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def curves_figure_png(methods: Mapping[str, Mapping[str, Any]], score: str = "logit", title: str = "",
                      dpi: int = 110) -> bytes:
    """A PNG with one panel per order (MoRF, LeRF) and one line per method: the mean
    ``f(x^0) - f(x^k)`` over images against the step ``k``, AOPC in the legend.

    ``methods`` is the ``"methods"`` part of ``evaluation.json`` (``{method: {"morf": {"aopc", "curve"},
    "lerf": ...}}``). Needs matplotlib (``pip install 'unmask[viz]'``); it is drawn without pyplot, so no
    global state or display is touched.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the curves plot needs matplotlib: pip install 'unmask[viz]'") from None
    orders = [order for order in ("morf", "lerf") if any(order in m for m in methods.values())]
    if not orders:
        raise ValueError("no MoRF or LeRF curves to plot")
    figure = Figure(figsize=(5.2 * len(orders), 4.0), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(orders), squeeze=False)[0]
    names = {"morf": "most relevant first (MoRF)", "lerf": "least relevant first (LeRF)"}
    for ax, order in zip(axes, orders):
        for method, entry in methods.items():
            result = entry.get(order)
            if not isinstance(result, Mapping) or not result.get("curve"):
                continue
            curve = [math.nan if v is None else v for v in result["curve"]]
            aopc = result.get("aopc")
            label = f"{method} (AOPC {aopc:.3g})" if isinstance(aopc, (int, float)) else method
            style = "--" if method == "random" else "-"
            ax.plot(range(len(curve)), curve, style, label=label, linewidth=1.6)
        ax.set_title(names[order], fontsize=10)
        ax.set_xlabel("perturbation step k")
        ax.set_ylabel(f"f(x⁰) − f(xᵏ)  ({score})")
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure_png(figure)


def write_curves(methods: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str], **options: Any) -> Path:
    """:func:`curves_figure_png` written atomically to ``path``."""
    from ..report import write_bytes

    return write_bytes(path, curves_figure_png(methods, **options))


_CSS = """
td.best { font-weight: 700; }
"""


def render_page(evaluation: Mapping[str, Any], curves: str | None = "aopc_curves.png") -> str:
    """The HTML page for an ``evaluation.json`` structure; ``curves`` is the relative path of the PNG."""
    settings = evaluation.get("settings", {})
    methods = evaluation.get("methods", {})
    images = evaluation.get("images", [])
    failures = evaluation.get("failures", [])
    columns = [c for c in COLUMNS if any(c[0] in m for m in methods.values())]
    best: dict[str, float] = {}
    for key, _, higher in columns:
        values = [v for v in (_headline(m.get(key)) for n, m in methods.items() if n != "random") if v is not None]
        if values:
            best[key] = max(values) if higher else min(values)
    header = ["method"] + [f"{label} {'&uarr;' if higher else '&darr;'}" for _, label, higher in columns]
    rows = []
    for name, entry in methods.items():
        cells = []
        for key, _, _ in columns:
            value = _headline(entry.get(key))
            best_here = value is not None and best.get(key) == value and name != "random"
            cells.append(td(number(value), num=True, css="best" if best_here else None))
        rows.append(f"<tr>{td(escape(name))}{''.join(cells)}</tr>")
    shown = ("model", "score", "perturbation", "region", "steps", "seed", "target", "device", "batch_size")
    meta = " &middot; ".join(f"{escape(k)}: {escape(settings[k])}" for k in shown if k in settings)
    parts = [
        f"<h1>unmask evaluate: {escape(settings.get('model', ''))}</h1>",
        f'<p class="meta">{meta} &middot; <a href="evaluation.json">evaluation.json</a></p>',
        "<p>Region perturbation (Samek et al. 2017): regions destroyed most relevant first (MoRF) should make "
        "the score fall fast (high AOPC), least relevant first (LeRF) slowly (low AOPC). "
        f"f is the target's {escape(settings.get('score', 'logit'))}.</p>",
        table(header, rows),
    ]
    if curves:
        parts.append(f"<p>{image(curves, 'perturbation curves of every method', css='plot')}</p>")
    for note in evaluation.get("notes", []):
        parts.append(f'<p class="meta">{escape(note)}</p>')
    if images:
        image_rows = [
            f"<tr>{td(escape(i.get('name', '')))}{td(escape(i.get('source', '')))}{td(number(i.get('target')), num=True)}"
            f"{td(escape(i.get('target_name', '')))}{td(number(i.get('probability')), num=True)}</tr>"
            for i in images
        ]
        parts.append("<h2>images</h2>" + table(["name", "source", "class", "name", "probability"], image_rows))
    if failures:
        items = "".join(f"<li>{escape(f.get('error', f))}</li>" for f in failures)
        parts.append(f'<h2>failures</h2><ul class="failures">{items}</ul>')
    return page(f"unmask evaluate: {settings.get('model', '')}", parts, css=_CSS)


def write_page(evaluation: Mapping[str, Any], out_dir: str | os.PathLike[str],
               curves: str | None = "aopc_curves.png") -> Path:
    """Write ``out_dir/index.html`` atomically and return its path."""
    return html_page.write_page(out_dir, render_page(evaluation, curves))
