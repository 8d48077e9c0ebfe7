"""``index.html``: one self-contained page (inline style, no scripts, no remote resources) for a
``results.json`` of ``unmask explain``; every picture is a relative link into the output folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .page import escape, image as picture, link, number, page, percent, table, td, write_page

_CSS = """
section.image { border: 1px solid #ddd; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
section.image h2 { margin-top: 0; }
section.image img.grid { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
tr.target td { font-weight: 600; }
"""


def _image_section(image: dict[str, Any], methods: list[str]) -> str:
    name = escape(image["name"])
    parts = [f'<section class="image" id="{escape(image["dir"])}">', f"<h2>{name}</h2>"]
    parts.append(f'<p class="meta">source: {escape(image.get("source", ""))}</p>')
    if image.get("note"):
        parts.append(f'<p class="note">note: {escape(image["note"])}</p>')
    if image.get("grid"):
        parts.append(picture(image["grid"], f"{image['name']}: input and one heatmap per method", css="grid", linked=True))
    target = image.get("target") or {}
    rows = [
        ("<tr class=\"target\">" if entry["index"] == target.get("index") else "<tr>")
        + f"{td(str(entry['index']), num=True)}{td(escape(entry['name']))}{td(percent(entry.get('probability')), num=True)}</tr>"
        for entry in image.get("top5", [])
    ]
    top5 = table(["index", "class", "probability"], rows, caption="top-5 classes")
    method_rows = []
    for method in methods:
        result = image.get("methods", {}).get(method)
        if result is None:
            continue
        links = " ".join(f'<a href="{link(result[key])}">{key}</a>' for key in ("png", "overlay", "npy") if result.get(key))
        method_rows.append(
            f"<tr>{td(escape(method))}{td(number(result.get('relevance_sum')), num=True)}"
            f"{td(number(result.get('explained_logit')), num=True)}{td(number(result.get('seconds'), 3), num=True)}{td(links)}</tr>"
        )
    explained = table(
        ["method", "sum of relevance", "explained logit", "seconds", "files"], method_rows,
        caption=f"explained: {escape(target.get('index', ''))} {escape(target.get('name', ''))}",
    )
    parts.append(f'<div class="tables">{top5}{explained}</div>')
    for error in image.get("errors", []):
        parts.append(f'<p class="error">{escape(error.get("method") or "")}: {escape(error["error"])}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def render_index(results: dict[str, Any]) -> str:
    """The page for ``results`` (the structure ``unmask explain`` writes to results.json)."""
    model = results.get("model", {})
    methods = list(results.get("methods", []))
    summary = results.get("summary", {})
    images = results.get("images", [])
    failures = results.get("failures", [])
    body = [
        f"<h1>unmask explain: {escape(model.get('name', ''))}</h1>",
        f'<p class="meta">{escape(model.get("description", ""))}</p>',
        f'<p class="meta">methods: {escape(", ".join(methods))} &middot; target: {escape(results.get("target", ""))}'
        f' &middot; {summary.get("explained", 0)} of {summary.get("images", 0)} images explained'
        f' in {summary.get("seconds") or 0:.1f} s &middot; <a href="results.json">results.json</a></p>',
    ]
    if images:
        body.append("<nav>" + "".join(f'<a href="#{escape(i["dir"])}">{escape(i["name"])}</a>' for i in images) + "</nav>")
    if failures:
        items = "".join(f"<li>{escape(f['error'])}</li>" for f in failures)
        body.append(f'<h2>failures</h2><ul class="failures">{items}</ul>')
    body.extend(_image_section(image, methods) for image in images)
    return page(f"unmask: {model.get('name', 'explanations')}", body, css=_CSS)


def write_index(results: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/index.html`` atomically and return its path."""
    return write_page(out_dir, render_index(results))
