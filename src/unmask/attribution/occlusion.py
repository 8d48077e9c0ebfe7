"""Occlusion: the drop of the target score when a sliding window of the input is replaced by a fill."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..targets import Target, selection
from .._utils.validation import check_int, check_optional_int
from ._base import Attribution, broadcast_like, check_fill, registered
from ._batching import per_row, row_chunks, row_target


def _sizes(name: str, value: Any) -> int | tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(check_int(name, size) for size in value)
    return check_int(name, value)


def _per_dim(value: int | tuple[int, ...], dims: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    if len(value) != dims:
        raise ValueError(f"{name} {value} has {len(value)} entries for inputs with {dims} spatial dimensions")
    return value


def window_masks(starts: torch.Tensor, window: tuple[int, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Boolean masks ``(P, *shape)``: ``True`` inside the window starting at each row of ``starts`` ``(P, D)``."""
    mask = torch.ones((starts.shape[0],) + (1,) * len(shape), dtype=torch.bool, device=starts.device)
    for dim, (size, width) in enumerate(zip(shape, window, strict=True)):
        coords = torch.arange(size, device=starts.device)
        begin = starts[:, dim : dim + 1]
        inside = (coords >= begin) & (coords < begin + width)
        mask = mask & inside.reshape((-1,) + (1,) * dim + (size,) + (1,) * (len(shape) - dim - 1))
    return mask


def coverage(axes: list[torch.Tensor], window: tuple[int, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """How many windows cover each element ``shape``; windows start at the product of ``axes``."""
    covered = torch.ones((), dtype=torch.long, device=axes[0].device)
    for dim, (begin, size, width) in enumerate(zip(axes, shape, window, strict=True)):
        coords = torch.arange(size, device=begin.device)
        per_axis = ((coords >= begin[:, None]) & (coords < begin[:, None] + width)).sum(0)
        covered = covered * per_axis.reshape((size,) + (1,) * (len(shape) - dim - 1))
    return covered


@registered("occlusion")
class Occlusion(Attribution):
    """Occlusion; Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.

    A window spanning all channels slides over the spatial dimensions with the given stride (the last
    window of a row may stick out and is cut at the border). With ``x^(p)`` the input whose window ``p`` is
    set to ``fill``, ``R_i = mean over windows p covering i of (f_c(x) - f_c(x^(p)))``, exactly Captum's
    ``Occlusion`` with ``sliding_window_shapes=(C, *window)``, ``strides=(C, *stride)``, ``baselines=fill``.

    Parameters:
        window: window size, an int for every spatial dimension or a tuple; default ``8`` (Zennit's
            default; Captum has none). Clipped to the input's size.
        stride: step of the window, int or tuple, at most the window where the window is smaller than
            the input; default ``None`` = the window (non-overlapping, Zennit's ``window=8, stride=8``;
            Captum's default stride is 1).
        fill: value of occluded elements, a number or a tensor broadcastable to the inputs (e.g. the
            per-channel mean ``(C, 1, 1)``); default ``0.0``.
        batch_size: most occluded copies per forward pass, default ``64``.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int | tuple[int, ...] = 8,
        stride: int | tuple[int, ...] | None = None,
        fill: float | torch.Tensor = 0.0,
        batch_size: int | None = 64,
    ) -> None:
        super().__init__(model)
        self.window = _sizes("window", window)
        self.stride = None if stride is None else _sizes("stride", stride)
        self.fill = check_fill("fill", fill)
        self.batch_size = check_optional_int("batch_size", batch_size)

    def _geometry(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Window, stride and number of window positions per spatial dimension."""
        window = _per_dim(self.window, len(shape), "window")
        window = tuple(min(w, size) for w, size in zip(window, shape, strict=True))
        stride = window if self.stride is None else _per_dim(self.stride, len(shape), "stride")
        for size, w, s in zip(shape, window, stride, strict=True):
            if w < size and s > w:
                raise ValueError(f"stride {stride} exceeds window {window}: some elements would never be occluded")
        counts = tuple(math.ceil((size - w) / s) + 1 for size, w, s in zip(shape, window, stride, strict=True))
        return window, stride, counts

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if inputs.dim() < 3:
            raise ValueError(f"occlusion needs inputs shaped (batch, channels, *spatial), got {tuple(inputs.shape)}")
        shape = tuple(inputs.shape[2:])
        window, stride, counts = self._geometry(shape)
        fill = broadcast_like("fill", self.fill, inputs)
        device, batch = inputs.device, inputs.shape[0]
        axes = [torch.arange(count, device=device) * step for count, step in zip(counts, stride, strict=True)]
        starts = torch.cartesian_prod(*axes).reshape(-1, len(shape))
        total = inputs.new_zeros((batch,) + shape)
        with torch.no_grad():
            output = self.model(inputs)
            score, index = selection(output, target)
            for rows in row_chunks(starts.shape[0] * batch, self.batch_size, device):
                position, sample = rows // batch, rows % batch
                mask = window_masks(starts[position], window, shape)
                occluded = torch.where(mask.unsqueeze(1), fill[sample], inputs[sample])
                drop = score[sample] - selection(self.model(occluded), row_target(target, index, sample))[0]
                total.index_add_(0, sample, per_row(drop, mask.dim()) * mask)
        covered = coverage(axes, window, shape).to(inputs.dtype)
        return (total / covered).unsqueeze(1).expand_as(inputs).contiguous(), output, index
