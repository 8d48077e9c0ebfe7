"""Activation maps of one layer for images in [0, 1], as dissection sees them."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ...models import Capture, eval_mode, model_device, pixel_model

__all__ = ["activation_maps"]


def activation_maps(
    model: Any,
    layer: str,
    pixels: torch.Tensor,
    units: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> torch.Tensor:
    """Activations of ``layer`` for images ``pixels`` ``(B, 3, H, W)`` in [0, 1]: ``(B, U, h, w)``, the
    ``units`` only when given, upsampled bilinearly to ``size`` when given (as dissection does)."""
    resolved = pixel_model(model, mean, std, image_size)
    device = model_device(resolved.module)
    capture = Capture(resolved.module, [layer])
    capture.stop_early = True
    try:
        with eval_mode(resolved.module), torch.no_grad():
            acts = capture.run(resolved.module, resolved.inputs(pixels.to(device)))[layer].float()
    finally:
        capture.close()
    if acts.ndim != 4:
        raise ValueError(f"layer {layer!r} gives a {tuple(acts.shape)} tensor; dissection needs (B, C, H, W) feature maps")
    if units is not None:
        acts = acts[:, list(units)]
    if size is not None:
        acts = F.interpolate(acts, size=size, mode="bilinear", align_corners=False)
    return acts
