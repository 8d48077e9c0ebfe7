"""Grad-CAM: a layer's channels weighted by the spatial mean of their gradients."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models import find_layer
from ..targets import Target, selection
from .._utils.validation import check_bool
from ._base import Attribution, registered

_MODES = {3: "linear", 4: "bilinear", 5: "trilinear"}


@registered("gradcam")
class GradCAM(Attribution):
    """Grad-CAM; Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017.

    With ``A`` the layer's output ``(B, K, h, w)``: ``alpha_k = mean_(h,w) d f_c / d A_k`` and
    ``L = ReLU(sum_k alpha_k A_k)``, upsampled bilinearly (``align_corners=False``, as Captum's
    ``LayerAttribution.interpolate``) to the input's spatial size and broadcast over the input channels.
    Captum's ``LayerGradCam`` equals this with ``relu_attributions=True``.

    Parameters:
        layer: the module, its name as in ``model.named_modules()``, or ``None`` (default) for the last
            ``nn.Conv2d`` in that order. It must run once per forward pass and keep the input's rank.
        relu: apply the ReLU to the map, default ``True`` (the paper).

    ``layer`` keeps the layer's name (as :meth:`get_params` reports it), ``layer_module`` the module. After
    ``explain`` the map before upsampling, ``(B, 1, h, w)``, is in the attribute ``cam_``.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str | None = None, relu: bool = True) -> None:
        super().__init__(model)
        self.layer_name, self.layer_module = find_layer(model, layer)
        self.layer = self.layer_name
        self.relu = check_bool("relu", relu)
        self.cam_: torch.Tensor | None = None

    def _activation(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model output and the layer's output, both part of one autograd graph."""
        activations: list[Any] = []

        def keep(module: nn.Module, args: Any, output: Any) -> Any:
            activations.append(output)
            # later in-place ops (ReLU(inplace=True)) must not overwrite the kept activation
            return output.clone() if isinstance(output, torch.Tensor) else output

        handle = self.layer_module.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                output = self.model(inputs.detach().requires_grad_(True))
        finally:
            handle.remove()
        if len(activations) != 1:
            raise ValueError(
                f"layer {self.layer_name!r} ran {len(activations)} times in one forward pass; "
                "Grad-CAM needs a layer that runs exactly once"
            )
        activation = activations[0]
        if (
            not isinstance(activation, torch.Tensor)
            or activation.dim() != inputs.dim()
            or activation.dim() not in _MODES
        ):
            shape = tuple(activation.shape) if isinstance(activation, torch.Tensor) else type(activation).__name__
            raise ValueError(
                f"layer {self.layer_name!r} outputs {shape} for inputs {tuple(inputs.shape)}; Grad-CAM needs a "
                "layer with a (batch, channels, *spatial) output of the input's rank, e.g. a convolution"
            )
        return output, activation

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        output, activation = self._activation(inputs)
        with torch.enable_grad():
            score, index = selection(output, target)
            (grad,) = torch.autograd.grad(score.sum(), activation, materialize_grads=True)
        weights = grad.mean(tuple(range(2, grad.dim())), keepdim=True)
        cam = (weights * activation.detach()).sum(1, keepdim=True)
        if self.relu:
            cam = cam.clamp(min=0)
        self.cam_ = cam
        upsampled = F.interpolate(cam, size=inputs.shape[2:], mode=_MODES[cam.dim()], align_corners=False)
        return upsampled.expand_as(inputs).contiguous(), output.detach(), index
