"""``index.html``: one self-contained page (inline style, no scripts, no remote resources) for a
``results.json`` of ``unmask explain``; every picture is a relative link into the output folder."""
from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._io import write_text

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1280px;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem 0; }
.meta { color: #555; margin-top: 0; }
section.image { border: 1px solid #ddd; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
section.image img.grid { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
.tables { display: flex; flex-wrap: wrap; gap: 2rem; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.target td { font-weight: 600; }
.note { color: #8a6d00; }
.error, .failures li { color: #b00020; }
nav a { margin-right: .8rem; }
"""


def _link(path: str) -> str:
    return escape(quote(path, safe="/"), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _percent(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, (int, float)) else "&ndash;"


def _image_section(image: dict[str, Any], methods: list[str]) -> str:
    name = escape(image["name"])
    parts = [f'<section class="image" id="{escape(image["dir"], quote=True)}">', f"<h2>{name}</h2>"]
    parts.append(f'<p class="meta">source: {escape(str(image.get("source", "")))}</p>')
    if image.get("note"):
        parts.append(f'<p class="note">note: {escape(image["note"])}</p>')
    if image.get("grid"):
        parts.append(
            f'<a href="{_link(image["grid"])}"><img class="grid" src="{_link(image["grid"])}" '
            f'alt="{name}: input and one heatmap per method"></a>'
        )
    target = image.get("target") or {}
    rows = []
    for entry in image.get("top5", []):
        css = ' class="target"' if entry["index"] == target.get("index") else ""
        rows.append(
            f"<tr{css}><td class=num>{entry['index']}</td><td>{escape(entry['name'])}</td>"
            f"<td class=num>{_percent(entry.get('probability'))}</td></tr>"
        )
    top5 = (
        "<table><caption>top-5 classes</caption><tr><th>index</th><th>class</th><th>probability</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    method_rows = []
    for method in methods:
        result = image.get("methods", {}).get(method)
        if result is None:
            continue
        links = " ".join(
            f'<a href="{_link(result[key])}">{key}</a>' for key in ("png", "overlay", "npy") if result.get(key)
        )
        method_rows.append(
            f"<tr><td>{escape(method)}</td><td class=num>{_number(result.get('relevance_sum'))}</td>"
            f"<td class=num>{_number(result.get('explained_logit'))}</td>"
            f"<td class=num>{_number(result.get('seconds'), 3)}</td><td>{links}</td></tr>"
        )
    explained = (
        f"<table><caption>explained: {escape(str(target.get('index', '')))} {escape(str(target.get('name', '')))}"
        "</caption><tr><th>method</th><th>sum of relevance</th><th>explained logit</th><th>seconds</th>"
        "<th>files</th></tr>" + "".join(method_rows) + "</table>"
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
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>unmask: {escape(str(model.get('name', 'explanations')))}</title>\n<style>{_STYLE}</style>\n</head>\n<body>"
    )
    body = [
        f"<h1>unmask explain: {escape(str(model.get('name', '')))}</h1>",
        f'<p class="meta">{escape(str(model.get("description", "")))}</p>',
        f'<p class="meta">methods: {escape(", ".join(methods))} &middot; target: {escape(str(results.get("target", "")))}'
        f' &middot; {summary.get("explained", 0)} of {summary.get("images", 0)} images explained'
        f' in {summary.get("seconds") or 0:.1f} s &middot; <a href="results.json">results.json</a></p>',
    ]
    if images:
        body.append("<nav>" + "".join(f'<a href="#{escape(i["dir"], quote=True)}">{escape(i["name"])}</a>' for i in images) + "</nav>")
    if failures:
        items = "".join(f"<li>{escape(f['error'])}</li>" for f in failures)
        body.append(f'<h2>failures</h2><ul class="failures">{items}</ul>')
    body.extend(_image_section(image, methods) for image in images)
    return head + "\n" + "\n".join(body) + "\n</body>\n</html>\n"


def write_index(results: dict[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/index.html`` atomically and return its path."""
    return write_text(Path(out_dir) / "index.html", render_index(results))
