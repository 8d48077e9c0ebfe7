"""How pixels in [0, 1] become a model's inputs: resize to its input size, normalise by mean and std."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .zoo import IMAGENET_MEAN, IMAGENET_STD
from .module import as_module

__all__ = ["PixelModel", "pixel_model"]


@dataclass
class PixelModel:
    """A module with the recipe that turns pixels ``(B, 3, H, W)`` in [0, 1] into its inputs."""

    module: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int] | None
    name: str

    def inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(pixels - mean) / std``, resized (bilinear, antialiased when shrinking) to ``size`` first."""
        if self.size is not None and tuple(pixels.shape[-2:]) != self.size:
            antialias = pixels.shape[-1] > self.size[1]
            pixels = F.interpolate(pixels, size=self.size, mode="bilinear", align_corners=False, antialias=antialias)
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        return (pixels - mean) / std


def pixel_model(
    model: Any,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | Sequence[int] | None = None,
) -> PixelModel:
    """An ``nn.Module`` or a zoo model (anything with ``.model`` and ``.preprocessing``) with its input
    recipe: ``mean``/``std``/``image_size`` when given, else the zoo model's, else the ImageNet mean/std
    at the images' own size."""
    module = as_module(model)
    preprocessing = None if module is model else getattr(model, "preprocessing", None)
    name = type(module).__name__ if module is model else str(getattr(model, "name", type(module).__name__))
    if mean is None:
        mean = getattr(preprocessing, "mean", None) or IMAGENET_MEAN
    if std is None:
        std = getattr(preprocessing, "std", None) or IMAGENET_STD
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need three entries (RGB) and std > 0, got mean={mean}, std={std}")
    if image_size is None and preprocessing is not None:
        image_size = getattr(preprocessing, "size", None)
    size = None if image_size is None else ((image_size, image_size) if isinstance(image_size, int) else tuple(image_size))
    return PixelModel(module, tuple(float(m) for m in mean), tuple(float(s) for s in std), size, name)
