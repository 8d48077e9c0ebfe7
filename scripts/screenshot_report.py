"""Render a report page (e.g. the one ``unmask spray`` writes) in headless Chromium and check it.

    python scripts/screenshot_report.py runs/ch-spray/index.html --out /tmp/spray.png
    python scripts/screenshot_report.py --demo --out /tmp/spray.png     # builds the Clever Hans report first

Takes a full-page screenshot (Debian package ``chromium``; ``apt-get install chromium``), then checks
that the picture is not blank (enough distinct colours, not one flat colour) and that every ``<img>``
of the page exists and is a readable PNG. Exit code 0 when the page renders and all checks pass, 1
when a check fails, 2 when Chromium is missing. Look at the PNG yourself too.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 1600, timeout: int = 120) -> None:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium")
    profile = tempfile.mkdtemp(prefix="unmask-chromium-")
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}",
        "--virtual-time-budget=5000", page.resolve().as_uri(),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot to {out}")


def check_page(page: Path) -> list[str]:
    """Problems with the page's pictures: missing or unreadable files."""
    from PIL import Image

    problems = []
    text = page.read_text(encoding="utf-8")
    sources = re.findall(r"<img[^>]+src=['\"]([^'\"]+)['\"]", text)
    if not sources:
        problems.append("the page has no pictures")
    for source in sources:
        path = page.parent / source
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as error:  # noqa: BLE001
            problems.append(f"{source}: {error}")
    return problems


def check_screenshot(path: Path) -> list[str]:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    problems = []
    if pixels.std() < 5:
        problems.append(f"the screenshot is almost one flat colour (std {pixels.std():.1f})")
    if colours < 50:
        problems.append(f"the screenshot has only {colours} colours: did the pictures load?")
    return problems


def demo(folder: Path) -> Path:
    """Attribute the Clever Hans test split's circles and run SpRAy on them; returns index.html."""
    sys.path.insert(0, str(ROOT / "src"))
    import argparse as _argparse

    from unmask.cli import attribute, spray

    store = folder / "store"
    for module, argv in (
        (attribute, ["cleverhans:test", "--out", str(store), "--batch-size", "64", "--no-progress"]),
        (spray, [str(store), "--class", "circle", "--out", str(folder / "report")]),
    ):
        parser = _argparse.ArgumentParser()
        module.configure(parser)
        code = module.run(parser.parse_args(argv))
        if code != 0:
            raise SystemExit(code)
    return folder / "report" / "index.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", nargs="?", type=Path, help="the HTML page (e.g. DIR/index.html)")
    parser.add_argument("--out", type=Path, default=Path("report-screenshot.png"), help="the screenshot PNG")
    parser.add_argument("--demo", action="store_true", help="build the Clever Hans SpRAy report first (in a temporary folder)")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args()
    if args.demo:
        page = demo(Path(tempfile.mkdtemp(prefix="unmask-spray-demo-")))
    elif args.page is None:
        parser.error("give the page or --demo")
    else:
        page = args.page
    if not page.is_file():
        print(f"screenshot_report: no such page {page}", file=sys.stderr)
        return 2
    problems = check_page(page)
    try:
        screenshot(page, args.out, args.width, args.height)
    except FileNotFoundError as error:
        print(f"screenshot_report: {error}", file=sys.stderr)
        return 2
    problems += check_screenshot(args.out)
    for problem in problems:
        print(f"screenshot_report: {problem}", file=sys.stderr)
    print(f"screenshot_report: {page} -> {args.out} ({'ok' if not problems else f'{len(problems)} problem(s)'})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
