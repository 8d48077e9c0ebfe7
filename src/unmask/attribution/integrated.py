"""Integrated gradients along the straight path from a baseline to the input, batched over the path."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._utils.deprecation import renamed_attribute, renamed_keywords
from ..targets import Target, resolve_target
from .._utils.validation import check_int, check_optional_int
from ._base import Attribution, broadcast_like, check_fill, registered
from ._batching import per_row, row_chunks, row_target
from .gradient import input_gradient

QUADRATURES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def quadrature(name: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha_k`` in ``[0, 1]`` and weights ``w_k`` (summing to 1) of an ``steps``-point rule.

    Gauss-Legendre nodes and weights come from ``numpy.polynomial.legendre.leggauss`` mapped from
    ``[-1, 1]`` to ``[0, 1]`` (as Captum does). Riemann rules use ``steps`` equal cells of width ``1/steps``
    evaluated at the left, right or middle of each cell. The trapezoid rule evaluates ``k / (steps - 1)``,
    ``k = 0 .. steps-1``, with weights ``1 / (steps - 1)`` halved at both ends; Captum's
    ``riemann_trapezoid`` uses the same points with width ``1 / steps``, so its weights sum to
    ``(steps - 1) / steps`` and its result is ours times that factor.
    """
    if name == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    cells = np.arange(steps, dtype=np.float64)
    if name == "riemann_trapezoid":
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
        return cells / (steps - 1), weights
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[name]
    return (cells + offset) / steps, np.full(steps, 1.0 / steps)


@registered("integrated_gradients")
class IntegratedGradients(Attribution):
    """Integrated gradients; Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.

    ``R_i = (x_i - x'_i) * sum_k w_k * d f_c(x' + alpha_k (x - x')) / d x_i``, a quadrature of
    ``(x_i - x'_i) * int_0^1 d f_c(x' + a (x - x')) / d x_i da``; the attributions of a sample sum to
    ``f_c(x) - f_c(x')`` up to the quadrature error (completeness).

    Parameters (defaults as Captum's ``IntegratedGradients``):
        baseline: ``x'``, a number or a tensor broadcastable to the inputs (one sample ``(C, H, W)`` or a
            whole batch); default ``0.0``.
        steps: number of points on the path, default ``50``.
        quadrature: ``"gausslegendre"`` (default), ``"riemann_trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"`` or ``"riemann_middle"``; see :func:`quadrature` (our trapezoid weights sum
            to 1, Captum's to ``(steps - 1) / steps``).
        batch_size: most path points per forward/backward pass; ``None`` (default) evaluates all
            ``steps * batch`` points in one pass. (Captum's name, ``internal_batch_size``, is a deprecated
            alias.)

    A callable target is applied to batches of path points, so it must score every row on its own.
    """

    internal_batch_size = renamed_attribute("batch_size")

    @renamed_keywords(internal_batch_size="batch_size")
    def __init__(
        self,
        model: nn.Module,
        baseline: float | torch.Tensor = 0.0,
        steps: int = 50,
        quadrature: str = "gausslegendre",
        batch_size: int | None = None,
    ) -> None:
        super().__init__(model)
        if quadrature not in QUADRATURES:
            raise ValueError(f"unknown quadrature {quadrature!r}; choose one of {', '.join(QUADRATURES)}")
        self.baseline = check_fill("baseline", baseline)
        self.steps = check_int("steps", steps, minimum=2 if quadrature == "riemann_trapezoid" else 1)
        self.quadrature = quadrature
        self.batch_size = check_optional_int("batch_size", batch_size)

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        baseline = broadcast_like("baseline", self.baseline, inputs)
        with torch.no_grad():
            output = self.model(inputs)
        index = resolve_target(output, target)
        points, weights = quadrature(self.quadrature, self.steps)
        alphas = torch.as_tensor(points, dtype=inputs.dtype, device=inputs.device)
        weights_t = torch.as_tensor(weights, dtype=inputs.dtype, device=inputs.device)
        batch, dims = inputs.shape[0], inputs.dim()
        difference = inputs - baseline
        integral = torch.zeros_like(inputs)
        for rows in row_chunks(self.steps * batch, self.batch_size, inputs.device):
            step, sample = rows // batch, rows % batch
            path = baseline[sample] + per_row(alphas[step], dims) * difference[sample]
            grad, _, _ = input_gradient(self.model, path, row_target(target, index, sample))
            integral.index_add_(0, sample, grad * per_row(weights_t[step], dims))
        return difference * integral, output, index
