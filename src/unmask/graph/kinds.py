"""What each traced node does, in the few categories that relevance rules care about.

Kinds: ``convolution`` and ``linear`` (weighted layers), ``batchnorm``, ``activation`` (elementwise
non-linearities), ``maxpool``, ``avgpool`` (average pooling, means, sums, bilinear resizing),
``sum`` (adding or subtracting input-dependent tensors), ``structure`` (reshape, cat, pad, slice,
dropout: relevance is routed, not changed), ``scale`` (multiplication by a constant), ``gate``
(product of two input-dependent tensors), ``input``, ``constant`` and ``other`` (unknown).

An elementwise function of one tensor written as several steps (hard-swish ``x * relu6(x + 3) / 6``,
swish ``x * sigmoid(x)``, GELU-tanh ``0.5 x (1 + tanh(c (x + 0.044715 x^3)))``, hard-sigmoid
``relu6(x + 3) / 6``) is one ``activation`` of that tensor after canonization (see
:func:`is_elementwise` and :mod:`unmask.graph.canonize`): a product ``x * g(x)`` is then no gate, and
constants added inside it are no biases.
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid, nn.Threshold,
)
MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
AVGPOOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
STRUCTURES = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
    nn.ReplicationPad3d, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
)

_FUNCTIONS: dict[object, str] = {}
for _kind, _functions in {
    "convolution": [F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d],
    "linear": [F.linear],
    "batchnorm": [F.batch_norm],
    "activation": [
        F.relu, torch.relu, F.relu_, torch.relu_, F.relu6, F.hardtanh, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu,
        F.silu, F.mish, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardswish, F.hardsigmoid, F.softplus,
        F.logsigmoid, torch.clamp, torch.clip, F.threshold,
    ],
    "maxpool": [F.max_pool1d, F.max_pool2d, F.max_pool3d, torch.max_pool2d, F.adaptive_max_pool1d,
                F.adaptive_max_pool2d, F.adaptive_max_pool3d],
    "avgpool": [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                F.adaptive_avg_pool3d, torch.mean, torch.sum],
    "sum": [operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub],
    "multiply": [operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div],
    "scale": [operator.neg, torch.neg],
    "structure": [
        torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze, torch.cat,
        torch.concat, torch.stack, torch.chunk, torch.split, torch.unbind, torch.tensor_split, operator.getitem, F.pad, F.dropout, F.dropout2d,
        F.pixel_shuffle, torch.clone, torch.narrow, torch.movedim,
    ],
}.items():
    for _function in _functions:
        _FUNCTIONS[_function] = _kind

_METHODS = {
    "structure": {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                  "chunk", "split", "split_with_sizes", "unbind", "tensor_split", "clone", "narrow", "movedim", "expand", "repeat", "unflatten", "float",
                  "double", "half", "to", "type_as", "view_as", "reshape_as"},
    "avgpool": {"mean", "sum"},
    "activation": {"relu", "relu_", "clamp", "clamp_", "clip", "sigmoid", "tanh", "hardtanh"},
    "sum": {"add", "add_", "sub", "sub_", "__add__", "__radd__", "__iadd__"},
    "multiply": {"mul", "mul_", "div", "div_", "__mul__", "__rmul__", "__truediv__"},
    "scale": {"neg"},
}

# Transformer kinds (AttnLRP): normalisations, softmax, products of two tensors, fused attention.
_RMSNORMS = (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
_TRANSFORMER_TYPES = (
    ((nn.LayerNorm, nn.GroupNorm), "layernorm"), (_RMSNORMS, "rmsnorm"), ((nn.Softmax,), "softmax"),
    ((nn.MultiheadAttention,), "attention"),
)
_TRANSFORMER_FUNCTIONS: dict[object, str] = {
    F.layer_norm: "layernorm", torch.layer_norm: "layernorm", F.group_norm: "layernorm", torch.group_norm: "layernorm",
    F.softmax: "softmax", torch.softmax: "softmax",
    torch.matmul: "matmul", operator.matmul: "matmul", torch.bmm: "matmul", torch.einsum: "matmul",
    F.scaled_dot_product_attention: "attention",
    torch.roll: "structure",  # window shifts (Swin)
}
if hasattr(F, "rms_norm"):
    _TRANSFORMER_FUNCTIONS[F.rms_norm] = "rmsnorm"
_FUNCTIONS.update(_TRANSFORMER_FUNCTIONS)
_METHODS["softmax"] = {"softmax"}
_METHODS["matmul"] = {"matmul", "bmm", "__matmul__"}
_METHODS["structure"] = _METHODS["structure"] | {"roll"}

# Outputs that are non-negative whatever the input (ReLU-like clamps, sigmoids).
_NONNEG_MODULES = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)
_NONNEG_FUNCTIONS = {F.relu, torch.relu, F.relu_, torch.relu_, F.relu6, torch.sigmoid, F.sigmoid, F.hardsigmoid,
                     F.softplus}
_NONNEG_METHODS = {"relu", "relu_", "sigmoid"}


def type_kind(cls: type) -> str:
    """Kind of a module type (``"other"`` for types unknown here)."""
    for types, kind in (
        (CONVOLUTIONS, "convolution"), ((nn.Linear,), "linear"), (BATCHNORMS, "batchnorm"),
        (ACTIVATIONS, "activation"), (MAXPOOLS, "maxpool"), (AVGPOOLS, "avgpool"), (STRUCTURES, "structure"),
        *_TRANSFORMER_TYPES,
    ):
        if issubclass(cls, types):
            return kind
    return "other"


def module_kind(module: nn.Module) -> str:
    """Kind of a leaf module."""
    if isinstance(module, nn.Upsample):
        return "structure" if module.mode == "nearest" else "avgpool"
    return type_kind(type(module))


def node_kind(node: fx.Node, module: nn.Module | None) -> str:
    """Kind of a traced node (``module`` is the called module for ``call_module`` nodes)."""
    if node.op == "placeholder":
        return "input"
    if node.op == "get_attr":
        return "constant"
    if node.op == "output":
        return "output"
    if node.op == "call_module":
        return module_kind(module) if module is not None else "other"
    if node.op == "call_function":
        if node.target is getattr:
            return "constant"  # x.shape, x.dtype: metadata, not values
        if node.target is F.interpolate:
            return "structure" if node.kwargs.get("mode", "nearest") == "nearest" else "avgpool"
        return _FUNCTIONS.get(node.target, "other")
    if node.op == "call_method":
        for kind, names in _METHODS.items():
            if node.target in names:
                return kind
        if node.target in {"size", "dim", "numel"}:
            return "constant"
    return "other"


def makes_nonnegative(node: fx.Node, module: nn.Module | None) -> bool:
    """True if the node's output is >= 0 for any input (ReLU, ReLU6, clamps at >= 0, sigmoids)."""
    if node.op == "call_module":
        if isinstance(module, _NONNEG_MODULES):
            return True
        if isinstance(module, nn.Hardtanh):
            return module.min_val >= 0
        return False
    if node.op == "call_function":
        if node.target in _NONNEG_FUNCTIONS:
            return True
        if node.target in (torch.clamp, torch.clip, F.hardtanh):
            low = node.kwargs.get("min", node.kwargs.get("min_val", node.args[1] if len(node.args) > 1 else None))
            if node.target is F.hardtanh and low is None:
                low = -1.0
            return isinstance(low, (int, float)) and low >= 0
        return False
    if node.op == "call_method":
        if node.target in _NONNEG_METHODS:
            return True
        if node.target in ("clamp", "clamp_", "clip"):
            low = node.kwargs.get("min", node.args[1] if len(node.args) > 1 else None)
            return isinstance(low, (int, float)) and low >= 0
    return False


# Elementwise operations of their tensor inputs (constants broadcast): a graph of them computed from one
# tensor is an elementwise function of it.
_ELEMENTWISE_KINDS = frozenset({"activation", "scale", "sum", "gate"})
_ELEMENTWISE_FUNCTIONS = {operator.pow, torch.pow, torch.exp, torch.log, torch.sqrt, torch.rsqrt, torch.abs,
                          torch.erf, torch.square, torch.reciprocal}
_ELEMENTWISE_METHODS = frozenset({"pow", "__pow__", "exp", "log", "sqrt", "rsqrt", "abs", "erf", "square",
                                  "reciprocal"})


def is_elementwise(node: fx.Node, kind: str) -> bool:
    """True if the node computes each output element from the same element of its tensor inputs (activations,
    arithmetic with constants or between tensors, powers, exponentials)."""
    if node.op == "call_function" and node.target in _ELEMENTWISE_FUNCTIONS:
        return True
    if node.op == "call_method" and node.target in _ELEMENTWISE_METHODS:
        return True
    return kind in _ELEMENTWISE_KINDS
