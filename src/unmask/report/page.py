"""The one skeleton of every HTML page unmask writes (explain, evaluate, spray, dissect, prototype, compare).

A page is self-contained: inline style, no scripts, no remote resources; every picture is a relative
link into the page's folder. This module holds what all pages share: the document head, the common
style sheet, escaping, links, number formatting, table and picture markup, and PNG bytes of a
matplotlib figure. A page adds only the style rules of its own parts (``css=``).
"""
from __future__ import annotations

import html
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from .._io import write_text

__all__ = [
    "BASE_CSS",
    "escape",
    "figure_png",
    "image",
    "link",
    "number",
    "page",
    "percent",
    "table",
    "td",
    "write_page",
]

#: The style every page starts from; pages append their own rules.
BASE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto; max-width: 1280px;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.meta { color: #555; margin-top: 0; }
.note { color: #8a6d00; }
.error, .failures li { color: #b00020; }
table { border-collapse: collapse; font-size: .9rem; margin: .4rem 0 1rem 0; }
caption { text-align: left; padding: .2rem 0; color: #444; }
th, td { text-align: left; padding: .2rem .6rem; border-bottom: 1px solid #eee; vertical-align: middle; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
img.plot { max-width: 100%; height: auto; border: 1px solid #ddd; margin: .3rem 0; }
.tables { display: flex; flex-wrap: wrap; gap: 2rem; }
nav a { margin-right: .8rem; }
"""

DASH = "&ndash;"


def escape(value: Any) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def link(path: str) -> str:
    """A relative file path as an ``href``/``src`` value: percent-encoded (``#``, ``?``, spaces) and escaped."""
    return escape(quote(str(path), safe="/"))


def number(value: Any, digits: int = 4, style: str = "g") -> str:
    """A number for a table cell: ``None`` and NaN as a dash, infinities as ``∞``, integers as they are;
    floats with ``digits`` significant digits (``style="g"``), ``digits`` decimals (``"f"``), or decimals
    switching to exponent notation below 1e-3 and from 1e5 (``"auto"``). Anything else is escaped text."""
    if value is None or isinstance(value, bool):
        return DASH if value is None else escape(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(int(value))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return escape(value)
    if math.isnan(value):
        return DASH
    if math.isinf(value):
        return "&infin;" if value > 0 else "&minus;&infin;"
    if style == "auto":
        style = "e" if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5) else "f"
    return f"{value:.{digits}{style}}"


def percent(value: Any, digits: int = 1) -> str:
    """``0.123`` as ``12.3%``; a dash for anything not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return DASH
    return f"{value * 100:.{digits}f}%"


def td(content: str, *, num: bool = False, css: str | None = None) -> str:
    """A table cell holding ``content`` (markup, already escaped); ``num`` right-aligns it."""
    classes = " ".join(c for c in ("num" if num else "", css or "") if c)
    return f'<td class="{classes}">{content}</td>' if classes else f"<td>{content}</td>"


def table(header: Sequence[str], rows: Iterable[str], *, caption: str | None = None, css: str | None = None) -> str:
    """A table: ``header`` the heading cells' markup, ``rows`` whole ``<tr>...</tr>`` rows, ``caption`` markup."""
    opening = f'<table class="{css}">' if css else "<table>"
    caption_html = f"<caption>{caption}</caption>" if caption else ""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    return opening + caption_html + head + "".join(rows) + "</table>"


def image(src: str, alt: str, *, css: str | None = None, width: int | None = None, linked: bool = False) -> str:
    """An ``<img>`` of the relative file ``src`` (``alt`` plain text); ``linked`` wraps it in a link to the file."""
    attributes = f' class="{css}"' if css else ""
    attributes += f' width="{int(width)}"' if width else ""
    tag = f'<img{attributes} src="{link(src)}" alt="{escape(alt)}">'
    return f'<a href="{link(src)}">{tag}</a>' if linked else tag


def page(title: str, body: Iterable[str] | str, *, css: str = "") -> str:
    """The whole document: ``title`` (plain text), ``body`` markup (parts are joined by newlines), the
    shared style sheet followed by the page's own ``css``."""
    content = body if isinstance(body, str) else "\n".join(body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{BASE_CSS}{css}</style>\n</head>\n<body>\n"
        f"{content}\n</body>\n</html>\n"
    )


def write_page(folder: str | os.PathLike[str], html_text: str, name: str = "index.html") -> Path:
    """Write the page ``html_text`` to ``folder/name`` atomically and return its path."""
    return write_text(Path(folder) / name, html_text)


def figure_png(figure: Any, *, dpi: float | None = None, tight: bool = False) -> bytes:
    """The PNG bytes of a matplotlib ``figure`` (``dpi``: the figure's own when ``None``; ``tight``: the
    bounding box cut to what is drawn)."""
    buffer = io.BytesIO()
    options: dict[str, Any] = {"format": "png"}
    if dpi is not None:
        options["dpi"] = dpi
    if tight:
        options["bbox_inches"] = "tight"
    figure.savefig(buffer, **options)
    return buffer.getvalue()
