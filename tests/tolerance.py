"""Comparing float32 results computed in different batch sizes, thread counts or devices.

BLAS blocks a matrix product differently for a batch of 6 than for a batch of 20, so the same logit can
differ in its last bits (differences of 1.5e-6 on logits of order 1 were seen): an element-wise
``rtol=1e-6`` breaks on some machines. Compare instead to the array's own scale: ``atol = rtol * max|expected|``
is about 800 float32 ulps of its largest value, far below any real error and far above any rounding.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Relative tolerance for float32 numbers that went through different reduction orders.
RTOL = 1e-4


def as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def assert_close_across_batches(actual: Any, expected: Any, rtol: float = RTOL) -> None:
    """``actual`` equals ``expected`` up to float32 rounding that depends on how the work was batched."""
    actual, expected = as_array(actual), as_array(expected)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, np.finfo(np.float32).tiny))
