"""The one page skeleton every HTML report uses, and the one JSON sanitiser every JSON file goes through."""
from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from unmask._io import NON_FINITE_KEY, json_safe, write_json
from unmask.report import page as skeleton

HOSTILE = '<img src=x onerror="alert(1)"> & "quotes"'


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.srcs.extend(value for name, value in attrs if name in ("src", "href"))


def _tags(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_numbers_for_table_cells():
    assert skeleton.number(None) == skeleton.number(math.nan) == "&ndash;"
    assert skeleton.number(math.inf) == "&infin;" and skeleton.number(-math.inf) == "&minus;&infin;"
    assert skeleton.number(3) == skeleton.number(np.int64(3)) == "3"
    assert skeleton.number(0.123456) == "0.1235" and skeleton.number(np.float32(0.5), 3, "f") == "0.500"
    assert skeleton.number(2.5e-5, 2, "auto") == "2.50e-05" and skeleton.number(12.0, 2, "auto") == "12.00"
    assert skeleton.number("<b>") == "&lt;b&gt;"
    assert skeleton.percent(0.1234) == "12.3%" and skeleton.percent(None) == skeleton.percent(math.nan) == "&ndash;"


def test_links_and_pictures_are_encoded_and_escaped():
    assert skeleton.link('a b/#1"?.png') == "a%20b/%231%22%3F.png"
    tag = skeleton.image("dir/x y.png", HOSTILE, css="plot", width=96, linked=True)
    parsed = _tags(tag)
    assert parsed.tags == ["a", "img"] and parsed.srcs == ["dir/x%20y.png", "dir/x%20y.png"]
    assert "<img src=x" not in tag and 'width="96"' in tag
    assert skeleton.td("1", num=True, css="best") == '<td class="num best">1</td>' and skeleton.td("x") == "<td>x</td>"
    table = skeleton.table(["a", "b"], ["<tr><td>1</td><td>2</td></tr>"], caption="c")
    assert table == "<table><caption>c</caption><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"


def test_a_page_escapes_its_title_and_carries_the_shared_style_then_its_own():
    html = skeleton.page(HOSTILE, ["<h1>x</h1>"], css=".mine { color: red; }")
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>\n")
    assert "<title>&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &quot;quotes&quot;</title>" in html
    assert html.index(skeleton.BASE_CSS) < html.index(".mine")
    assert _tags(html).tags == ["html", "head", "meta", "meta", "title", "style", "body", "h1"]


def _pages() -> dict[str, str]:
    from unmask.analyze import compare_report, dissect_report, prototype_report
    from unmask.evaluate import report as evaluate_report
    from unmask.report import render_index

    return {
        "explain": render_index({"model": {"name": HOSTILE}, "images": [{"name": HOSTILE, "dir": "d", "grid": "d/grid.png"}]}),
        "evaluate": evaluate_report.render_page({"settings": {"model": HOSTILE}, "methods": {HOSTILE: {"morf": {"aopc": 0.5}}}}),
        "prototype": prototype_report.render_page([{"title": HOSTILE, "image": "p #1.png", "objective": 1.0}], {"model": HOSTILE}),
        "compare": compare_report.render_page({"models": {HOSTILE: {}}}, [], {"curves": "c.png"}, [HOSTILE]),
        "dissect": dissect_report.render_page([], {"model": HOSTILE}, {}, "detectors.png"),
    }


@pytest.mark.parametrize("name", ["explain", "evaluate", "prototype", "compare", "dissect"])
def test_every_page_is_built_on_the_skeleton_and_escapes_what_it_shows(name):
    html = _pages()[name]
    assert html.startswith(skeleton.page("", "").split("<title>")[0])
    assert html.count(skeleton.BASE_CSS) == 1
    assert "<img src=x" not in html and "onerror=\"alert" not in html
    assert all(not src.startswith(("http:", "https:", "/")) for src in _tags(html).srcs)


def test_json_safe_replaces_non_finite_numbers_and_records_where():
    replaced: list[str] = []
    data = {"a": [1.0, math.nan, (np.float32(2.5), np.int64(3))], 7: {"b": math.inf}, "flag": np.bool_(True)}
    clean = json_safe(data, replaced=replaced)
    assert clean == {"a": [1.0, None, [2.5, 3]], "7": {"b": None}, "flag": True}
    assert replaced == ["$.a[1]", "$.7.b"]
    assert json.loads(json.dumps(clean, allow_nan=False)) == clean  # what a reader gets back
    assert json_safe({"t": torch.tensor([1.0, math.nan])}, default=lambda v: v.tolist()) == {"t": [1.0, None]}
    assert json_safe({"o": object}, default=repr) == {"o": repr(object)}


def test_write_json_lists_the_nulls_it_wrote(tmp_path):
    written = json.loads(write_json(tmp_path / "x.json", {"score": math.nan, "ok": 1.0}).read_text())
    assert written == {"score": None, "ok": 1.0, NON_FINITE_KEY: ["$.score"]}
    assert NON_FINITE_KEY not in json.loads(write_json(tmp_path / "y.json", {"ok": 1.0}).read_text())
