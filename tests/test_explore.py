"""unmask explore: the data paths and server without a browser, then the page in headless Chromium.

The browser tests drive Debian's chromium through chromium-driver and Selenium (``make test`` installs
both where it can); without them they skip and say so.
"""
from __future__ import annotations

import io
import json
import math
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("sklearn")

from explore_helpers import HOSTILE_NAME, chrome, chromium_paths, cleverhans_run, synthetic_run, wait_for, wait_ready  # noqa: E402

from unmask.explore import ExploreError, Explorer, serve_in_thread  # noqa: E402


@pytest.fixture(scope="module")
def cleverhans(tmp_path_factory):
    """Store and SpRAy result of 400 Clever Hans test samples (100 circles, 30 of them tagged)."""
    return cleverhans_run(tmp_path_factory.mktemp("explore-ch"))


@pytest.fixture(scope="module")
def served(cleverhans):
    store, result = cleverhans
    server, url = serve_in_thread(Explorer([store], [result]))
    yield url, json.loads((result / "spray.json").read_text())
    server.shutdown()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def _raw(url: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """Send ``GET target`` exactly as written (no client-side normalisation); returns status and body."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or address.netloc)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _redness(png: bytes, box: tuple[int, int, int, int] | None) -> float:
    """Mean of red minus blue in ``box`` (x0, y0, x1, y1 in 32-pixel units) of a heatmap PNG: bwr draws R > 0 red."""
    from PIL import Image

    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    scale = picture.shape[1] / 32
    if box is not None:
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        picture = picture[y0:y1, x0:x1]
    return float((picture[..., 0] - picture[..., 2]).mean())


# ------------------------------------------------------------------------------------------ no browser


def test_data_paths_and_server(served, cleverhans):
    url, data = served
    status, body = _get(url)
    assert status == 200 and b"<script src=\"app.js\"></script>" in body
    meta = json.loads(_get(url + "data/meta.json")[1])
    analysis = meta["analyses"][0]
    assert analysis["n_samples"] == 100 and analysis["n_clusters"] == data["n_clusters"] == 2
    assert sorted(c["size"] for c in analysis["clusters"]) == [30, 70]
    assert meta["stores"][0]["classes"][0] == "circle" and meta["stores"][0]["has_images"]
    points = np.frombuffer(_get(url + "data/a0/points.bin")[1], dtype="<f4")
    n = len(data["indices"])
    assert points.size == 4 * n
    np.testing.assert_allclose(points[:n], np.asarray(data["embedding"])[:, 0], atol=1e-3)
    assert (points[2 * n :].view("<i4")[:n] == np.asarray(data["labels"])).all()
    assert (points[2 * n :].view("<i4")[n:] == np.asarray(data["indices"])).all()
    rows = json.loads(_get(url + "data/s0/rows/0.json")[1])
    assert [r["index"] for r in rows] == list(range(256))
    assert all(0 <= r["share"] <= 1 for r in rows) and rows[0]["label_name"] == "circle"
    # with the object's mask or box in the store, the share is R+ inside it over all R+ (computed here from the store)
    from unmask.store import open_store

    opened = open_store(cleverhans[0])
    for index in (0, 12, 255):
        position = int(np.flatnonzero(opened.indices == index)[0])
        heat = opened.read("relevance", [position])[0].astype(np.float64)
        heat = np.clip(heat.sum(0) if heat.ndim == 3 else heat, 0, None)
        if "mask" in opened.fields:
            inside = opened.read("mask", [position])[0].astype(bool)
        else:
            x0, y0, x1, y1 = opened.field("box")[position]
            ys, xs = np.mgrid[: heat.shape[0], : heat.shape[1]] + 0.5
            inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        assert inside.shape == heat.shape
        assert rows[index]["share"] == pytest.approx(heat[inside].sum() / heat.sum(), abs=1e-4), index
    for kind in ("input", "heatmap", "overlay"):
        status, png = _get(url + f"img/s0/0/{kind}.png")
        assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing but the app's own paths: no file of the store, no path outside, no unknown sample
    for path in ("store.json", "../store.json", "%2e%2e/%2e%2e/etc/passwd", "data/s9/samples.bin", "img/s0/99999/input.png",
                 "img/s0/0/other.png", "data/a1/points.bin", "data/s0/rows/x.json", "data/s0/rows/" + "9" * 5000 + ".json"):
        assert _get(url + path)[0] == 404, path
    # the same, sent as raw request lines (urllib would tidy some of them): absolute, doubly encoded, mixed
    store, _ = cleverhans
    for target in ("/../../../../etc/passwd", "//etc/passwd", str(store / "store.json"), "/%2Fetc%2Fpasswd", "/..%2f..%2fstore.json",
                   "/%252e%252e/store.json", "/data/s0/../../store.json", "/data/s0/rows/../../../store.json", "/.%2e/.%2e/store.json",
                   "/img/s0/0/..%5c..%5cstore.json", f"http://127.0.0.1/{store}/store.json"):
        status, body = _raw(url, target)
        assert status == 404 and b"format" not in body and b"root:" not in body, target
    # a page elsewhere cannot read the server through a DNS name pointed at 127.0.0.1 (DNS rebinding)
    assert _raw(url, "/data/meta.json", host="attacker.example")[0] == 403
    assert _raw(url, "/data/meta.json", host="localhost:1")[0] == 200


def test_command_line_errors_and_static_copy(cleverhans, tmp_path, capsys):
    from unmask.cli import main

    store, result = cleverhans

    def command(argv):
        return main(["explore", *argv])

    assert command([str(tmp_path / "nothing")]) == 2
    assert "no such store" in capsys.readouterr().err
    assert command([str(store), str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert command([str(store), str(tmp_path / "empty")]) == 2
    assert "not a SpRAy result" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert command([str(store), str(result), "--port", str(taken.getsockname()[1])]) == 2
        assert "Address already in use; choose another --port" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        command([str(store), "--port", "65536"])
    assert stopped.value.code == 2 and "0 to 65535" in capsys.readouterr().err
    site = tmp_path / "site"
    assert command([str(store), str(result), "--static", str(site), "--no-progress"]) == 0
    assert (site / "index.html").is_file() and (site / "data" / "a0" / "points.bin").is_file()
    assert len(list((site / "img" / "s0").glob("*/heatmap.png"))) == 100  # the analysed samples' pictures
    assert command([str(store), str(result), "--static", str(site), "--no-progress"]) == 0  # an earlier copy is renewed
    # a folder with other files is never written into, nor is a file
    own = tmp_path / "mine"
    own.mkdir()
    (own / "index.html").write_text("my page")
    assert command([str(store), str(result), "--static", str(own), "--no-progress"]) == 2
    assert "other files" in capsys.readouterr().err
    assert [p.name for p in own.iterdir()] == ["index.html"] and (own / "index.html").read_text() == "my page"
    assert command([str(store), str(result), "--static", str(own / "index.html"), "--no-progress"]) == 2
    assert "not a folder" in capsys.readouterr().err and (own / "index.html").read_text() == "my page"
    # a result finds the store it was made from, wherever the command runs and whatever store comes first
    other = synthetic_run(tmp_path, n=50)[0]
    explorer = Explorer([other], [result])
    assert explorer.analyses[0].store == 1 and explorer.stores[1].path.resolve() == store.resolve()
    with pytest.raises(ExploreError, match="no store given"):
        Explorer([], [result])


# ------------------------------------------------------------------------------------------ in the browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium", reason="the browser tests need selenium (the test extra)")
    if chromium_paths() is None:
        pytest.skip("no Chromium with chromium-driver installed (apt-get install chromium chromium-driver; 'make test' does it as root)")
    downloads = tmp_path_factory.mktemp("downloads")
    driver = chrome(downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _download(browser, button: str, name: str) -> str:
    target = browser.downloads / name
    target.unlink(missing_ok=True)
    browser.find_element("css selector", button).click()
    wait_for(lambda: target.is_file() and target.stat().st_size > 0 and not list(browser.downloads.glob("*.crdownload")))
    return target.read_text(encoding="utf-8")


def test_tag_cluster_shows_its_heatmaps(browser, served, cleverhans):
    from unmask.data.cleverhans import TAG_BOX, CleverHans

    url, data = served
    browser.get(url)
    wait_ready(browser)
    tag_cluster = data["scores"]["best_cluster"]
    members = sorted(np.asarray(data["indices"])[np.asarray(data["labels"]) == tag_cluster].tolist())
    tagged = np.flatnonzero(CleverHans("test", 400).tagged).tolist()
    assert members == tagged  # SpRAy found the Clever Hans: the tagged circles and nothing else
    browser.find_element("css selector", f"#clusters-a button[data-cluster='{tag_cluster}']").click()
    browser.find_element("css selector", "[data-view='heatmap']").click()
    images = wait_for(lambda: (lambda found: found if len(found) == len(members) else None)(
        browser.find_elements("css selector", "#grid .tile img[data-kind='heatmap']")))
    assert sorted(int(image.get_attribute("data-index")) for image in images) == tagged
    wait_for(lambda: browser.execute_script(
        "return Array.from(document.querySelectorAll('#grid .tile img')).every(i => i.complete && i.naturalWidth > 0)"))
    assert "30 samples of cluster" in browser.find_element("css selector", "#selection-info").text
    # the pictures in the grid are these samples' heatmaps, red on the tag; the other cluster's are not
    others = sorted(set(data["indices"]) - set(members))
    inside = [_redness(_get(images[k].get_attribute("src"))[1], TAG_BOX) for k in range(6)]
    outside = [_redness(_get(f"{url}img/s0/{i}/heatmap.png")[1], TAG_BOX) for i in others[:6]]
    assert min(inside) > 40 and min(inside) > max(outside) + 20, (inside, outside)
    # the state is in the URL: a fresh load of it shows the same selection
    browser.get("about:blank")
    browser.get(url + "#" + f"a=0&color=label&view=heatmap&sel=cluster.a:{tag_cluster}")
    wait_ready(browser)
    assert browser.execute_script("return window.unmaskExplore.selection()") == tagged
    assert browser.find_element("css selector", "#color-by").get_attribute("value") == "label"
    # the detail view of one sample
    browser.find_element("css selector", "#grid .tile").click()
    wait_for(lambda: "tagged" in browser.find_element("css selector", "#detail").text)
    assert browser.find_element("css selector", "#detail .title").text == f"Sample #{tagged[0]}"
    browser.find_element("css selector", "#detail").send_keys("\ue014")  # the right arrow: the next selected sample
    wait_for(lambda: browser.find_element("css selector", "#detail .title").text == f"Sample #{tagged[1]}")
    assert f"detail={tagged[1]}" in browser.current_url
    browser.find_element("css selector", "#detail .close").click()


def _drag(browser, canvas, points):
    """Press at the first of ``points`` (canvas pixels), move through the others, release."""
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = canvas.size["width"], canvas.size["height"]
    actions = ActionChains(browser, duration=5)
    x, y = points[0]
    actions.move_to_element_with_offset(canvas, int(round(x - width / 2)), int(round(y - height / 2))).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for t in np.linspace(0, 1, 6)[1:]:
            actions.move_to_element_with_offset(canvas, int(round(x0 + t * (x1 - x0) - width / 2)), int(round(y0 + t * (y1 - y0) - height / 2)))
    actions.release().perform()


def _lasso_around(screen_x, screen_y, centre, margin=4.0):
    """A hexagon around ``centre`` whose edges pass no point closer than ``margin`` pixels."""
    from matplotlib.path import Path as Polygon

    xy = np.stack([screen_x, screen_y], 1)
    for radius in np.linspace(25, 140, 47):
        angles = np.arange(6) * math.pi / 3 + 0.2
        vertices = np.round(np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1))
        closed = np.vstack([vertices, vertices[:1]])
        a, b = closed[:-1], closed[1:]
        # distance of every point to every edge
        ab = b - a
        t = np.clip(((xy[:, None, :] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
        distance = np.linalg.norm(xy[:, None, :] - (a + t[..., None] * ab), axis=-1).min(1)
        inside = Polygon(vertices).contains_points(xy)
        if distance.min() > margin and inside.sum() >= 3:
            return vertices, inside
    raise AssertionError("no clean lasso found")


def test_lasso_selection_exports_its_indices(browser, served):
    url, data = served
    browser.get(url)
    wait_ready(browser)
    browser.find_element("css selector", "[data-tool='lasso']").click()
    canvas = browser.find_element("css selector", "#plot-a canvas")
    screen_x, screen_y = (np.asarray(v) for v in browser.execute_script("return window.unmaskExplore.screen('a')"))
    indices = np.asarray(data["indices"])
    labels = np.asarray(data["labels"])
    members = labels == data["scores"]["best_cluster"]
    centre = (float(np.median(screen_x[members])), float(np.median(screen_y[members])))
    vertices, inside = _lasso_around(screen_x, screen_y, centre)
    _drag(browser, canvas, [tuple(v) for v in vertices] + [tuple(vertices[0])])
    expected = sorted(indices[inside].tolist())
    wait_for(lambda: browser.execute_script("return window.unmaskExplore.selection().length") > 0)
    assert browser.execute_script("return window.unmaskExplore.selection()") == expected
    exported = json.loads(_download(browser, "#export-json", "selection.json"))
    assert exported["indices"] == expected and exported["selection"].startswith("lasso.a:")
    assert [s["cluster"] for s in exported["samples"]] == [int(labels[indices == i][0]) for i in expected]
    csv = _download(browser, "#export-csv", "selection.csv").splitlines()
    assert csv[0] == "index,label,prediction,cluster" and [int(line.split(",")[0]) for line in csv[1:]] == expected
    # a rectangle around the same points selects exactly the points inside it
    browser.find_element("css selector", "[data-tool='rect']").click()
    x0, y0 = vertices.min(0) - 2
    x1, y1 = vertices.max(0) + 2
    _drag(browser, canvas, [(x0, y0), (x1, y1)])
    in_box = (screen_x >= x0) & (screen_x <= x1) & (screen_y >= y0) & (screen_y <= y1)
    wait_for(lambda: browser.execute_script("return window.unmaskExplore.state.sel.kind") == "rect")
    selected = browser.execute_script("return window.unmaskExplore.selection()")
    assert set(expected) <= set(selected) and selected == sorted(indices[in_box].tolist())


def test_hundred_thousand_points_become_interactive(browser, tmp_path, capsys):
    store, result = synthetic_run(tmp_path, n=100_000)
    tick = time.perf_counter()
    explorer = Explorer([store], [result])
    server, url = serve_in_thread(explorer)
    opened = time.perf_counter() - tick
    try:
        tick = time.perf_counter()
        browser.get(url)
        waited = wait_ready(browser, timeout=120)
        interactive = time.perf_counter() - tick
        in_page = browser.execute_script("return window.unmaskExplore.readyAt")
        # a zoom redraws all 100,000 points; a cluster click selects and redraws
        browser.execute_script("""
            const canvas = document.querySelector('#plot-a canvas');
            canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: -200, clientX: 200, clientY: 300, bubbles: true, cancelable: true}));""")
        zoom_ms = browser.execute_script("return window.unmaskExplore.drawMs().a")
        tick = time.perf_counter()
        browser.find_element("css selector", "#clusters-a button[data-cluster='2']").click()
        size = json.loads((result / "spray.json").read_text())["clusters"][2]["size"]
        wait_for(lambda: browser.execute_script("return window.unmaskExplore.selection().length") == size)
        select_s = time.perf_counter() - tick
        select_ms = browser.execute_script("return window.unmaskExplore.selectMs")
        tiles = len(browser.find_elements("css selector", "#grid .tile"))
        page = browser.find_element("css selector", "#page-info").text
        # strings from files stay text: the hostile class name is an option's text, not markup
        names = browser.execute_script("return Array.from(document.querySelectorAll('#class-select option')).map(o => o.textContent)")
        injected = browser.execute_script("return window.__injected === 1 || document.querySelector('img[src=\"x\"]') !== null")
    finally:
        server.shutdown()
    assert tiles == 60 and page == f"page 1 of {math.ceil(size / 60)}"  # every selected sample, a page at a time
    assert any(name.startswith(HOSTILE_NAME) for name in names) and not injected
    with capsys.disabled():
        print(f"\nunmask explore, 100,000 points: server ready {opened:.2f} s; page interactive {interactive:.2f} s after "
              f"the test's navigation ({in_page:.0f} ms after the page's navigation start, waited {waited:.2f} s after load); "
              f"zoom redraw {zoom_ms:.1f} ms; cluster click: select, redraw and grid {select_ms:.0f} ms in the page, "
              f"{select_s:.2f} s as the test saw it")


def test_hover_preview_and_class_selector(browser, served):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    url, data = served
    browser.get(url)
    wait_ready(browser)
    canvas = browser.find_element("css selector", "#plot-a canvas")
    screen_x, screen_y = browser.execute_script("return window.unmaskExplore.screen('a')")
    k = 7
    ActionChains(browser, duration=5).move_to_element_with_offset(
        canvas, int(round(screen_x[k] - canvas.size["width"] / 2)), int(round(screen_y[k] - canvas.size["height"] / 2))).perform()
    tooltip = wait_for(lambda: (lambda t: t if t.is_displayed() else None)(browser.find_element("css selector", "#tooltip")))
    index = data["indices"][k]
    assert tooltip.find_element("css selector", "img").get_attribute("src").endswith(f"img/s0/{index}/overlay.png")
    assert f"#{index}" in tooltip.text and f"cluster {data['labels'][k]}" in tooltip.text
    # a class the analysis did not cover: its samples come from the store (every fourth sample is a square)
    Select(browser.find_element("css selector", "#class-select")).select_by_visible_text("square (100)")
    assert browser.execute_script("return window.unmaskExplore.selection()") == list(range(1, 400, 4))
    caption = wait_for(lambda: (lambda t: t if "square" in t else None)(browser.find_element("css selector", "#grid .tile").text))
    assert "not analysed" in caption and "100 samples of class square" in browser.find_element("css selector", "#selection-info").text


def test_two_methods_side_by_side_from_a_static_copy(browser, cleverhans, tmp_path):
    """Gradient x input beside LRP on the same samples, from the files --static writes, served by a plain file server."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    store, result = cleverhans
    other_store, other_result = cleverhans_run(tmp_path, method="gradient_x_input", embedding="spectral")
    site = tmp_path / "site"
    Explorer([store, other_store], [result, other_result]).write_static(site)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        browser.get(url + "#a=0&b=1&view=heatmap&sel=cluster.b:0")
        wait_ready(browser)
        assert browser.find_element("css selector", "#plot-b").is_displayed()
        sizes = [int(b.find_element("css selector", ".size").text) for b in browser.find_elements("css selector", "#clusters-b button")]
        other = json.loads((other_result / "spray.json").read_text())
        assert sizes == [c["size"] for c in other["clusters"]]
        members = sorted(np.asarray(other["indices"])[np.asarray(other["labels"]) == 0].tolist())
        assert browser.execute_script("return window.unmaskExplore.selection()") == members
        tiles = wait_for(lambda: browser.find_elements("css selector", "#grid .tile"))
        assert len(tiles) == min(60, len(members))
        pictures = tiles[0].find_elements("css selector", "img")
        assert [p.get_attribute("data-store") for p in pictures] == ["0", "1"]
        assert all(p.get_attribute("src").endswith(f"img/s{k}/{members[0]}/heatmap.png") for k, p in enumerate(pictures))
        wait_for(lambda: browser.execute_script(
            "return Array.from(document.querySelectorAll('#grid .tile img')).every(i => i.complete && i.naturalWidth > 0)"))
        assert "gradient_x_input" in browser.find_element("css selector", "#compare-note").text
    finally:
        server.shutdown()


def test_store_without_pictures_on_this_machine(tmp_path):
    store, result = synthetic_run(tmp_path, n=300)
    server, url = serve_in_thread(Explorer([store], [result]))
    try:
        meta = json.loads(_get(url + "data/meta.json")[1])
        assert meta["stores"][0]["has_images"] is False and meta["stores"][0]["classes"][1] == HOSTILE_NAME
        assert _get(url + "img/s0/5/heatmap.png")[0] == 200 and _get(url + "img/s0/5/input.png")[0] == 404
        rows = json.loads(_get(url + "data/s0/rows/1.json")[1])
        assert [r["index"] for r in rows] == list(range(256, 300))
        # the share without boxes: sum(R+) / sum(|R|) of the stored relevance
        from unmask.store import open_store

        relevance = open_store(store).relevance([256]).astype(np.float64)
        assert rows[0]["share"] == pytest.approx(np.clip(relevance, 0, None).sum() / np.abs(relevance).sum(), abs=1e-4)
        # a browser keeps an answer only while this server runs: another run (on the same port, say) has another tag
        with urllib.request.urlopen(url + "data/a0/points.bin", timeout=30) as response:
            tag, cache = response.headers["ETag"], response.headers["Cache-Control"]
        assert cache == "no-cache" and tag
        again = urllib.request.Request(url + "data/a0/points.bin", headers={"If-None-Match": tag})
        with pytest.raises(urllib.error.HTTPError) as unchanged:
            urllib.request.urlopen(again, timeout=30)
        assert unchanged.value.code == 304
        other, other_url = serve_in_thread(Explorer([store], [result]))
        try:
            with urllib.request.urlopen(urllib.request.Request(other_url + "data/a0/points.bin", headers={"If-None-Match": tag}), timeout=30) as response:
                assert response.status == 200 and response.headers["ETag"] != tag
        finally:
            other.shutdown()
    finally:
        server.shutdown()
    # a result without a 2-D embedding (spray --embedding none): its clusters side by side, apart
    data = json.loads((result / "spray.json").read_text())
    data["embedding"] = None
    (result / "spray.json").write_text(json.dumps(data))
    analysis = Explorer([store], [result]).analyses[0]
    assert not analysis.describe(0)["has_embedding"]
    spans = [(analysis.x[analysis.clusters == c].min(), analysis.x[analysis.clusters == c].max()) for c in range(5)]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    # a result whose labels are not numbers, or that names samples the store lacks: one clear error
    (result / "spray.json").write_text(json.dumps({**data, "labels": ["x"] * len(data["indices"])}))
    with pytest.raises(ExploreError, match="not a readable SpRAy result"):
        Explorer([store], [result])
    (result / "spray.json").write_text(json.dumps({**data, "indices": [i + 250 for i in data["indices"]]}))
    with pytest.raises(ExploreError, match=r"index 300 \(and 249 more\) is not in the store"):
        Explorer([store], [result])


def test_hostile_names_stay_text(browser, tmp_path):
    """Class names, folder names and sample paths that are markup, shown from a --static copy (no CSP there)."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import h5py

    store, result = synthetic_run(tmp_path, n=40)
    with h5py.File(next((store / "shards").glob("*.h5")), "r+") as handle:
        del handle["path"]
        handle.create_dataset("path", data=np.array([f"{HOSTILE_NAME}/{i}.png" for i in range(40)], dtype=object),
                              dtype=h5py.string_dtype())
    hostile_store, hostile_result = tmp_path / (HOSTILE_NAME + " store"), tmp_path / (HOSTILE_NAME + " spray")
    shutil.move(store, hostile_store)
    shutil.move(result, hostile_result)
    site = tmp_path / "site"
    Explorer([hostile_store], [hostile_result]).write_static(site)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/#sel=all&color=label")
        wait_ready(browser)
        wait_for(lambda: HOSTILE_NAME in browser.find_element("css selector", "#grid").text)  # a label name in a caption
        options = [o.text for o in browser.find_elements("css selector", "#analysis-a option")]
        assert options[0].startswith(HOSTILE_NAME + " spray")
        assert HOSTILE_NAME in browser.find_element("css selector", "#plot-a figcaption").text
        assert HOSTILE_NAME in browser.find_element("css selector", "#legend").text
        browser.find_element("css selector", "#grid .tile").click()
        wait_for(lambda: f"{HOSTILE_NAME}/0.png" in browser.find_element("css selector", "#detail").text)
        injected = browser.execute_script("return [window.__injected === 1, document.querySelectorAll('img[src=\"x\"]').length]")
        assert injected == [False, 0]
        exported = json.loads(browser.execute_script("return window.unmaskExplore.exportText('json')"))
        assert exported["analysis"].endswith(HOSTILE_NAME + " spray") and exported["indices"] == list(range(40))
    finally:
        server.shutdown()
