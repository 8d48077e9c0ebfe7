"""A test-only stand-in for torchvision, which cannot be imported beside the CPU torch wheel.

The oracles import torchvision names at import time without using most of them: Zennit
(``torchvision.models.resnet`` block types), timm (``torchvision.ops.misc.FrozenBatchNorm2d``, dataset
and transform classes). The stand-in gives a real ``FrozenBatchNorm2d`` (the layer timm models use)
and inert placeholder classes for everything else. A real torchvision, where importable, is used.
"""
from __future__ import annotations

import enum
import sys
import types

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (buffers, never trained), as torchvision's:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias``."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.reshape(1, -1, 1, 1) * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        bias = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + bias


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _placeholders(name: str, **attributes) -> types.ModuleType:
    """A module whose every other attribute is an inert class of that name (importable, never used)."""
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    classes: dict[str, type] = {}

    def __getattr__(attribute: str) -> type:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return classes.setdefault(attribute, type(attribute, (), {"__module__": name}))

    module.__getattr__ = __getattr__
    return module


def install() -> None:
    """Register the stand-in under ``torchvision`` unless a real torchvision imports."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401  (present on the GPU machine)
        import torchvision.ops.misc  # noqa: F401
        return
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    resnet = _placeholders("torchvision.models.resnet")
    functional = _placeholders("torchvision.transforms.functional", InterpolationMode=InterpolationMode)
    modules = {
        "torchvision.models.resnet": resnet,
        "torchvision.models": types.ModuleType("torchvision.models"),  # no model constructors: callers fall back
        "torchvision.ops.misc": _placeholders("torchvision.ops.misc", FrozenBatchNorm2d=FrozenBatchNorm2d),
        "torchvision.datasets": _placeholders("torchvision.datasets"),
        "torchvision.transforms.functional": functional,
        "torchvision.transforms": _placeholders("torchvision.transforms", functional=functional,
                                                InterpolationMode=InterpolationMode),
        "torchvision.utils": _placeholders("torchvision.utils"),
    }
    modules["torchvision.models"].resnet = resnet
    modules["torchvision.ops"] = _placeholders("torchvision.ops", misc=modules["torchvision.ops.misc"])
    modules["torchvision"] = _placeholders("torchvision", **{k.split(".")[1]: v for k, v in modules.items()
                                                             if k.count(".") == 1})
    sys.modules.update(modules)
