"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never a partial one.

The one implementation behind :mod:`unmask.viz` (``to_png``, ``to_npy``) and :mod:`unmask.report`.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then move it over ``path`` in one step.

    Missing parent folders are created. On any error the temporary file is removed and an existing
    ``path`` is left untouched. The new file keeps the old one's permissions (else the umask default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else _default_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (characters UTF-8 cannot hold, such as the escapes
    Python gives file names that are not valid UTF-8, are written as backslash escapes)."""
    return write_bytes(path, text.encode("utf-8", errors="backslashreplace"))


#: Key under which :func:`write_json` lists the values it wrote as ``null`` because they were NaN or infinite.
NON_FINITE_KEY = "non_finite_as_null"


def json_safe(data: Any, where: str = "$", replaced: list[str] | None = None) -> Any:
    """``data`` with every NaN or infinite float replaced by ``None``; the JSON paths of those go to ``replaced``."""
    if isinstance(data, float) or isinstance(data, np.floating):
        if math.isfinite(data):
            return float(data)
        if replaced is not None:
            replaced.append(where)
        return None
    if isinstance(data, dict):
        return {key: json_safe(value, f"{where}.{key}", replaced) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value, f"{where}[{k}]", replaced) for k, value in enumerate(data)]
    if isinstance(data, np.integer):
        return int(data)
    return data


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON to ``path`` atomically.

    JSON has no NaN or infinity: such values are written as ``null``, and a dict gets the key
    ``non_finite_as_null`` listing where they were (so a reader can tell them from missing values).
    """
    replaced: list[str] = []
    clean = json_safe(data, replaced=replaced)
    if replaced and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = replaced
    return write_text(path, json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_png(path: str | os.PathLike[str], image: Image.Image) -> Path:
    """Save the PIL ``image`` (in its own mode) as PNG to ``path`` atomically."""
    return atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def write_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """Save ``array`` as it is (dtype and shape kept, no pickles) as ``.npy`` to ``path`` atomically."""
    data = np.asarray(array)
    return atomic_write(path, lambda handle: np.save(handle, data, allow_pickle=False))
