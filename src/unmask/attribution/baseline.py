"""A random heatmap: the chance baseline that evaluation metrics compare real methods against."""

from __future__ import annotations

import torch
from torch import nn

from ..targets import Target, selection
from .._utils.validation import check_int
from ._base import Attribution, registered

DISTRIBUTIONS = ("uniform", "gaussian")


def random_relevance(
    shape: tuple[int, ...], seed: int, device: torch.device | str, dtype: torch.dtype, distribution: str = "uniform"
) -> torch.Tensor:
    """Values of ``shape`` drawn ``U[0, 1)`` (or ``N(0, 1)``) from a generator on ``device`` seeded with
    ``seed``: the same seed, shape and device give the same values."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    generator = torch.Generator(device=device)
    generator.manual_seed(check_int("seed", seed, minimum=0))
    draw = torch.rand if distribution == "uniform" else torch.randn
    return draw(shape, generator=generator, dtype=dtype, device=device)


@registered("random")
class RandomAttribution(Attribution):
    """Relevance drawn at random, independent of the model: ``R_i ~ U[0, 1)`` or ``N(0, 1)``.

    A baseline for evaluation (e.g. pixel flipping, Samek et al., 2017, compares against random orders).
    The model only runs once to report its output and resolve the target.

    Parameters:
        seed: seed of the ``torch.Generator`` on the inputs' device, default ``0``; the same seed and
            input shape give the same heatmap.
        distribution: ``"uniform"`` (default) or ``"gaussian"``.
    """

    def __init__(self, model: nn.Module, seed: int = 0, distribution: str = "uniform") -> None:
        super().__init__(model)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
        self.seed = check_int("seed", seed, minimum=0)
        self.distribution = distribution

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            output = self.model(inputs)
        _, index = selection(output, target)
        relevance = random_relevance(inputs.shape, self.seed, inputs.device, inputs.dtype, self.distribution)
        return relevance, output, index
