"""The explorer's scatter at scale, beside the obvious alternative: one SVG circle per point.

    python benchmarks/bench_explore.py                       # 10,000 and 100,000 points
    python benchmarks/bench_explore.py --sizes 10000 100000 300000 --json out.json

For each size a synthetic store and SpRAy result (Gaussian blobs, tests/explore_helpers.synthetic_run)
are served by unmask.explore, and headless Chromium (Debian chromium + chromium-driver) loads the page.
Measured in the page, in one browser:

* unmask: time from the navigation's start until the data is loaded and the first frame drawn
  (``readyAt``), the median of 5 full redraws after a zoom, and a cluster click (select, redraw, grid).
* SVG: the same x, y and colours as one ``<circle>`` per point in an ``<svg>`` (what DOM-based plotting
  does, e.g. d3 or a plain SVG scatter): the time to build it until the next frame is painted, and the
  median of 5 zooms (a new ``transform`` on the group, until the frame after it is painted).

Ratios are SVG over unmask on the same points in the same browser. Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from explore_helpers import chrome, chromium_paths, synthetic_run, wait_ready  # noqa: E402

_SVG = """
const done = arguments[arguments.length - 1];
const points = window.unmaskExplore.points('a');
const clusters = window.unmaskExplore.clusterValues('a');
const frame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
(async () => {
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const ns = "http://www.w3.org/2000/svg";
  const started = performance.now();
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", 600); svg.setAttribute("height", 440);
  svg.style.position = "fixed"; svg.style.left = "0"; svg.style.top = "0"; svg.style.background = "#fff"; svg.style.zIndex = 100;
  const group = document.createElementNS(ns, "g");
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < points.x.length; i++) { x0 = Math.min(x0, points.x[i]); x1 = Math.max(x1, points.x[i]); y0 = Math.min(y0, points.y[i]); y1 = Math.max(y1, points.y[i]); }
  const scale = 400 / Math.max(x1 - x0, y1 - y0);
  for (let i = 0; i < points.x.length; i++) {
    const circle = document.createElementNS(ns, "circle");
    circle.setAttribute("cx", ((points.x[i] - x0) * scale + 20).toFixed(1));
    circle.setAttribute("cy", ((y1 - points.y[i]) * scale + 20).toFixed(1));
    circle.setAttribute("r", 1.5);
    circle.setAttribute("fill", palette[clusters[i] % 10]);
    group.appendChild(circle);
  }
  svg.appendChild(group);
  document.body.appendChild(svg);
  await frame();
  const build = performance.now() - started;
  const zooms = [];
  for (let k = 1; k <= 5; k++) {
    const t = performance.now();
    group.setAttribute("transform", `translate(300 220) scale(${1 + 0.2 * k}) translate(-300 -220)`);
    await frame();
    zooms.push(performance.now() - t);
  }
  svg.remove();
  done({ build, zooms });
})();
"""

_CANVAS = """
const done = arguments[arguments.length - 1];
const frame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
(async () => {
  const canvas = document.querySelector('#plot-a canvas');
  const box = canvas.getBoundingClientRect();
  const redraws = [];
  for (let k = 0; k < 5; k++) {
    const t = performance.now();
    canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: -120, clientX: box.left + box.width / 2, clientY: box.top + box.height / 2, bubbles: true, cancelable: true}));
    await frame();
    redraws.push(performance.now() - t);
  }
  document.querySelector("#clusters-a button[data-cluster='1']").click();
  await frame();
  done({ redraws, select: window.unmaskExplore.selectMs, draw: window.unmaskExplore.drawMs().a });
})();
"""


def measure(n: int, work: Path) -> dict[str, float]:
    from unmask.explore import Explorer, serve_in_thread

    tick = time.perf_counter()
    store, result = synthetic_run(work / str(n), n=n)
    written = time.perf_counter() - tick
    tick = time.perf_counter()
    server, url = serve_in_thread(Explorer([store], [result]))
    opened = time.perf_counter() - tick
    driver = chrome(width=1400, height=1000)
    driver.set_script_timeout(600)
    try:
        driver.get(url)
        wait_ready(driver, timeout=600)
        ready = driver.execute_script("return window.unmaskExplore.readyAt")
        canvas = driver.execute_async_script(_CANVAS)
        svg = driver.execute_async_script(_SVG)
    finally:
        driver.quit()
        server.shutdown()
    row = {
        "n": n,
        "write_s": round(written, 2),
        "explorer_open_s": round(opened, 2),
        "unmask_ready_ms": round(ready, 1),
        "unmask_redraw_ms": round(statistics.median(canvas["redraws"]), 1),
        "unmask_select_ms": round(canvas["select"], 1),
        "svg_build_ms": round(svg["build"], 1),
        "svg_zoom_ms": round(statistics.median(svg["zooms"]), 1),
    }
    row["build_ratio_svg_over_unmask"] = round(row["svg_build_ms"] / row["unmask_ready_ms"], 2)
    row["zoom_ratio_svg_over_unmask"] = round(row["svg_zoom_ms"] / row["unmask_redraw_ms"], 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if chromium_paths() is None:
        print("bench_explore: needs chromium and chromium-driver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for n in args.sizes:
            row = measure(n, Path(work))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
