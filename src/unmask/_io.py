"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never a partial one.

The one implementation behind :mod:`unmask.viz` (``to_png``, ``to_npy``) and :mod:`unmask.report`.
"""
from __future__ import annotations

import json
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
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON (NaN and Inf refused) to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_png(path: str | os.PathLike[str], image: Image.Image) -> Path:
    """Save the PIL ``image`` (in its own mode) as PNG to ``path`` atomically."""
    return atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def write_npy(path: str | os.PathLike[str], array: Any) -> Path:
    """Save ``array`` as it is (dtype and shape kept, no pickles) as ``.npy`` to ``path`` atomically."""
    data = np.asarray(array)
    return atomic_write(path, lambda handle: np.save(handle, data, allow_pickle=False))
