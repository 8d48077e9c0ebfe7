"""SmoothGrad: average a method's relevance over noisy copies of the input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..registry import get
from ..targets import Target, resolve_target
from .._utils.validation import check_bool, check_float, check_int, check_optional_int
from ._base import Attribution, registered
from ._batching import per_row, rebatch, row_target


@registered("smoothgrad")
class SmoothGrad(Attribution):
    """SmoothGrad; Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017.

    ``R(x) = 1/n sum_k R_method(x + eps_k)``, ``eps_k ~ N(0, sigma^2)`` with
    ``sigma = noise_level * (max(x) - min(x))`` per sample; ``squared=True`` averages ``R_method^2``
    (SmoothGrad-Squared, Hooker et al., 2019).

    Parameters:
        base_method: registry name of the smoothed method, default ``"gradient"``; any further keyword
            parameters are passed to it, e.g.
            ``unmask.explain(model, x, "smoothgrad", base_method="guided_backprop", samples=10)``.
            (Not ``method``: that keyword of :func:`unmask.explain` names the registered method itself.)
            The built method is the attribute ``smoothed``; :meth:`get_params` includes its parameters.
        noise_level: ``sigma / (x_max - x_min)``, default ``0.15`` (the paper recommends 10-20%).
        samples: number of noisy copies ``n``, default ``50`` (the paper's choice).
        seed: seed of the ``torch.Generator`` on the inputs' device, default ``0`` (same call, same
            noise); ``None`` draws from torch's global generator. Every sample of a batch gets the same
            standard normal draws (scaled by its own sigma), so a sample's relevance does not depend on
            the batch it is explained in.
        batch_size: most noisy rows per call of the method, ``None`` (default) for all ``samples * batch``
            at once. The noise does not depend on it.
        squared: average squared relevance, default ``False``.

    Class targets are resolved on the clean input (``"predicted"`` is the clean prediction); a callable
    target is applied to batches of noisy rows, so it must score every row on its own.
    """

    def __init__(
        self,
        model: nn.Module,
        base_method: str = "gradient",
        noise_level: float = 0.15,
        samples: int = 50,
        seed: int | None = 0,
        batch_size: int | None = None,
        squared: bool = False,
        **params: Any,
    ) -> None:
        super().__init__(model)
        if not isinstance(base_method, str):
            raise ValueError(f"base_method must be a registered method name, got {base_method!r}")
        self.base_method = base_method
        self.smoothed = get(base_method)(model, **params)
        self.noise_level = check_float("noise_level", noise_level, minimum=0.0)
        self.samples = check_int("samples", samples)
        self.seed = None if seed is None else check_int("seed", seed, minimum=0)
        self.batch_size = check_optional_int("batch_size", batch_size)
        self.squared = check_bool("squared", squared)

    def get_params(self) -> dict[str, Any]:
        """SmoothGrad's own parameters, then those of the smoothed method (its own win a clash)."""
        return {**self.smoothed.get_params(), **super().get_params()}

    def _defaults(self) -> dict[str, Any]:
        return {**self.smoothed._defaults(), **super()._defaults()}

    def _noisy_copies(self, inputs: torch.Tensor) -> Iterator[torch.Tensor]:
        """``samples`` noisy copies of the batch.

        Copy ``k`` of every sample uses the ``k``-th standard normal draw (of one sample's shape) of a
        generator seeded with ``seed``, scaled by that sample's own ``sigma``: each sample sees i.i.d. noise
        over ``k``, and its result does not depend on the batch it is in or its position there.
        """
        flat = inputs.flatten(1)
        sigma = per_row(self.noise_level * (flat.amax(1) - flat.amin(1)), inputs.dim())
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=inputs.device)
            generator.manual_seed(self.seed)
        for _ in range(self.samples):
            noise = torch.randn(inputs.shape[1:], generator=generator, dtype=inputs.dtype, device=inputs.device)
            yield noise.unsqueeze(0) * sigma + inputs

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            output = self.model(inputs)
        index = resolve_target(output, target)
        total = torch.zeros_like(inputs)
        for noisy, rows in rebatch(self._noisy_copies(inputs), self.batch_size):
            sample = rows % inputs.shape[0]
            relevance = self.smoothed.explain(noisy, target=row_target(target, index, sample)).relevance
            total.index_add_(0, sample, relevance.square() if self.squared else relevance)
        return total / self.samples, output, index
