"""Import timm 1.0.31 without torchvision: torchvision cannot be installed beside the CPU torch wheel, and
timm imports a few of its names at import time (``torchvision.ops.misc.FrozenBatchNorm2d``, data sets and
transforms for its data pipeline, which the tests never use). A stand-in registers those modules with
placeholder names; the real torchvision is used where it imports (the GPU machine)."""
from __future__ import annotations

import sys
import types

from torch import nn

_MODULES = ("torchvision", "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms",
            "torchvision.transforms.functional", "torchvision.datasets", "torchvision.models")


class _PlaceholderType(type):
    def __getattr__(cls, name: str) -> "_PlaceholderType":
        if name.startswith("__"):
            raise AttributeError(name)
        return _PlaceholderType(name, (), {})


class _StandIn(types.ModuleType):
    """A module whose every public name is a placeholder class (enough for ``from m import Name``)."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return _PlaceholderType(name, (), {})


def import_timm():
    """``timm``, with the stand-in registered first when torchvision does not import."""
    try:
        import torchvision.ops.misc  # noqa: F401  (the real one on the GPU machine, or a stand-in already)
    except Exception:
        for name in _MODULES:  # beside another stand-in (tests/zennit_oracle.py), fill in what is missing
            if name not in sys.modules:
                sys.modules[name] = _StandIn(name)
        sys.modules["torchvision.ops.misc"].FrozenBatchNorm2d = type("FrozenBatchNorm2d", (nn.Module,), {})
        for name in _MODULES:
            module = sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
            if not hasattr(module, "__path__"):
                module.__path__ = []  # a package, so submodules resolve through sys.modules
    import timm

    return timm
