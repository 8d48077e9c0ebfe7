"""The explorer app: plain HTML, CSS and JavaScript, no build step and nothing fetched from elsewhere."""
from __future__ import annotations

from importlib import resources

#: The app's files and their content types.
FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def files() -> dict[str, bytes]:
    """Every file of the app by name."""
    root = resources.files(__name__)
    return {name: root.joinpath(name).read_bytes() for name in FILES}
