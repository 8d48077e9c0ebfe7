"""The gradient family: raw gradient, saliency, sensitivity analysis and gradient x input."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..targets import Target, selection
from ._base import Attribution, registered


def input_gradient(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``d score / d inputs`` for a whole batch, the detached output and the resolved class index.

    Samples are independent (eval mode), so the gradient of the summed scores is every sample's gradient.
    Only the inputs' gradient is computed: no ``.grad`` of any parameter is touched.
    """
    with torch.enable_grad():
        inputs = inputs.detach().requires_grad_(True)
        output = forward(inputs)
        score, index = selection(output, target)
        (grad,) = torch.autograd.grad(score.sum(), inputs, materialize_grads=True)
    return grad, output.detach(), index


class _GradientMethod(Attribution):
    """A method that maps the input gradient (and the input) to relevance."""

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        grad, output, index = input_gradient(self.model, inputs, target)
        return self._transform(grad, inputs), output, index

    @staticmethod
    def _transform(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return grad


@registered("gradient")
class Gradient(_GradientMethod):
    """Raw input gradient ``R_i = d f_c(x) / d x_i`` (signed); Simonyan et al., 2014. No parameters."""


@registered("saliency")
class Saliency(_GradientMethod):
    """Saliency map ``R_(c,h,w) = max_c' |d f_c(x) / d x_(c',h,w)|``; Simonyan, Vedaldi & Zisserman, 2014.

    "Deep Inside Convolutional Networks" takes the maximum absolute gradient over the channels (dim 1);
    the map is broadcast back over the channels so relevance keeps the input's shape. Inputs without
    channels (``(B, F)``) get ``|gradient|``. No parameters.
    """

    @staticmethod
    def _transform(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if grad.dim() < 3:
            return grad.abs()
        return grad.abs().amax(1, keepdim=True).expand_as(grad).contiguous()


@registered("sensitivity")
class Sensitivity(_GradientMethod):
    """Sensitivity analysis ``R_i = (d f_c(x) / d x_i)^2``.

    As in Montavon, Samek & Müller, "Methods for interpreting and understanding deep neural networks",
    2018 (Digital Signal Processing 73). No parameters.
    """

    @staticmethod
    def _transform(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return grad.square()


@registered("gradient_x_input")
class GradientXInput(_GradientMethod):
    """Gradient x input ``R_i = x_i * d f_c(x) / d x_i``; Shrikumar et al., 2016. No parameters.

    Matches Captum's ``InputXGradient``.
    """

    @staticmethod
    def _transform(grad: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return grad * inputs
