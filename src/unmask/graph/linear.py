"""Weighted layers (convolutions and dense layers) as explicit ``f(x, weight, bias)`` with a transpose.

Relevance rules evaluate a layer with modified weights and inputs and need the transposed map
``g -> J^T g`` without an autograd forward. ``Affine`` gives both for modules and for functional
calls (``F.conv2d`` inside a custom "same"-padding convolution, ``F.linear``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

_CONV_FUNCTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_TRANSPOSED_FUNCTIONS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _tuple(value: int | tuple[int, ...] | list[int], dims: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [int(value)] * dims


@dataclass
class Affine:
    """``y = f(x, weight, bias)`` for a convolution or a dense layer, with its own copy of the parameters.

    ``kind`` is ``"convolution"`` or ``"linear"``. ``transposed`` marks transposed convolutions, whose
    weight layout is ``(in, out / groups, ...)``. ``padding`` is numeric for the fast transpose; string
    paddings and non-zero padding modes fall back to autograd.
    """

    kind: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: list[int] = field(default_factory=list)
    padding: list[int] | str = field(default_factory=list)
    dilation: list[int] = field(default_factory=list)
    groups: int = 1
    transposed: bool = False
    output_padding: list[int] = field(default_factory=list)
    padded: Callable[[torch.Tensor], torch.Tensor] | None = None  # non-zero padding mode, applied first
    pad: list[int] | None = None  # an asymmetric zero pad applied first (``F.pad`` order), e.g. "same" padding

    @classmethod
    def convolution(cls, weight, bias, stride=1, padding=0, dilation=1, groups=1, transposed=False,
                    output_padding=0, padded=None) -> "Affine":
        dims = weight.dim() - 2
        return cls(
            "convolution", weight, bias, _tuple(stride, dims),
            padding if isinstance(padding, str) else _tuple(padding, dims), _tuple(dilation, dims), int(groups),
            transposed, _tuple(output_padding, dims), padded,
        )

    @classmethod
    def dense(cls, weight, bias) -> "Affine":
        return cls("linear", weight, bias)

    @property
    def out_channels(self) -> int:
        """Number of output channels (features for a dense layer)."""
        return self.weight.shape[1] * self.groups if self.transposed else self.weight.shape[0]

    def shifted_bias(self, bias: torch.Tensor | None, shift: float) -> torch.Tensor | None:
        """``bias + shift`` per output channel (``bias=None`` counts as zeros); ``None`` when there is neither."""
        if not shift:
            return bias
        if bias is None:
            return torch.full((self.out_channels,), shift, dtype=self.weight.dtype, device=self.weight.device)
        return bias + shift

    @property
    def out_channel_dim(self) -> int:
        """Dimension of ``weight`` that indexes output channels."""
        return 1 if self.transposed else 0

    def __call__(self, x: torch.Tensor, weight: torch.Tensor | None = None,
                 bias: torch.Tensor | None | str = "keep") -> torch.Tensor:
        """Evaluate with (optionally modified) weight and bias; ``bias=None`` drops the bias."""
        weight = self.weight if weight is None else weight
        bias = self.bias if isinstance(bias, str) else bias
        if self.kind == "linear":
            return F.linear(x, weight, bias)
        if self.padded is not None:
            x = self.padded(x)
        if self.pad is not None:
            x = F.pad(x, self.pad)
        dims = weight.dim() - 2
        if self.transposed:
            return _TRANSPOSED_FUNCTIONS[dims](
                x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
            )
        return _CONV_FUNCTIONS[dims](x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def transpose(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``J^T grad``: the gradient of ``<grad, f(x, weight)>`` with respect to ``x`` (bias irrelevant)."""
        weight = self.weight if weight is None else weight
        if self.kind == "linear":
            return grad @ weight
        if self.padded is None and not self.transposed and not isinstance(self.padding, str):
            padded = x if self.pad is None else F.pad(x, self.pad)
            result = torch.ops.aten.convolution_backward(
                grad, padded, weight, None, self.stride, self.padding, self.dilation, False,
                [0] * (weight.dim() - 2), self.groups, [True, False, False],
            )[0]
            return result if self.pad is None else F.pad(result, [-p for p in self.pad])  # crop the pad
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (result,) = torch.autograd.grad(self(leaf, weight, None), leaf, grad)
        return result

    def reshape_channel(self, values: torch.Tensor) -> torch.Tensor:
        """Per-output-channel ``values`` shaped to broadcast against ``weight``."""
        shape = [1] * self.weight.dim()
        shape[self.out_channel_dim] = -1
        return values.reshape(shape)

    def scaled(self, scale: torch.Tensor, shift: torch.Tensor) -> "Affine":
        """This layer followed by ``y * scale + shift`` per output channel (BatchNorm folding)."""
        groups = self.groups if self.transposed else 1
        if groups != 1:
            raise ValueError("cannot fold a per-channel scale into a grouped transposed convolution")
        dtype = self.weight.dtype
        scale, shift = torch.as_tensor(scale).double(), torch.as_tensor(shift).double()  # rounded once, below
        bias = self.bias.double() if self.bias is not None else torch.zeros_like(scale)
        weight = (self.weight.double() * self.reshape_channel(scale)).to(dtype)
        return Affine(
            self.kind, weight, (bias * scale + shift).to(dtype), self.stride, self.padding,
            self.dilation, self.groups, self.transposed, self.output_padding, self.padded, self.pad,
        )

    def zero_padded(self, amounts: list[int]) -> "Affine | None":
        """This convolution applied after ``F.pad(x, amounts)`` with zeros, as one layer (``None`` if it cannot
        be: transposed, string or non-zero-mode padding, negative amounts)."""
        dims = self.weight.dim() - 2
        if (self.kind != "convolution" or self.transposed or self.padded is not None or self.pad is not None
                or isinstance(self.padding, str) or len(amounts) > 2 * dims or any(a < 0 for a in amounts)):
            return None
        amounts = list(amounts) + [0] * (2 * dims - len(amounts))
        low = [amounts[2 * (dims - 1 - d)] + self.padding[d] for d in range(dims)]
        high = [amounts[2 * (dims - 1 - d) + 1] + self.padding[d] for d in range(dims)]
        padding, pad = (low, None) if low == high else ([0] * dims, [n for d in reversed(range(dims))
                                                                     for n in (low[d], high[d])])
        return Affine(self.kind, self.weight, self.bias, self.stride, padding, self.dilation, self.groups,
                      pad=pad)

    def blocks(self, inputs: list[torch.Tensor], weights: list[list[torch.Tensor]]) -> "Blocks":
        """This layer on several input blocks with a block matrix of weights, as one call (see :class:`Blocks`)."""
        return Blocks(self, inputs, weights)


class Blocks:
    """One evaluation and one transpose of a layer for several (input, weight) pairs at once.

    With input blocks ``x_j`` and weights ``W_ij`` (output block ``i``, input block ``j``; only the first
    ``len(inputs)`` columns are used), :meth:`evaluate` gives ``z_i = sum_j f(x_j; W_ij) + b_i`` and
    :meth:`gather` gives ``sum_j x_j * [sum_i W_ij^T s_i]``, where ``s_i`` is what the caller wrote into the
    blocks ``z_i`` in place. The blocks are stacked along channels (for grouped convolutions in the order
    group, block, channel, so groups stay intact): the same arithmetic as separate calls, with one pass over
    the output-sized tensors instead of one per pair; rules such as z+ on ``[x+, x-]`` or alpha-beta's two
    halves need one call each way instead of four.
    """

    def __init__(self, affine: Affine, inputs: list[torch.Tensor], weights: list[list[torch.Tensor]]):
        self.affine, self.inputs = affine, list(inputs)
        rows = [list(row[:len(inputs)]) for row in weights]
        self.rows = len(rows)
        linear = affine.kind == "linear"
        self.groups = 1 if linear else affine.groups
        self._dim = -1 if linear else 1  # channel dimension of inputs and outputs
        in_dim, out_dim = (0, 1) if affine.transposed else (1, 0)  # weight dimensions of inputs and outputs
        in_grouped, out_grouped = affine.transposed, not affine.transposed and not linear
        self.x = self._stack(self.inputs, self._dim, self.groups)
        self.weight = self._stack([self._stack(row, in_dim, self.groups if in_grouped else 1) for row in rows],
                                  out_dim, self.groups if out_grouped else 1)
        self.buffer: torch.Tensor | None = None

    @staticmethod
    def _stack(parts: list[torch.Tensor], dim: int, groups: int) -> torch.Tensor:
        """Concatenate along ``dim``, group by group (order: group, part, channel within the group)."""
        if len(parts) == 1:
            return parts[0]
        if groups == 1:
            return torch.cat(parts, dim)
        dim = dim % parts[0].dim()
        return torch.stack([p.unflatten(dim, (groups, -1)) for p in parts], dim + 1).flatten(dim, dim + 2)

    def block(self, tensor: torch.Tensor) -> torch.Tensor:
        """A tensor shaped like the layer's output, shaped like one output block (split by groups)."""
        if self.groups == 1 or self.rows == 1:
            return tensor
        return tensor.unflatten(self._dim, (self.groups, -1))

    def evaluate(self, biases: list[torch.Tensor | None] | None = None, shifts: list[float] | None = None
                 ) -> list[torch.Tensor]:
        """``z_i = sum_j f(x_j; W_ij) + b_i + shift_i`` as views of one buffer, each shaped like :meth:`block`.

        ``shifts`` (e.g. a stabiliser of known sign) are added through the bias, without a pass of their own.
        """
        biases = list(biases) if biases is not None else [None] * self.rows
        shifts = list(shifts) if shifts is not None else [0.0] * self.rows
        bias = None
        if any(b is not None for b in biases) or any(shifts):
            parts = [self.affine.shifted_bias(b, s) for b, s in zip(biases, shifts)]
            zeros = torch.zeros(self.affine.out_channels, dtype=self.weight.dtype, device=self.weight.device)
            bias = self._stack([zeros if p is None else p for p in parts], 0, self.groups)
        self.buffer = self.affine(self.x, self.weight, bias)
        if self.rows == 1:
            return [self.buffer]
        if self.groups == 1:
            return list(self.buffer.chunk(self.rows, self._dim))
        split = self.buffer.unflatten(self._dim, (self.groups, self.rows, -1))
        return list(split.unbind(self._dim % split.dim() + 1))

    def gather(self, ratios: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_j x_j * [sum_i W_ij^T s_i]`` for the ``s_i`` written into the blocks of :meth:`evaluate`
        (or, with one output block, for ``ratios`` shaped like the layer's output)."""
        ratios = self.buffer if ratios is None else ratios
        if ratios is None:
            raise RuntimeError("Blocks.gather needs evaluate() first or the ratios")
        grad = self.affine.transpose(ratios, self.x, self.weight)
        self.buffer = None
        if len(self.inputs) == 1:
            return grad.mul_(self.inputs[0])
        grad.mul_(self.x)
        dim = self._dim % grad.dim()
        return grad.unflatten(dim, (self.groups, len(self.inputs), -1)).sum(dim + 1).flatten(dim, dim + 1)
