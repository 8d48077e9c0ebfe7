"""Atomic writes for reports (the shared implementation in :mod:`unmask._io`): a reader (or a crash)
sees the old file or the complete new one, never half of one."""
from __future__ import annotations

from .._io import write_bytes, write_json, write_npy, write_png, write_text

__all__ = ["write_bytes", "write_json", "write_npy", "write_png", "write_text"]
