"""Per-unit top quantiles over a stream of activations: exact (:class:`TailQuantile`) or in fixed
memory (:class:`HistogramQuantile`), and :func:`streaming_quantile` to pick one."""
from __future__ import annotations

import math

import torch

__all__ = ["EXACT_LIMIT", "HISTOGRAM_BINS", "HistogramQuantile", "TailQuantile", "streaming_quantile"]

#: Exact tails up to this many values in all (per view: units x (k + 1)) are kept; beyond it a histogram.
EXACT_LIMIT = 1 << 25
#: Bins of the histogram quantile estimator (per unit).
HISTOGRAM_BINS = 4096


def _tail_count(total: int, quantile: float) -> int:
    """How many values lie strictly above the threshold: ``floor(quantile * total)``."""
    return int(math.floor(quantile * total + 1e-9))


class TailQuantile:
    """Exact per-unit top quantile over a stream, keeping only the tail.

    The threshold of a unit is the ``(k + 1)``-th largest of its ``n`` values with
    ``k = floor(quantile * n)``: exactly ``k`` values lie above it when there are no ties (for
    ``n`` values ``x``: ``numpy.sort(x)[n - 1 - k]``). ``n`` must be known in advance (it is: images
    times positions). Memory: ``units x (k + 1)`` values; each batch only looks at the values above the
    current cut, so after the first batches an update costs little more than one comparison per value.
    """

    method = "exact"

    def __init__(self, units: int, total: int, quantile: float, device: torch.device | str = "cpu") -> None:
        if total < 1:
            raise ValueError(f"total must be positive, got {total}")
        self.units, self.total, self.quantile = int(units), int(total), float(quantile)
        self.k = min(_tail_count(total, quantile), total - 1)
        self.keep = self.k + 1
        self.buffer = torch.empty(self.units, 0, device=device)
        self.seen = 0

    def update(self, values: torch.Tensor) -> None:
        """``values``: ``(units, m)``, one row per unit."""
        if values.ndim != 2 or values.shape[0] != self.units:
            raise ValueError(f"expected ({self.units}, m) values, got {tuple(values.shape)}")
        values = values.detach().float()
        self.seen += values.shape[1]
        if self.buffer.shape[1] >= self.keep:
            cut = self.buffer[:, -1:]  # the buffer is sorted descending: its last column is the cut
            above = int((values > cut).sum(1).max())
            if above == 0:
                return
            values = values.topk(min(above, values.shape[1]), dim=1, sorted=False).values
        merged = torch.cat([self.buffer, values], dim=1)
        self.buffer = merged.topk(min(self.keep, merged.shape[1]), dim=1, sorted=True).values

    def threshold(self) -> torch.Tensor:
        """``(units,)`` thresholds (the smallest value seen when fewer than ``k + 1`` values came)."""
        if self.buffer.shape[1] == 0:
            raise RuntimeError("no values seen")
        if self.seen != self.total:
            k = min(_tail_count(self.seen, self.quantile), self.seen - 1)
            return self.buffer[:, min(k, self.buffer.shape[1] - 1)].clone()
        return self.buffer[:, -1].clone()


class HistogramQuantile:
    """Approximate per-unit top quantile over a stream in fixed memory: ``units x bins`` counts.

    Each unit has ``bins`` equal bins over a range that starts at the first batch's min..max and
    doubles (merging neighbouring bins, so counts stay exact at the coarser width) whenever a value
    falls outside. The threshold is read off the cumulative counts from the top and interpolated
    within its bin, assuming values spread evenly inside a bin.

    Error: the threshold is within one bin width of the exact one (:class:`TailQuantile`), and a bin
    is at most ``2 * (max - min) / bins`` wide (max, min of the unit's values), so with 4096 bins the
    error is below 0.05 % of the unit's range; the fraction of values above the threshold differs from
    ``quantile`` by at most the fraction of values in that one bin.
    """

    method = "histogram"

    def __init__(
        self, units: int, total: int, quantile: float, device: torch.device | str = "cpu", bins: int = HISTOGRAM_BINS
    ) -> None:
        if bins < 2 or bins % 2:
            raise ValueError(f"bins must be an even number >= 2, got {bins}")
        self.units, self.total, self.quantile, self.bins = int(units), int(total), float(quantile), int(bins)
        self.device = torch.device(device)
        dtype = torch.float64 if self.device.type in ("cpu", "cuda") else torch.float32
        self.counts = torch.zeros(self.units, self.bins, dtype=dtype, device=device)
        self.low = torch.zeros(self.units, dtype=torch.float64, device=device)
        self.width = torch.zeros(self.units, dtype=torch.float64, device=device)
        self.seen = 0

    def update(self, values: torch.Tensor) -> None:
        if values.ndim != 2 or values.shape[0] != self.units:
            raise ValueError(f"expected ({self.units}, m) values, got {tuple(values.shape)}")
        values = values.detach().to(torch.float64)
        vmin, vmax = values.min(1).values, values.max(1).values
        if self.seen == 0:
            span = (vmax - vmin).clamp_min(0)
            tiny = torch.maximum(vmax.abs(), vmin.abs()).clamp_min(1.0) * 1e-6
            self.width = torch.maximum(span, tiny) * (1 + 1e-6) / self.bins
            self.low = vmin - 0.5 * (self.width * self.bins - span)
        else:
            self._grow(vmin, vmax)
        self.seen += values.shape[1]
        index = ((values - self.low[:, None]) / self.width[:, None]).floor().clamp_(0, self.bins - 1).long()
        self.counts.scatter_add_(1, index, torch.ones_like(index, dtype=self.counts.dtype))

    def _grow(self, vmin: torch.Tensor, vmax: torch.Tensor) -> None:
        half = self.bins // 2
        while True:
            high = self.low + self.width * self.bins
            below, above = vmin < self.low, vmax >= high
            grow = below | above
            if not bool(grow.any()):
                return
            merged = self.counts.view(self.units, half, 2).sum(2)
            new = torch.zeros_like(self.counts)
            # extend upwards: old range becomes the lower half; downwards: the upper half
            up_rows, down_rows = grow & ~below, below
            new[up_rows, :half] = merged[up_rows]
            new[down_rows, half:] = merged[down_rows]
            new[~grow] = self.counts[~grow]
            self.low = torch.where(down_rows, self.low - self.width * self.bins, self.low)
            self.width = torch.where(grow, self.width * 2, self.width)
            self.counts = new

    def threshold(self) -> torch.Tensor:
        if self.seen == 0:
            raise RuntimeError("no values seen")
        k = min(_tail_count(self.seen, self.quantile), self.seen - 1)
        rank = k + 1  # the threshold is the rank-th largest value
        from_top = self.counts.flip(1).cumsum(1)  # values in this bin and above
        position = (from_top >= rank).to(torch.int64).argmax(1)  # first bin (from the top) reaching the rank
        bin_index = self.bins - 1 - position
        count = self.counts.gather(1, bin_index[:, None])[:, 0]
        above = from_top.gather(1, position[:, None])[:, 0] - count
        inside = (rank - above - 0.5) / count.clamp_min(1)
        top_edge = self.low + (bin_index + 1).to(torch.float64) * self.width
        return (top_edge - inside * self.width).float()


def streaming_quantile(
    units: int,
    total: int,
    quantile: float,
    device: torch.device | str = "cpu",
    method: str = "auto",
    exact_limit: int = EXACT_LIMIT,
) -> TailQuantile | HistogramQuantile:
    """The estimator for ``units`` streams of ``total`` values each: ``"exact"`` (:class:`TailQuantile`),
    ``"histogram"`` (:class:`HistogramQuantile`), or ``"auto"``: exact when its tail buffer holds at most
    ``exact_limit`` values in all, else the histogram."""
    if method == "exact":
        return TailQuantile(units, total, quantile, device)
    if method == "histogram":
        return HistogramQuantile(units, total, quantile, device)
    if method != "auto":
        raise ValueError(f"quantile method must be 'auto', 'exact' or 'histogram', got {method!r}")
    keep = _tail_count(total, quantile) + 1
    if units * keep <= exact_limit:
        return TailQuantile(units, total, quantile, device)
    return HistogramQuantile(units, total, quantile, device)
