"""The streaming quantile estimators of network dissection, against their documented definitions:
exact (TailQuantile: the (k+1)-th largest value, k = floor(quantile * n)), within one bin width
(HistogramQuantile), and the choice between them (streaming_quantile)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unmask.analyze.dissect import HistogramQuantile, TailQuantile, streaming_quantile


def exact_threshold(values: np.ndarray, quantile: float) -> np.ndarray:
    """The documented definition: the (k+1)-th largest, k = floor(quantile * n)."""
    n = values.shape[1]
    k = min(int(math.floor(quantile * n + 1e-9)), n - 1)
    return np.sort(values, axis=1)[:, n - 1 - k]


@pytest.mark.parametrize("quantile", [0.005, 0.05, 0.3])
def test_tail_quantile_is_exact_over_uneven_batches(quantile):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(size=(4, 6000)), rng.exponential(size=(4, 4007)) * 3], axis=1).astype(np.float32)
    values[2, ::7] = 1.5  # ties
    estimator = TailQuantile(4, values.shape[1], quantile)
    start = 0
    for size in [1, 13, 500, 2048, 7445]:  # 10007 values
        estimator.update(torch.from_numpy(values[:, start : start + size]))
        start += size
    assert start == values.shape[1]
    np.testing.assert_array_equal(estimator.threshold().numpy(), exact_threshold(values, quantile))


def test_histogram_quantile_within_its_documented_error():
    rng = np.random.default_rng(1)
    # the range grows in both directions after the first batch, and units differ in scale
    first = rng.uniform(0, 1, size=(3, 1000))
    later = np.concatenate([rng.normal(2, 3, size=(3, 20000)), rng.normal(-5, 1, size=(3, 3000))], axis=1)
    later *= np.array([[1.0], [10.0], [0.01]])
    values = np.concatenate([first, later], axis=1).astype(np.float32)
    estimator = HistogramQuantile(3, values.shape[1], 0.005, bins=1024)
    for start in range(0, values.shape[1], 1000):
        estimator.update(torch.from_numpy(values[:, start : start + 1000]))
    exact = exact_threshold(values, 0.005)
    bound = 2 * (values.max(1) - values.min(1)) / 1024
    error = np.abs(estimator.threshold().numpy() - exact)
    assert (error <= bound).all(), (error, bound)
    assert (error > 0).any()  # it is an approximation, and the test would notice an exact copy


def test_streaming_quantile_picks_exact_until_the_tail_is_too_big():
    assert isinstance(streaming_quantile(8, 10_000, 0.005), TailQuantile)
    assert isinstance(streaming_quantile(8, 10_000, 0.005, exact_limit=100), HistogramQuantile)
    with pytest.raises(ValueError, match="quantile method"):
        streaming_quantile(8, 100, 0.005, method="tdigest")


def test_tail_quantile_before_the_stream_ends_is_the_quantile_of_what_came():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(2, 3000)).astype(np.float32)
    estimator = TailQuantile(2, 10_000, 0.01)  # announced 10,000, only 3,000 arrive
    estimator.update(torch.from_numpy(values))
    np.testing.assert_array_equal(estimator.threshold().numpy(), exact_threshold(values, 0.01))


def test_histogram_quantile_of_constant_units_and_a_wide_first_batch():
    values = np.concatenate([np.full((1, 5000), 3.0), np.linspace(-1e3, 1e3, 5000)[None]]).astype(np.float32)
    estimator = HistogramQuantile(2, 5000, 0.05)
    estimator.update(torch.from_numpy(values))
    threshold = estimator.threshold().numpy()
    assert abs(threshold[0] - 3.0) <= 1e-5 * 3.0  # a constant unit: its constant, whatever the bin
    assert abs(threshold[1] - exact_threshold(values[1:], 0.05)[0]) <= 2 * 2e3 / 4096


@pytest.mark.parametrize("estimator", [TailQuantile, HistogramQuantile])
def test_estimators_refuse_wrong_shapes_and_empty_streams(estimator):
    quantiles = estimator(3, 100, 0.1)
    with pytest.raises(RuntimeError, match="no values"):
        quantiles.threshold()
    with pytest.raises(ValueError, match=r"expected \(3, m\)"):
        quantiles.update(torch.zeros(2, 10))
