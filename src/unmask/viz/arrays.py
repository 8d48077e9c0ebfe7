"""Raw relevance as ``.npy`` files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_npy
from .normalize import as_array


def to_npy(relevance: Any, path: str | os.PathLike[str], full: bool = False) -> Path:
    """Write ``(C, H, W)`` or ``(B, C, H, W)`` relevance as float32 ``.npy``, atomically.

    By default the channels are summed: ``(H, W)`` or ``(B, H, W)``; ``full=True`` keeps the tensor as is.
    """
    if Path(path).suffix.lower() != ".npy":
        raise ValueError(f"an array path must end in .npy, got {str(path)!r}")
    array = as_array(relevance)
    if array.ndim not in (3, 4):
        raise ValueError(f"relevance must be (C, H, W) or (B, C, H, W), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("relevance contains NaN or Inf values")
    data = np.ascontiguousarray(array if full else array.sum(-3), dtype=np.float32)
    return write_npy(path, data)
