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


def json_safe(
    data: Any, where: str = "$", replaced: list[str] | None = None, *, default: Callable[[Any], Any] | None = None
) -> Any:
    """``data`` as JSON can hold it: every NaN or infinite float becomes ``None`` (its JSON path goes to
    ``replaced``), NumPy scalars become Python numbers, tuples lists, dict keys strings (as ``json.dumps``
    writes them, so the result equals what reading the file back gives).
    A value of any other type is given to ``default`` (e.g. ``repr``) and the result cleaned in turn;
    without ``default`` it is kept as it is. The one sanitiser behind every JSON file unmask writes."""
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, np.bool_):
        return bool(data)
    if isinstance(data, (int, np.integer)):
        return int(data)
    if isinstance(data, (float, np.floating)):
        if math.isfinite(data):
            return float(data)
        if replaced is not None:
            replaced.append(where)
        return None
    if isinstance(data, dict):
        return {_json_key(key): json_safe(value, f"{where}.{key}", replaced, default=default) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value, f"{where}[{k}]", replaced, default=default) for k, value in enumerate(data)]
    if default is None:
        return data
    return json_safe(default(data), where, replaced)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def write_json(path: str | os.PathLike[str], data: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``data`` as indented UTF-8 JSON to ``path`` atomically.

    JSON has no NaN or infinity: such values are written as ``null``, and a dict gets the key
    ``non_finite_as_null`` listing where they were (so a reader can tell them from missing values).
    Values of other types go through ``default`` (see :func:`json_safe`).
    """
    replaced: list[str] = []
    clean = json_safe(data, replaced=replaced, default=default)
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
