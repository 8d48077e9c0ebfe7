"""Screenshots of ``unmask explore``'s main views, from headless Chromium (Debian chromium + chromium-driver).

    python scripts/screenshot_explore.py --out /tmp/explore            # builds the runs in a temporary folder
    python scripts/screenshot_explore.py --out /tmp/explore --work runs/explore   # ... or keeps them there

Builds a Clever Hans store explained with two methods (LRP epsilon-plus-flat and gradient x input),
SpRAy of the circles for each, and a synthetic 100,000-point run, serves them and saves:

    main.png      the LRP analysis, the tag cluster selected, overlays in the grid
    eigenvalues.png  its eigenvalue plot with the eigengap
    heatmaps.png  the same selection as heatmaps, coloured by label
    detail.png    the detail view of one tagged sample
    lasso.png     a lasso selection drawn in the embedding (the path still shown)
    compare.png   LRP beside gradient x input: two embeddings, two heatmaps per sample
    eigenvalues-compare.png  both analyses' eigenvalues
    large.png     100,000 points, one cluster selected, zoomed in

Exit code 0 when every view rendered, 2 when Chromium or its driver is missing. Look at the PNGs.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from explore_helpers import chrome, chromium_paths, cleverhans_run, synthetic_run, wait_for, wait_ready  # noqa: E402


def _shot(driver, path: Path, settle: float = 0.6) -> None:
    wait_for(lambda: driver.execute_script(
        "return Array.from(document.querySelectorAll('img')).filter(i => i.getAttribute('src')).every(i => i.complete)"), timeout=60)
    time.sleep(settle)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")


def _panel(driver, selector: str, path: Path) -> None:
    panel = driver.find_element("css selector", selector)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", panel)
    time.sleep(0.3)
    panel.screenshot(str(path))
    driver.execute_script("window.scrollTo(0, 0)")
    print(f"wrote {path}")


def _lasso(driver, canvas, centre, radius):
    from selenium.webdriver.common.action_chains import ActionChains

    width, height = canvas.size["width"], canvas.size["height"]
    actions = ActionChains(driver, duration=5)
    points = [(centre[0] + radius * math.cos(a), centre[1] + 0.8 * radius * math.sin(a)) for a in [k * math.pi / 12 for k in range(22)]]
    x, y = points[0]
    actions.move_to_element_with_offset(canvas, int(x - width / 2), int(y - height / 2)).click_and_hold()
    for x, y in points[1:]:
        actions.move_to_element_with_offset(canvas, int(x - width / 2), int(y - height / 2))
    actions.perform()  # not released: the path is still drawn in the screenshot


def _kept_or_made(work: Path, name: str, make) -> tuple[Path, Path]:
    """The store and SpRAy result ``name`` in ``work`` from an earlier run of this script, else ``make()``."""
    if (work / f"spray-{name}").exists():
        return work / f"store-{name}", work / f"spray-{name}"
    return make()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNGs")
    parser.add_argument("--work", type=Path, help="folder for the stores and SpRAy results (default: a temporary one)")
    args = parser.parse_args(argv)
    if chromium_paths() is None:
        print("screenshot_explore: needs chromium and chromium-driver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    import numpy as np

    from unmask.explore import Explorer, serve_in_thread

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        lrp = _kept_or_made(work, "lrp_epsilon_plus_flat", lambda: cleverhans_run(work))
        gradient = _kept_or_made(work, "gradient_x_input", lambda: cleverhans_run(work, method="gradient_x_input"))
        large = _kept_or_made(work, "synthetic", lambda: synthetic_run(work))
        import json

        tag = json.loads((lrp[1] / "spray.json").read_text())["scores"]["best_cluster"]
        server, url = serve_in_thread(Explorer([lrp[0], gradient[0]], [lrp[1], gradient[1]]))
        driver = chrome(width=1440, height=1000)
        try:
            driver.get(url + f"#a=0&view=overlay&sel=cluster.a:{tag}")
            wait_ready(driver)
            _shot(driver, args.out / "main.png")
            _panel(driver, "#spectrum-panel", args.out / "eigenvalues.png")
            driver.find_element("css selector", "#color-by option[value='label']").click()
            driver.find_element("css selector", "[data-view='heatmap']").click()
            _shot(driver, args.out / "heatmaps.png")
            driver.find_element("css selector", "#grid .tile").click()
            wait_for(lambda: "tagged" in driver.find_element("css selector", "#detail").text)
            _shot(driver, args.out / "detail.png")
            driver.find_element("css selector", "#detail .close").click()
            driver.find_element("css selector", "#clear-selection").click()
            driver.find_element("css selector", "[data-tool='lasso']").click()
            canvas = driver.find_element("css selector", "#plot-a canvas")
            xs, ys = (np.asarray(v) for v in driver.execute_script("return window.unmaskExplore.screen('a')"))
            _lasso(driver, canvas, (float(np.median(xs)), float(np.median(ys))), 0.25 * min(canvas.size["width"], canvas.size["height"]))
            _shot(driver, args.out / "lasso.png")
            driver.get("about:blank")
            driver.get(url + f"#a=0&b=1&view=heatmap&sel=cluster.a:{tag}")
            wait_ready(driver)
            _shot(driver, args.out / "compare.png")
            _panel(driver, "#spectrum-panel", args.out / "eigenvalues-compare.png")
        finally:
            driver.quit()
            server.shutdown()
        server, url = serve_in_thread(Explorer([large[0]], [large[1]]))
        driver = chrome(width=1440, height=1000)
        try:
            driver.get(url + "#a=0&sel=cluster.a:2&view=heatmap")
            wait_ready(driver, timeout=120)
            driver.execute_script("""
                const canvas = document.querySelector('#plot-a canvas');
                const box = canvas.getBoundingClientRect();
                canvas.dispatchEvent(new WheelEvent('wheel', {deltaY: -300, clientX: box.left + box.width / 2, clientY: box.top + box.height / 2, bubbles: true, cancelable: true}));""")
            _shot(driver, args.out / "large.png")
        finally:
            driver.quit()
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
