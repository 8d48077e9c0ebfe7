"""Guided backprop and deconvnet: the gradient with every ReLU's backward pass replaced.

The model is traced with :func:`unmask.graph.trace` and every ReLU node (``nn.ReLU`` modules,
``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place forms) is rewired to a ReLU whose backward
applies the method's rule, so functional ReLUs are covered too (Captum hooks ``nn.ReLU`` modules only).
The graph shares the model's layers; nothing of the model is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..graph.trace import trace
from ..targets import Target
from ._base import Attribution, registered
from .gradient import input_gradient

_RELU_FUNCTIONS = (torch.relu, torch.relu_, F.relu, F.relu_)
_RELU_METHODS = ("relu", "relu_")


class _GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward ``g * (x > 0) * (g > 0)``."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor) -> torch.Tensor:
        output = inputs.clamp(min=0)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (output,) = ctx.saved_tensors
        return grad.clamp(min=0) * (output > 0)


class _DeconvReLU(torch.autograd.Function):
    """ReLU forward; backward ``relu(g)``, ignoring the forward activation."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def guided_relu(inputs: torch.Tensor) -> torch.Tensor:
    """ReLU with the guided backprop backward rule."""
    return _GuidedReLU.apply(inputs)


def deconv_relu(inputs: torch.Tensor) -> torch.Tensor:
    """ReLU with the deconvnet backward rule."""
    return _DeconvReLU.apply(inputs)


def _relu_in_place(graph: fx.GraphModule, node: fx.Node) -> bool | None:
    """Whether ``node`` is an in-place ReLU (True), an out-of-place one (False) or no ReLU (None)."""
    if node.op == "call_module":
        module = graph.get_submodule(str(node.target))
        return module.inplace if isinstance(module, nn.ReLU) else None
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        flag = node.kwargs.get("inplace", node.args[1] if len(node.args) > 1 else False)
        return node.target in (torch.relu_, F.relu_) or bool(flag)
    if node.op == "call_method" and node.target in _RELU_METHODS:
        return node.target == "relu_"
    return None


def replace_relus(graph: fx.GraphModule, relu: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Rewire every ReLU node of ``graph`` to ``relu``; returns how many were replaced.

    Later readers of an in-place ReLU's input read the replacement, as they read the changed tensor before.
    """
    order = {node: position for position, node in enumerate(graph.graph.nodes)}
    replaced = 0
    for node in list(graph.graph.nodes):
        in_place = _relu_in_place(graph, node)
        if in_place is None:
            continue
        source = node.args[0] if node.args else node.kwargs["input"]
        with graph.graph.inserting_after(node):
            new = graph.graph.call_function(relu, (source,))
        node.replace_all_uses_with(new)
        if in_place and isinstance(source, fx.Node):
            for user in list(source.users):
                if order.get(user, -1) > order[node]:
                    user.replace_input_with(source, new)
        graph.graph.erase_node(node)
        replaced += 1
    graph.recompile()
    return replaced


class _ModifiedReLUMethod(Attribution):
    """Input gradient of the traced model with its ReLUs swapped for ``relu``."""

    relu: ClassVar[Callable[[torch.Tensor], torch.Tensor]]

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        graph = trace(self.model, copy_model=False)
        replace_relus(graph, type(self).relu)
        return input_gradient(graph, inputs, target)


@registered("guided_backprop")
class GuidedBackprop(_ModifiedReLUMethod):
    """Guided backpropagation; Springenberg et al., "Striving for Simplicity: The All Convolutional Net", 2015.

    The gradient where every ReLU passes back ``g * (x > 0) * (g > 0)``: only positive signal through
    active units. Matches Captum's ``GuidedBackprop`` on models with ``nn.ReLU`` modules. No parameters.
    """

    relu = staticmethod(guided_relu)


@registered("deconvnet")
class Deconvnet(_ModifiedReLUMethod):
    """Deconvnet; Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014.

    The gradient where every ReLU passes back ``relu(g)`` regardless of its input. Matches Captum's
    ``Deconvolution`` on models with ``nn.ReLU`` modules. No parameters.
    """

    relu = staticmethod(deconv_relu)
