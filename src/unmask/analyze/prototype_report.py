"""The HTML page of ``unmask prototype``: one card per target with its image and what the model sees in it."""
from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

from .._io import write_text

__all__ = ["render_page", "write_page"]

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1280px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } .meta { color: #555; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .8rem; width: 300px; }
.card img { width: 100%; height: auto; image-rendering: pixelated; display: block; }
.card h2 { font-size: 1rem; margin: 0 0 .4rem; }
table { border-collapse: collapse; font-size: .85rem; width: 100%; }
td { padding: .1rem .3rem; border-bottom: 1px solid #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.target td { font-weight: 600; }
"""


def _link(path: str) -> str:
    return escape(quote(path, safe="/"), quote=True)


def render_page(entries: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """``entries``: one dict per target (``target``, ``image``, ``top5``, ``class_index``, ``probability``, ``objective``)."""
    cards = []
    for entry in entries:
        rows = "".join(
            f"<tr{' class=target' if row['index'] == entry.get('class_index') else ''}><td class=num>{row['index']}</td>"
            f"<td>{escape(row['name'])}</td><td class=num>{row['probability'] * 100:.1f}%</td></tr>"
            for row in entry.get("top5", [])
        )
        verdict = ""
        if entry.get("probability") is not None:
            verdict = f"<p class=meta>fed back: {entry['probability'] * 100:.1f}% {escape(str(entry.get('class_name', '')))}</p>"
        cards.append(
            f'<div class="card"><h2>{escape(str(entry["title"]))}</h2><a href="{_link(entry["image"])}"><img src="{_link(entry["image"])}" '
            f'alt="prototype for {escape(str(entry["title"]))}"></a>{verdict}'
            f'<p class=meta>objective {entry.get("objective", float("nan")):.4g}</p><table>{rows}</table></div>'
        )
    settings = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in meta.get("settings", {}).items())
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>unmask prototype: {escape(str(meta.get('model', '')))}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Prototypes: {escape(str(meta.get('model', '')))}</h1>\n"
        f'<p class="meta">{escape(str(meta.get("description", "")))}</p>\n'
        f'<p class="meta">{settings} &middot; {meta.get("seconds", 0):.1f} s &middot; <a href="prototypes.json">prototypes.json</a></p>\n'
        '<p class="meta">Each image was optimised to maximise its target; below it, the top-5 classes the model gives the image itself.</p>\n'
        f'<div class="cards">{"".join(cards)}</div>\n</body>\n</html>\n'
    )


def write_page(out: str | os.PathLike[str], entries: Sequence[dict[str, Any]], meta: dict[str, Any]) -> Path:
    return write_text(Path(out) / "index.html", render_page(entries, meta))
