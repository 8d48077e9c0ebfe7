"""The HTML page of ``unmask prototype``: one card per target with its image and what the model sees in it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..report.page import escape, image, number, page, percent, table, td, write_page as _write

__all__ = ["render_page", "write_page"]

_CSS = """
.cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .8rem; width: 300px; }
.card img { width: 100%; height: auto; image-rendering: pixelated; display: block; }
.card h2 { font-size: 1rem; margin: 0 0 .4rem; }
.card table { font-size: .85rem; width: 100%; margin: 0; }
.card td { padding: .1rem .3rem; }
tr.target td { font-weight: 600; }
"""


def render_page(entries: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """``entries``: one dict per target (``target``, ``image``, ``top5``, ``class_index``, ``probability``, ``objective``)."""
    cards = []
    for entry in entries:
        rows = [
            ('<tr class="target">' if row["index"] == entry.get("class_index") else "<tr>")
            + f"{td(str(row['index']), num=True)}{td(escape(row['name']))}{td(percent(row['probability']), num=True)}</tr>"
            for row in entry.get("top5", [])
        ]
        verdict = ""
        if entry.get("probability") is not None:
            verdict = f'<p class="meta">fed back: {percent(entry["probability"])} {escape(entry.get("class_name", ""))}</p>'
        picture = image(entry["image"], f"prototype for {entry['title']}", linked=True)
        cards.append(
            f'<div class="card"><h2>{escape(entry["title"])}</h2>{picture}{verdict}'
            f'<p class="meta">objective {number(entry.get("objective"))}</p>{table([], rows)}</div>'
        )
    settings = ", ".join(f"{escape(k)}={escape(v)}" for k, v in meta.get("settings", {}).items())
    body = [
        f"<h1>Prototypes: {escape(meta.get('model', ''))}</h1>",
        f'<p class="meta">{escape(meta.get("description", ""))}</p>',
        f'<p class="meta">{settings} &middot; {meta.get("seconds", 0):.1f} s &middot; <a href="prototypes.json">prototypes.json</a></p>',
        '<p class="meta">Each image was optimised to maximise its target; below it, the top-5 classes the model gives the image itself.</p>',
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    return page(f"unmask prototype: {meta.get('model', '')}", body, css=_CSS)


def write_page(out: str | os.PathLike[str], entries: Sequence[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``out/index.html`` atomically and return its path."""
    return _write(out, render_page(entries, meta))
